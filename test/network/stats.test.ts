import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import type { GenesisResponse, StatsBatchesResponse, StatsJobResponse } from '../../src/api/contract.js';
import { statsBatchesResponseSchema, statsJobResponseSchema } from '../../src/api/contract.js';
import { fromBase64, fromHex } from '../../src/records/crypto/bytes.js';
import { signedRequestHeaders } from '../../src/records/requestAuth.js';
import { batchOf, type Batch } from '../../src/records/stats/batches.js';
import { measures, valueCount, type MeasureName } from '../../src/records/stats/measures.js';
import { computeStat, createVdaf, shard } from '../../src/records/stats/prio3.js';
import { buildStatsReportBody, shareContext } from '../../src/records/stats/report.js';
import { sealShare } from '../../src/records/stats/sealing.js';
import type { TxBody } from '../../src/records/tx/types.js';
import { pollUntil } from '../support/poll.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * Private statistics end to end (issue 13) on four node processes: patients at four hospitals opt in and
 * report known systolic values; after the batch closes an auditor's query makes every node aggregate with the
 * others over stats-prep and submit its share; the auditor combines the published shares into the exact mean
 * and stddev. A forged out-of-range report is dropped by the proof on every node, a second query of the same
 * statistic family reuses the job, a batch of 9 reports is not released, and a job waits for a stopped node,
 * naming it, and completes once it is back.
 */
