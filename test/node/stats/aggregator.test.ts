import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { encodePrepRequest, readPrepResponse } from '../../../src/node/stats/prepProtocol.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger } from '../../../src/node/ledger.js';
import { StatsAggregator, withDeadline, type StatsAggregatorDeps } from '../../../src/node/stats/aggregator.js';
import { LedgerStore } from '../../../src/node/store/ledgerStore.js';
import { rawLevel } from '../../../src/node/store/testSupport.js';
import { IntegrityMonitor } from '../../../src/node/integrity/monitor.js';
import { StoreDamage } from '../../../src/node/store/values.js';
import { statsJobOf } from '../../../src/node/stats/views.js';
import { batchOf } from '../../../src/records/stats/batches.js';
import { measures, valueCount, type MeasureName } from '../../../src/records/stats/measures.js';
import { computeStat, createVdaf, prepShareLength, shard, vdafFor } from '../../../src/records/stats/prio3.js';
import { buildStatsReportBody, shareContext } from '../../../src/records/stats/report.js';
import { sealShare } from '../../../src/records/stats/sealing.js';
import type { Tx, TxBody } from '../../../src/records/tx/types.js';
import { ChainBuilder } from '../../support/chainBuilder.js';
import { pollUntil } from '../../support/poll.js';

/**
 * The node's aggregator in one process over real LevelDB stores: four hospitals' ledgers hold one chain with a
 * closed batch of statsReports and a query; each runs a StatsAggregator whose stats-prep requests go straight
 * to the other aggregators' responders (a hospital can be "down": its requests fail). What they submit is put
 * in a block and committed everywhere, as the network would.
 */
const BATCH_MS = 60_000;
const start = Math.floor(Date.now() / BATCH_MS) * BATCH_MS - 3 * BATCH_MS;
const chain = ChainBuilder.create({ stats: { batchMs: BATCH_MS }, startTime: start });
const hospitals = chain.validators.map((v) => v.hospital);
// 18 honest values and 2 invalid reports: 10% dropped, still released (more withholds, PROTOCOL §10.4).
const values = [101, 117, 122, 133, 140, 99, 150, 128, 111, 160, 135, 119, 124, 131, 108, 142, 126, 115];
const dirs: string[] = [];
const ledgers: Ledger[] = [];
const aggregators: (StatsAggregator | undefined)[] = [];
const submitted: Tx[][] = hospitals.map(() => []);
const down = new Set<string>();
let job = '';
/** Each patient's record (version 1), by patient. */
const recordOf = new Map<string, string>();

async function reportBody(patient: string, record: string, value: number, measure: MeasureName = 'systolic'): Promise<TxBody<'statsReport'>> {
  return buildStatsReportBody({
    genesisHash: chain.genesis.hash,
    patient,
    record,
    version: 1,
    measure,
    value,
    batch: batchOf({ batchMs: BATCH_MS }, chain.clock).label,
    aggregatorKeys: chain.aggregators.map((a) => a.publicKey),
  });
}

/** A client that skips the encoding: its histogram vector is not one-hot (two counts at 300 mmHg). */
async function forgedBody(patient: string, record: string): Promise<TxBody<'statsReport'>> {
  const honest = await reportBody(patient, record, 120);
  const vdaf = createVdaf('systolic', 'histogram', 4);
  const len = valueCount(measures.systolic);
  (vdaf.flp as unknown as { encode: () => bigint[] }).encode = () => Array.from({ length: len }, (_, i) => (i === len - 1 ? 2n : 0n));
  const r = await shard(vdaf, 0);
  const place = { patient, record, version: 1, measure: 'systolic' as const, batch: honest.batch };
  const shares = r.inputShares.map((s, i) => sealShare(chain.aggregators[i]!.publicKey, shareContext(chain.genesis.hash, place, 'histogram', r.nonce, i), s));
  return { ...honest, reports: { histogram: { nonce: r.nonce, publicShare: r.publicShare, shares } } };
}