const BATCH_MS = 15_000;
const setting = { batchMs: BATCH_MS };
const systolic = [101, 117, 122, 133, 140, 99, 150, 128, 111, 160, 135, 119];
const heartRates = [61, 72, 58, 90, 77, 66, 83, 70, 95, 64, 71, 88, 79]; // one per patient and the forger
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('private statistics across four hospitals', () => {
  let net: TestNetwork;
  let auditor: Session;
  let genesisHash: Uint8Array;
  let aggregatorKeys: Uint8Array[];
  let hospitals: string[];

  async function signedGet<T>(i: number, s: Session, path: string): Promise<T> {
    const { peerId, genesisHash: gh } = await net.api(i).identify();
    const res = await fetch(`${net.node(i).apiUrl}${path}`, { headers: signedRequestHeaders(s.signer, s.userId, gh, { method: 'GET', path, node: peerId }) });
    const body = (await res.json()) as T & { error?: { code: string; message: string } };
    if (!res.ok) throw new Error(`${res.status} ${body.error?.code}: ${body.error?.message}`);
    return body;
  }
  const job = async (i: number, id: string) => statsJobResponseSchema.parse(await signedGet<StatsJobResponse>(i, auditor, `/v1/stats/jobs/${id}`));

  function reportBody(s: Session, record: string, measure: MeasureName, value: number): Promise<TxBody<'statsReport'>> {
    return buildStatsReportBody({
      genesisHash,
      patient: s.userId,
      record,
      version: 1,
      measure,
      value,
      batch: batchOf(setting, Date.now()).label,
      aggregatorKeys,
    });
  }

  /** A client that skips the encoding: a histogram vector that is not one-hot (Prio3's proof must catch it). */
  async function forgedBody(s: Session, record: string): Promise<TxBody<'statsReport'>> {
    const honest = await reportBody(s, record, 'systolic', 120);
    const vdaf = createVdaf('systolic', 'histogram', 4);
    const len = valueCount(measures.systolic);
    (vdaf.flp as unknown as { encode: () => bigint[] }).encode = () => Array.from({ length: len }, (_, i) => (i === len - 1 ? 2n : 0n));
    const r = await shard(vdaf, 0);
    const place = { patient: s.userId, record, version: 1, measure: 'systolic' as const, batch: honest.batch };
    const shares = r.inputShares.map((x, i) => sealShare(aggregatorKeys[i]!, shareContext(genesisHash, place, 'histogram', r.nonce, i), x));
    return { ...honest, reports: { histogram: { nonce: r.nonce, publicShare: r.publicShare, shares } } };
  }

  beforeAll(async () => {
    net = await TestNetwork.create(4, { stats: setting });
    await net.start();
    auditor = await net.staff(0, 'aud-stats', 'auditor');
    const g = await net.api(0).get<GenesisResponse>('/v1/genesis');
    genesisHash = fromHex(g.hash);
    aggregatorKeys = g.genesis.hospitals.map((h) => fromHex(h.aggregatorKey!));
    hospitals = g.genesis.hospitals.map((h) => h.id);
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('aggregates a closed batch exactly, drops a forged report on every node, reuses the job, refuses 9 reports, waits for a stopped node', async () => {
    const patients = await Promise.all(systolic.map((_, i) => net.patient(i % 4, `pat-st${i}`)));
    const forger = await net.patient(1, 'pat-forge');
    const everyone = [...patients, forger];
    const records = await Promise.all(
      everyone.map(async (p, i) => {
        const r = await p.createRecord(p.userId, { vitals: { bloodPressure: `${systolic[i] ?? 120}/80` } });
        expect(r.denied).toBeUndefined();
        const c = await p.act('statsConsent', { patient: p.userId, body: { contribute: true } });
        expect(c.event?.outcome).toBe('success');
        return r.value!;
      }),
    );

    // Reports go in early in a fresh batch, so every one's time and block are in the same batch.
    let batch: Batch = batchOf(setting, Date.now());
    if (batch.end - Date.now() < 10_000) {
      await sleep(batch.end - Date.now() + 100);
      batch = batchOf(setting, Date.now());
    }
    const outcomes = await Promise.all(
      everyone.map(async (p, i) => {
        const body = p === forger ? await forgedBody(p, records[i]!) : await reportBody(p, records[i]!, 'systolic', systolic[i]!);
        const out = [await p.act('statsReport', { patient: p.userId, record: records[i]!, body })];
        // Nine patients also report diastolic: a batch too small to release.
        if (i < 9) out.push(await p.act('statsReport', { patient: p.userId, record: records[i]!, body: await reportBody(p, records[i]!, 'diastolic', 80) }));
        // Everyone reports a heart rate: the job run while a hospital is down.
        out.push(await p.act('statsReport', { patient: p.userId, record: records[i]!, body: await reportBody(p, records[i]!, 'heartRate', heartRates[i]!) }));
        return out;
      }),
    );
    for (const res of outcomes.flat()) expect(res.event?.outcome, res.event?.reason).toBe('success');
    expect(batchOf(setting, Date.now()).label).toBe(batch.label);

    // Before the batch closes a query is refused; after, the first one creates the job.
    const early = await auditor.act('statsQuery', { body: { measure: 'systolic', stat: 'mean', batch: batch.label } });
    expect(early.event).toMatchObject({ outcome: 'denied', reason: 'batch-open' });
    await sleep(batch.end - Date.now() + 500);
    const small = await auditor.act('statsQuery', { body: { measure: 'diastolic', stat: 'mean', batch: batch.label } });
    expect(small.event).toMatchObject({ outcome: 'denied', reason: 'batch-too-small' });
    const query = await auditor.act('statsQuery', { body: { measure: 'systolic', stat: 'mean', batch: batch.label } });
    expect(query.event?.outcome).toBe('success');
    const started = Date.now();

    const done = await pollUntil(
      'the systolic job is done',
      () => job(0, query.id),
      (j) => (j.status === 'done' ? null : `${j.status}, missing ${j.missing.join(',')}, waiting for ${j.waitingFor.join(',')}`),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const aggregateMs = Date.now() - started;
    expect(done).toMatchObject({
      job: query.id,
      measure: 'systolic',
      batch: batch.label,
      instance: 'histogram',
      reports: 13,
      used: 12,
      dropped: 1,
      missing: [],
    });
    // Every hospital dropped the forged report itself.
    expect(done.shares.map((s) => [s.hospital, s.used, s.dropped])).toEqual(hospitals.map((h) => [h, 12, 1]));
    const shares = done.shares.map((s) => fromBase64(s.share));
    const n = systolic.length;
    const mean = systolic.reduce((a, v) => a + v, 0) / n;
    const stddev = Math.sqrt(systolic.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
    const m = computeStat('systolic', 'mean', shares, done.used!);
    const sd = computeStat('systolic', 'stddev', shares, done.used!);
    if (m.stat !== 'mean' || sd.stat !== 'stddev') throw new Error('unexpected stat');
    expect(m.mean).toBeCloseTo(mean, 9);
    expect(sd.stddev).toBeCloseTo(stddev, 9);
    // The same job gives the median bucket (the forger's report is dropped from every statistic).
    const sorted = [...systolic].sort((a, b) => a - b);
    expect(computeStat('systolic', 'median', shares, done.used!)).toMatchObject({
      stat: 'median',
      count: n,
      bucket: Math.floor((sorted[Math.ceil(n / 2) - 1]! - 20) / 10),
    });
    // Every node serves the same job (the ledger's).
    for (const i of [1, 2, 3]) expect(await job(i, query.id)).toEqual(done);

    // A second query of the same batch (any statistic) succeeds and points at the same job: no new aggregation.
    for (const stat of ['stddev', 'median'] as const) {
      const again = await auditor.act('statsQuery', { body: { measure: 'systolic', stat, batch: batch.label } });
      expect(again.event?.outcome).toBe('success');
      await expect(job(0, again.id)).rejects.toThrow(/404 NOT_FOUND/);
    }
    const listed = statsBatchesResponseSchema.parse(await signedGet<StatsBatchesResponse>(0, auditor, '/v1/stats/batches?measure=systolic'));
    expect(listed.batches).toEqual([{ batch: batch.label, reports: 13, jobs: { histogram: query.id } }]);
    expect(await job(0, query.id)).toEqual(done);

    // Auditors only, signed only.
    await expect(signedGet(0, patients[0]!, `/v1/stats/jobs/${query.id}`)).rejects.toThrow(/403 FORBIDDEN/);
    const unsigned = await fetch(`${net.node(0).apiUrl}/v1/stats/jobs/${query.id}`);
    expect(unsigned.status).not.toBe(200);
    await expect(signedGet(0, auditor, '/v1/stats/batches?measure=weight')).rejects.toThrow(/400 MALFORMED/);

    // Node 3 (hosp-d) stops: the heart-rate job stays pending and names it; it completes once node 3 is back.
    await net.processes[3]!.stop();
    const median = await auditor.act('statsQuery', { body: { measure: 'heartRate', stat: 'median', batch: batch.label } });
    expect(median.event?.outcome).toBe('success');
    const waiting = await pollUntil(
      'the heart-rate job waits for hosp-d',
      () => job(0, median.id),
      (j) => (j.waitingFor.includes(hospitals[3]!) && j.waitingFor.length === 1 ? null : JSON.stringify({ status: j.status, waitingFor: j.waitingFor })),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(waiting).toMatchObject({ status: 'pending', missing: hospitals, shares: [] });
    await sleep(3_000);
    expect((await job(1, median.id)).status).toBe('pending');
    net.processes[3]!.start();
    await net.processes[3]!.waitReady(30_000);
    const hist = await pollUntil(
      'the heart-rate job is done',
      () => job(0, median.id),
      (j) => (j.status === 'done' ? null : `${j.status}, missing ${j.missing.join(',')}, waiting for ${j.waitingFor.join(',')}`),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // The forger's heart-rate report is honest: 13 used.
    expect(hist).toMatchObject({ measure: 'heartRate', instance: 'histogram', reports: 13, used: 13, dropped: 0 });
    const all = [...heartRates].sort((a, b) => a - b);
    const medianBucket = Math.floor((all[Math.ceil(all.length / 2) - 1]! - 20) / 10);
    const med = computeStat(
      'heartRate',
      'median',
      hist.shares.map((s) => fromBase64(s.share)),
      hist.used!,
    );
    expect(med).toMatchObject({ stat: 'median', count: 13, bucket: medianBucket });
    // The aggregators log job progress as counts only: no field that could carry a value.
    const allowed = new Set([
      'level',
      'time',
      'pid',
      'hostname',
      'node',
      'module',
      'msg',
      'job',
      'reports',
      'invalid',
      'ms',
      'from',
      'waiting',
      'used',
      'dropped',
      'tx',
      'status',
      'err',
    ]);
    for (const i of [0, 1, 2, 3]) {
      const lines = net
        .logTail(i, 100_000, /"module":"stats"/)
        .split('\n')
        .filter(Boolean);
      expect(
        lines.some((l) => l.includes('stats job prepared')),
        net.node(i).name,
      ).toBe(true);
      for (const l of lines)
        expect(
          Object.keys(JSON.parse(l) as object).filter((k) => !allowed.has(k)),
          l,
        ).toEqual([]);
    }
    console.log(`stats network test: the systolic job over 13 reports was done ${aggregateMs} ms after its query was final`);
  }, 240_000);
});