async function commitAll(txs: Tx[], time?: number): Promise<void> {
  const block = chain.finalize(txs, time !== undefined ? { time } : {});
  for (const l of ledgers) await l.commit(block.finalized);
  for (const a of aggregators) a?.onCommitted(block.finalized);
}

/** Hospital a's aggregator over `ledger` with no peers reachable (for the tests of what it does alone). */
function lonelyAggregator(ledger: Ledger, overrides: Partial<StatsAggregatorDeps>): StatsAggregator {
  return new StatsAggregator({
    ledger,
    genesis: chain.genesis,
    hospital: hospitals[0]!,
    aggregator: chain.aggregators[0]!,
    signer: chain.validators[0]!.signer,
    host: () => ({
      request: () => {
        throw new Error('no peers here');
      },
    }),
    submit: async () => undefined,
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
}

function startAggregator(i: number): void {
  const a = new StatsAggregator({
    ledger: ledgers[i]!,
    genesis: chain.genesis,
    hospital: hospitals[i]!,
    aggregator: chain.aggregators[i]!,
    signer: chain.validators[i]!.signer,
    host: () => ({
      request: (peerId: string, _protocol: string, request: Uint8Array) => {
        const target = chain.genesis.validators.find((v) => v.peerId === peerId)!.hospital;
        if (down.has(target)) throw new Error(`${target} is down`);
        return aggregators[hospitals.indexOf(target)]!.serve(request);
      },
    }),
    submit: async (tx) => {
      submitted[i]!.push(tx);
    },
    logger: pino({ level: 'silent' }),
  });
  aggregators[i] = a;
  a.start();
}

beforeAll(async () => {
  for (let i = 0; i < 4; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'medledger-stats-agg-'));
    dirs.push(dir);
    ledgers.push(await Ledger.open(await LedgerStore.open(dir), chain.genesis));
  }
  const patients = values.map((_, i) => `pat-s${i}`);
  const extra = ['pat-forger', 'pat-badseal'];
  await commitAll([...[...patients, ...extra].map((p, i) => chain.registerPatient(p, hospitals[i % 4]!)), ...chain.enrol('admin-a', 'aud-1', 'auditor')]);
  const records = [...patients, ...extra].map((p) => chain.createRecord(p, p, 'BP'));
  for (const [i, p] of [...patients, ...extra].entries()) recordOf.set(p, records[i]!.record);
  await commitAll([
    ...records.map((r) => r.tx),
    ...[...patients, ...extra].map((p) => chain.sign(p, { type: 'statsConsent', patient: p, body: { contribute: true } })),
  ]);
  const reports: Tx[] = [];
  for (const [i, p] of patients.entries())
    reports.push(chain.sign(p, { type: 'statsReport', patient: p, record: records[i]!.record, body: await reportBody(p, records[i]!.record, values[i]!) }));
  // Out of range: the proof fails at combine on every aggregator.
  const forger = records[patients.length]!.record;
  reports.push(chain.sign('pat-forger', { type: 'statsReport', patient: 'pat-forger', record: forger, body: await forgedBody('pat-forger', forger) }));
  // Hospital c's sealed share is noise of the right length: c cannot open it, marks it invalid, everyone drops it.
  const bad = records[patients.length + 1]!.record;
  const badBody = await reportBody('pat-badseal', bad, 120);
  const noisy = badBody.reports.histogram.shares.map((s, i) => (i === 2 ? new Uint8Array(randomBytes(s.length)) : s));
  reports.push(
    chain.sign('pat-badseal', {
      type: 'statsReport',
      patient: 'pat-badseal',
      record: bad,
      body: { ...badBody, reports: { histogram: { ...badBody.reports.histogram, shares: noisy } } },
    }),
  );
  await commitAll(reports);
  // A block past the batch end closes it; then the auditor's query creates the job.
  await commitAll([], start + BATCH_MS);
  const query = chain.sign('aud-1', { type: 'statsQuery', body: { measure: 'systolic', stat: 'mean', batch: batchOf({ batchMs: BATCH_MS }, start).label } });
  await commitAll([query]);
  job = query.idHex;
  expect(ledgers[0]!.state.get('statsJobs', job)).toMatchObject({ status: 'pending', reports: 20 });
}, 120_000);

afterAll(async () => {
  for (const a of aggregators) await a?.stop();
  for (const l of ledgers) await l.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the node aggregator', () => {
  it('reads the batch from the store index in chain order', async () => {
    const ids: string[] = [];
    for await (const r of ledgers[1]!.statsReports('systolic', batchOf({ batchMs: BATCH_MS }, start).label, 100)) ids.push(r.tx.idHex);
    expect(ids).toHaveLength(20);
    const reportsOnChain = chain.blocks.flatMap((b) => b.executed.txs.filter((t) => t.tx.type === 'statsReport').map((t) => t.idHex));
    expect(ids).toEqual(reportsOnChain);
    await expect(
      (async () => {
        for await (const _ of ledgers[1]!.statsReports('systolic', batchOf({ batchMs: BATCH_MS }, start).label, 19));
      })(),
    ).rejects.toThrow(/more than 19 reports/);
    const none = [];
    for await (const r of ledgers[1]!.statsReports('diastolic', batchOf({ batchMs: BATCH_MS }, start).label, 100)) none.push(r);
    expect(none).toEqual([]);
  });

  it('a job over the report bound is not worked on (logged, nothing served or submitted)', async () => {
    const lines: string[] = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const submittedHere: Tx[] = [];
    const bounded = lonelyAggregator(ledgers[0]!, {
      submit: async (tx) => {
        submittedHere.push(tx);
      },
      logger: pino({ level: 'info' }, capture),
      maxReports: 19,
    });
    bounded.start();
    try {
      await pollUntil(
        'the bound is logged',
        async () => lines.join(''),
        (text) => (text.includes('20 reports, over the bound of 19') ? null : 'not yet'),
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      expect(await readPrepResponse(bounded.serve(encodePrepRequest(job)), { count: 20, shareLength: 208 })).toBeUndefined();
      expect(submittedHere).toEqual([]);
    } finally {
      await bounded.stop();
    }
  });

  it('a damaged stats index marks the job stuck here once (logged), instead of preparing it again on every step', async () => {
    const lines: string[] = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    let reads = 0;
    const damaged = new Proxy(ledgers[0]!, {
      get(target, prop, receiver) {
        if (prop === 'statsReports')
          return async function* () {
            reads++;
            yield* [];
            throw new StoreDamage('stats index systolic/x', 'a stray key');
          };
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const stuck = lonelyAggregator(damaged, { logger: pino({ level: 'info' }, capture) });
    stuck.start();
    try {
      await pollUntil(
        'the damage is logged',
        async () => lines.join(''),
        (text) => (text.includes('stats job not aggregated here: damaged store') ? null : 'not yet'),
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      await new Promise((r) => setTimeout(r, 1_500)); // several steps
      expect(reads).toBe(1);
      expect(lines.filter((l) => l.includes('damaged store'))).toHaveLength(1);
      expect(lines.join('')).not.toContain('stats aggregator step failed');
    } finally {
      await stuck.stop();
    }
  });

  it('with a hospital down the job waits, naming it; once it is back every hospital submits the same counts and the mean is exact', async () => {
    down.add('hosp-d');
    for (const i of [0, 1, 2]) startAggregator(i);
    await pollUntil(
      'a, b and c wait for d only',
      async () => [0, 1, 2].map((i) => aggregators[i]!.waitingFor(job)),
      (w) => (w.every((x) => JSON.stringify(x) === JSON.stringify(['hosp-d'])) ? null : JSON.stringify(w)),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(submitted.flat()).toEqual([]);
    expect(statsJobOf(ledgers[0]!.state, job, aggregators[0]!.waitingFor(job))).toMatchObject({
      status: 'pending',
      missing: hospitals,
      waitingFor: ['hosp-d'],
    });

    down.delete('hosp-d');
    startAggregator(3);
    await pollUntil(
      'every hospital submits',
      async () => submitted.map((s) => s.length),
      (n) => (n.every((x) => x === 1) ? null : n.join(',')),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const txs = submitted.map((s) => s[0]! as Tx<'statsAggregate'>);
    for (const [i, tx] of txs.entries()) {
      expect(tx.tx).toMatchObject({ type: 'statsAggregate', actor: hospitals[i], via: hospitals[i], body: { job, used: 18, dropped: 2 } });
      expect(tx.tx.body.digest).toEqual(txs[0]!.tx.body.digest);
    }
    await commitAll(txs, Date.now());
    const view = statsJobOf(ledgers[2]!.state, job, aggregators[2]!.waitingFor(job))!;
    expect(view).toMatchObject({ status: 'done', used: 18, dropped: 2, missing: [], waitingFor: [] });
    const shares = view.shares.map((s) => new Uint8Array(Buffer.from(s.share, 'base64')));
    const mean = computeStat('systolic', 'mean', shares, view.used!);
    if (mean.stat !== 'mean') throw new Error('mean');
    expect(mean.count).toBe(18);
    expect(mean.mean).toBeCloseTo(values.reduce((a, v) => a + v, 0) / values.length, 12);
    // The closed job leaves memory: nothing is served for it any more.
    await pollUntil(
      'the job is forgotten',
      async () => aggregators.map((a) => a!.waitingFor(job)),
      (w) => (w.every((x) => x === undefined) ? null : 'still active'),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
  }, 180_000);

  it('a job answered here takes no slot: two jobs pending on other hospitals do not block a third; answers come from the cached frames', async () => {
    // A new batch: ten patients report diastolic, heart rate and temperature; it closes; three jobs.
    const batch = batchOf({ batchMs: BATCH_MS }, chain.clock);
    const reporters = values.slice(0, 10).map((_, i) => `pat-s${i}`);
    const reports: Tx[] = [];
    for (const [i, p] of reporters.entries())
      for (const [measure, value] of [
        ['diastolic', 70 + i],
        ['heartRate', 60 + i],
        ['temperature', 365 + i],
      ] as const)
        reports.push(chain.sign(p, { type: 'statsReport', patient: p, record: recordOf.get(p)!, body: await reportBody(p, recordOf.get(p)!, value, measure) }));
    await commitAll(reports, chain.clock);
    await commitAll([], batch.end);
    const queryOf = async (measure: MeasureName) => {
      const q = chain.sign('aud-1', { type: 'statsQuery', body: { measure, stat: 'mean', batch: batch.label } });
      await commitAll([q]);
      return q.idHex;
    };
    const sharesOf = (id: string) => submitted.flat().filter((t) => t.tx.type === 'statsAggregate' && (t as Tx<'statsAggregate'>).tx.body.job === id);
    const waitSubmitted = (id: string) =>
      pollUntil(
        `every hospital submits ${id.slice(0, 8)}`,
        async () => new Set(sharesOf(id).map((t) => t.tx.actor)).size,
        (n) => (n === 4 ? null : `${n} of 4`),
        { timeoutMs: 90_000, intervalMs: 100 },
      );
    const first = await queryOf('diastolic');
    const second = await queryOf('heartRate');
    await waitSubmitted(first);
    await waitSubmitted(second);
    // hosp-d's aggregate of the first job and hosp-c's of the second never reach the chain.
    const only = (id: string, hospital: string) => sharesOf(id).find((t) => t.tx.actor === hospital)!;
    await commitAll(
      ['hosp-a', 'hosp-b', 'hosp-c'].map((h) => only(first, h)),
      Date.now(),
    );
    await commitAll(
      ['hosp-a', 'hosp-b', 'hosp-d'].map((h) => only(second, h)),
      Date.now(),
    );
    expect(ledgers[0]!.state.get('statsJobs', first)!.status).toBe('pending');
    expect(ledgers[0]!.state.get('statsJobs', second)!.status).toBe('pending');
    // hosp-a has answered both: it holds no slot for them, so the third job goes through everywhere.
    const third = await queryOf('temperature');
    await waitSubmitted(third);
    await commitAll(
      hospitals.map((h) => only(third, h)),
      Date.now(),
    );
    expect(ledgers[1]!.state.get('statsJobs', third)).toMatchObject({ status: 'done', used: 10, dropped: 0 });
    // hosp-a still serves its answered jobs from the frames it encoded once, identically for every peer.
    const served = async (id: string) => {
      const frames: Uint8Array[] = [];
      for await (const f of aggregators[0]!.serve(encodePrepRequest(id))) frames.push(f);
      return frames;
    };
    const once = await served(first);
    expect(await served(first)).toEqual(once);
    const list = await readPrepResponse(
      (async function* () {
        yield* once;
      })(),
      { count: 10, shareLength: prepShareLength(vdafFor('diastolic', 'histogram', 4)) },
    );
    expect(list).toHaveLength(10);
    expect(aggregators[0]!.waitingFor(first)).toEqual([]);
  }, 240_000);
});

describe('the pull of a peer has an overall deadline', () => {
  it('a peer that trickles frames is cut off after the deadline and its stream closed', async () => {
    let closed = false;
    const trickle = (async function* () {
      try {
        yield new Uint8Array([1]);
        await new Promise((r) => setTimeout(r, 150));
        yield new Uint8Array([2]);
        await new Promise((r) => setTimeout(r, 10_000));
        yield new Uint8Array([3]);
      } finally {
        closed = true;
      }
    })();
    const got: number[] = [];
    const started = Date.now();
    await expect(
      (async () => {
        for await (const f of withDeadline(trickle, 300)) got.push(f[0]!);
      })(),
    ).rejects.toThrow(/no complete answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(got).toEqual([1, 2]);
    await pollUntil(
      'the stream is closed',
      async () => closed,
      (c) => (c ? null : 'open'),
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    // A complete answer within the deadline passes through unchanged.
    const quick = (async function* () {
      yield new Uint8Array([7]);
    })();
    const all: Uint8Array[] = [];
    for await (const f of withDeadline(quick, 300)) all.push(f);
    expect(all).toEqual([new Uint8Array([7])]);
  }, 30_000);

  it('the integrity monitor checks the statistics report index both ways (an entry lost, one pointing elsewhere)', async () => {
    const ledger = ledgers[3]!;
    const scan = () => new IntegrityMonitor(ledger, { logger: pino({ level: 'silent' }) }).scanOnce();
    expect(await scan()).toMatchObject({ ok: true });
    const raw = rawLevel(ledger.store);
    const keys: string[] = [];
    for await (const k of raw.keys({ gte: 'sr/', lt: 'sr0' })) keys.push(k);
    expect(keys.length).toBeGreaterThanOrEqual(20);
    const lost = keys[5]!;
    const height = Number(lost.slice(-17, -5));
    await raw.del(lost);
    expect(await scan()).toMatchObject({ ok: false, alert: { height, problem: expect.stringMatching(/has no statistics report index entry/) } });
    await raw.put(lost, new Uint8Array(0));
    // An entry that points to the first block's first event (a registration, not a report).
    const stray = `${keys[0]!.slice(0, keys[0]!.indexOf('\0'))}\0${'1'.padStart(12, '0')}00000`;
    await raw.put(stray, new Uint8Array(0));
    expect(await scan()).toMatchObject({ ok: false, alert: { height: 1, problem: expect.stringMatching(/statistics report index entry .* does not match/) } });
    await raw.del(stray);
    expect(await scan()).toMatchObject({ ok: true });
  }, 60_000);
});
