import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsJobResponse } from '../../src/api/contract.js';
import type { StatsAnswer } from '../../src/client/stats.js';
import type { Session } from '../../src/client/session.js';
import { fromHex } from '../../src/records/crypto/bytes.js';
import { batchOf, type Batch } from '../../src/records/stats/batches.js';
import { bucketRange, measures, valueCount } from '../../src/records/stats/measures.js';
import { combinePrepShares, createVdaf, prepareInit, ProofFailed, shard, vdafFor, type Prio3Vdaf } from '../../src/records/stats/prio3.js';
import { shareContext } from '../../src/records/stats/report.js';
import { sealShare } from '../../src/records/stats/sealing.js';
import type { TxBody } from '../../src/records/tx/types.js';
import { fetchMetrics, metricValue } from '../../scripts/bench/prometheus.js';
import { cli, type CliRun } from '../support/cliRunner.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * The acceptance test of issue 13 ("Done means"), on four node processes, through the users' own clients:
 * 30 patients at four hospitals record known blood pressures with their clients (20 contribute; 10 do not,
 * two of whom opted in and out again before recording); after the batch closes an auditor asks mean, standard
 * deviation, median and mode of systolic and each comes out exactly as computed here from the 20 contributors'
 * values; a hand-forged out-of-range report signed by an opted-in patient is dropped by the proof on every hospital;
 * asking the same statistic again returns the stored aggregate (same job, no second aggregation); a measure
 * with 9 reports is not released; and no node's files (LevelDB read back too), log or any API answer this
 * test received holds a patient's value or record text (canaries).
 */
const BATCH_MS = 30_000;
const setting = { batchMs: BATCH_MS };
/** Records and reports need this much of a fresh batch (30 parallel clients on a loaded 2-core machine). */
const NEED_MS = 22_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The 20 contributors' systolic values: buckets of 10 mmHg from 20 (measures.ts). 120–129 holds 6 (the mode);
 * 9 values lie below 130, so the 10th smallest (the lower median, ⌈20/2⌉) is 131: median bucket 130–139.
 */
const SYSTOLIC = [108, 115, 119, 121, 122, 124, 126, 127, 129, 131, 133, 135, 137, 139, 142, 146, 149, 153, 158, 171];
const CONTRIBUTORS = SYSTOLIC.length;
const PATIENTS = 30;
/** Non-contributors 20 and 21 opt in and out again before recording; 22..29 never opt in. */
const IN_THEN_OUT = [20, 21];
/** Contributors 0..8 also record a heart rate: a measure with 9 reports in the batch. */
const HEART_RATE_REPORTERS = 9;

const RUN = randomBytes(4).toString('hex');
interface Patient {
  id: string;
  hospital: number;
  contributes: boolean;
  bp: string;
  heartRate?: number;
  title: string;
  notes: string;
}
const people: Patient[] = Array.from({ length: PATIENTS }, (_, i) => {
  const contributes = i < CONTRIBUTORS;
  // Distinct pressures: contributors 108/60 … 171/79; non-contributors 181/90 … 199/99 (would shift every result).
  const bp = contributes ? `${SYSTOLIC[i]}/${60 + i}` : `${181 + 2 * (i - CONTRIBUTORS)}/${90 + i - CONTRIBUTORS}`;
  return {
    id: `pat-acc${String(i).padStart(2, '0')}`,
    hospital: i % 4,
    contributes,
    bp,
    ...(i < HEART_RATE_REPORTERS ? { heartRate: 70 + i } : {}),
    title: `CANARY-${RUN}-title-${i}`,
    notes: `CANARY-${RUN}-notes-${i} patient reports dizziness`,
  };
});
const FORGED_TITLE = `CANARY-${RUN}-forged-record`;

/** Every individual value or text a patient's client wrote: none may reach a node's disk, log or any API answer. */
const canaries: string[] = [
  ...people.flatMap((p) => [
    p.title,
    p.notes,
    p.bp,
    `"bloodPressure":"${p.bp}"`,
    JSON.stringify(p.heartRate === undefined ? { bloodPressure: p.bp } : { bloodPressure: p.bp, heartRate: p.heartRate }),
  ]),
  FORGED_TITLE,
];
const canaryBytes = canaries.map((c) => ({ text: c, bytes: Buffer.from(c, 'utf8') }));
function canariesIn(bytes: Uint8Array): string[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return canaryBytes.filter((c) => b.includes(c.bytes)).map((c) => c.text);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Every key and value of a LevelDB store as LevelDB hands them back: table files are Snappy-compressed, so
 * a value could escape a byte search of the files. Read from a copy (the store's own files stay untouched).
 */
async function levelEntries(dir: string, visit: (key: string, value: Uint8Array) => void): Promise<number> {
  const copy = mkdtempSync(join(tmpdir(), 'medledger-canary-'));
  cpSync(dir, copy, { recursive: true });
  const db = new ClassicLevel<string, Uint8Array>(copy, { keyEncoding: 'utf8', valueEncoding: 'view' });
  let n = 0;
  try {
    await db.open();
    for await (const [key, value] of db.iterator()) {
      visit(key, value);
      n++;
    }
  } finally {
    await db.close();
    rmSync(copy, { recursive: true, force: true });
  }
  return n;
}

/** The display bucket of a systolic value (10 mmHg wide from lo), computed here independently of the code. */
const displayBucket = (v: number) => Math.floor((v - measures.systolic.lo) / measures.systolic.bucketWidth);

/** The statistics as the code documents them (prio3.ts momentsResult / histogramResult), from the values here. */
function expected(values: number[]) {
  const m = measures.systolic;
  const n = values.length;
  const xs = values.map((v) => v - m.lo);
  const s1 = xs.reduce((a, x) => a + x, 0);
  const s2 = xs.reduce((a, x) => a + x * x, 0);
  const mean = (m.lo + s1 / n) / m.scale;
  // variance = (nΣx² − (Σx)²)/n², the numerator an exact integer.
  const stddev = Math.sqrt(Number(BigInt(n) * BigInt(s2) - BigInt(s1) * BigInt(s1))) / n / m.scale;
  const counts = new Map<number, number>();
  for (const v of values) counts.set(displayBucket(v), (counts.get(displayBucket(v)) ?? 0) + 1);
  const sorted = [...values].sort((a, b) => a - b);
  const median = displayBucket(sorted[Math.ceil(n / 2) - 1]!);
  // Fullest bucket, ties to the lowest.
  const mode = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  return { mean, stddev, median, mode };
}

describe('issue 13 acceptance: private statistics over 30 patients at four hospitals', () => {
  let net: TestNetwork;
  let auditor: Session;
  let api: string;
  /** Every API answer this test process received (bytes scanned as they arrive) and every CLI output. */
  const answerHits: string[] = [];
  let answersScanned = 0;
  const realFetch = globalThis.fetch;

  beforeAll(async () => {
    globalThis.fetch = async (...args: Parameters<typeof fetch>) => {
      const res = await realFetch(...args);
      const bytes = new Uint8Array(await res.clone().arrayBuffer());
      answersScanned++;
      for (const hit of canariesIn(bytes)) answerHits.push(`${String(args[0])}: ${hit}`);
      return res;
    };
    net = await TestNetwork.create(4, { stats: setting });
    await net.start();
    api = net.node(0).apiUrl;
    auditor = await net.staff(0, 'aud-acc', 'auditor');
  }, 120_000);

  afterAll(async () => {
    globalThis.fetch = realFetch;
    await net?.destroy();
  });

  const cliRuns: CliRun[] = [];
  async function stats(args: string[]): Promise<CliRun> {
    const r = await cli(['stats', '--api', api, '--user', 'aud-acc', ...args], {}, 120_000);
    cliRuns.push(r);
    return r;
  }

  /** Each node's view of a job (the ledger's, so the same everywhere). */
  async function jobEverywhere(id: string): Promise<StatsJobResponse[]> {
    return Promise.all([0, 1, 2, 3].map(async (i) => (await net.sessionAt(i, auditor)).api.statsJob(auditor.userId, auditor.signer, id)));
  }

  /** "stats job aggregated" log lines of a job (logged with its id's first 12 hex digits), per node. */
  function aggregations(jobId: string): number[] {
    return [0, 1, 2, 3].map(
      (i) =>
        net
          .logTail(i, 1_000_000, /"module":"stats"/)
          .split('\n')
          .filter((l) => l.includes('stats job aggregated') && l.includes(`"job":"${jobId.slice(0, 12)}"`)).length,
    );
  }

  /**
   * A hand-forged report: the contributor's client skips the range check. The measure's histogram has one
   * bucket per possible value and must be one-hot; here bucket 0 counts 5 (a value of 5 × 20 mmHg's weight).
   * Prio3's proof catches it.
   */
  async function forgedReport(p: Session, record: string, batch: string, genesisHash: Uint8Array, keys: Uint8Array[]): Promise<TxBody<'statsReport'>> {
    const place = { patient: p.userId, record, version: 1, measure: 'systolic' as const, batch };
    const vdaf: Prio3Vdaf = createVdaf('systolic', 'histogram', 4);
    const vector = Array.from({ length: valueCount(measures.systolic) }, (_, i) => (i === 0 ? 5n : 0n));
    (vdaf.flp as unknown as { encode: () => bigint[] }).encode = () => vector;
    const r = await shard(vdaf, 0);
    // The proof is what rejects it: every aggregator prepares its share, the combined verifier fails.
    const honestVdaf = vdafFor('systolic', 'histogram', 4);
    const verifyKey = randomBytes(16);
    const prepShares = await Promise.all(r.inputShares.map(async (x, i) => (await prepareInit(honestVdaf, verifyKey, i, r.nonce, r.publicShare, x)).prepShare));
    await expect(combinePrepShares(honestVdaf, prepShares)).rejects.toBeInstanceOf(ProofFailed);
    const shares = r.inputShares.map((x, i) => sealShare(keys[i]!, shareContext(genesisHash, place, 'histogram', r.nonce, i), x));
    return { version: 1, measure: 'systolic', batch, reports: { histogram: { nonce: r.nonce, publicShare: r.publicShare, shares } } };
  }

  it('exact mean, stddev, median and mode of the 20 contributors; forged report dropped; stored result reused; 9 reports withheld; no value anywhere', async () => {
    const t0 = Date.now();
    const phases: string[] = [];
    const phase = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // ---- patients: registration and consent, each through their own client ----
    const warnings: string[] = [];
    const sessions = await Promise.all(
      people.map(async (p) => {
        const s = await net.patient(p.hospital, p.id);
        s.onWarning = (m) => warnings.push(`${p.id}: ${m}`);
        return s;
      }),
    );
    const optIn = people.flatMap((p, i) => (p.contributes || IN_THEN_OUT.includes(i) ? [i] : []));
    for (const r of await Promise.all(optIn.map((i) => sessions[i]!.setStatsConsent(true)))) expect(r.denied).toBeUndefined();
    for (const r of await Promise.all(IN_THEN_OUT.map((i) => sessions[i]!.setStatsConsent(false)))) expect(r.denied).toBeUndefined();
    const consent = await Promise.all(sessions.map(async (s) => (await s.overview()).statsConsent?.contribute ?? false));
    expect(consent).toEqual(people.map((p) => p.contributes));
    phase('registered and consented');

    // ---- records with vitals, all in one fresh batch ----
    let batch: Batch = batchOf(setting, Date.now());
    if (batch.end - Date.now() < NEED_MS) {
      await sleep(batch.end - Date.now() + 100);
      batch = batchOf(setting, Date.now());
    }
    const created = await Promise.all(
      people.map((p, i) =>
        sessions[i]!.createRecord(p.id, {
          title: p.title,
          notes: p.notes,
          vitals: { bloodPressure: p.bp, ...(p.heartRate !== undefined ? { heartRate: p.heartRate } : {}) },
        }),
      ),
    );
    for (const c of created) expect(c.denied).toBeUndefined();
    expect(warnings).toEqual([]);

    // A 31st patient, a forger who opts in, creates a record without vitals (nothing reported by the client) and
    // reports a forged value for it (a contributor could not: one report per patient per measure and batch).
    const forger = await net.patient(3, 'pat-forger');
    expect((await forger.setStatsConsent(true)).denied).toBeUndefined();
    const forgedRecord = await forger.createRecord(forger.userId, { title: FORGED_TITLE, vitals: {} });
    expect(forgedRecord.denied).toBeUndefined();
    const { genesis } = await forger.recipientKeys.trustAnchor();
    const aggregatorKeys = genesis.file.hospitals.map((h) => fromHex(h.aggregatorKey!));
    const hospitals = genesis.file.hospitals.map((h) => h.id);
    const time = Date.now();
    expect(batchOf(setting, time).label).toBe(batch.label);
    const forged = await forger.act(
      'statsReport',
      { patient: forger.userId, record: forgedRecord.value!, body: await forgedReport(forger, forgedRecord.value!, batch.label, genesis.hash, aggregatorKeys) },
      undefined,
      time,
    );
    expect(forged.event?.outcome, forged.event?.reason).toBe('success');
    expect(Date.now(), 'every record and report inside the batch').toBeLessThan(batch.end);
    phase(`records and reports in batch ${batch.label}`);

    // The ledger counted the reports of contributors only (+ the forged one): non-contributors' records were not reported.
    const listed = async (measure: 'systolic' | 'diastolic' | 'heartRate' | 'temperature') =>
      (await auditor.api.statsBatches(auditor.userId, auditor.signer, measure)).batches.find((b) => b.batch === batch.label)?.reports ?? 0;
    expect(await Promise.all((['systolic', 'diastolic', 'heartRate', 'temperature'] as const).map(listed))).toEqual([CONTRIBUTORS + 1, CONTRIBUTORS, 9, 0]);

    // The records are really there (a positive control for the canary scan): the owner's client reads its text back.
    const back = await sessions[5]!.readRecord(people[5]!.id, created[5]!.value!);
    expect(back.value?.content).toMatchObject({ title: people[5]!.title, vitals: { bloodPressure: people[5]!.bp } });

    // Closed once a block's time reaches its end (empty blocks keep coming).
    await sleep(batch.end - Date.now() + 1_000);
    phase('batch closed');

    // ---- the auditor's queries ----
    const want = expected(SYSTOLIC);
    expect(want.mean).toBe(134.25);
    expect(want.stddev).toBeCloseTo(Math.sqrt(SYSTOLIC.reduce((a, v) => a + (v - 134.25) ** 2, 0) / CONTRIBUTORS), 12);
    expect([want.median, want.mode]).toEqual([11, 10]); // 130–139 and 120–129
    const q = (stat: 'mean' | 'stddev' | 'median' | 'mode' | 'count') =>
      auditor.queryStats({ measure: 'systolic', stat, batch: batch.label }, { timeoutMs: 90_000 });
    const done = (a: StatsAnswer | undefined) => {
      if (a?.status !== 'done') throw new Error(`expected a result, got ${JSON.stringify(a)}`);
      return a;
    };

    const mean = await q('mean');
    expect(mean.denied).toBeUndefined();
    const m = done(mean.value);
    phase("mean answered (the batch's job aggregated)");
    expect(m).toMatchObject({ used: CONTRIBUTORS, dropped: 1, reused: false, result: { stat: 'mean', count: CONTRIBUTORS, mean: want.mean } });
    const job = m.job.job;
    expect(job).toBe(mean.id);
    // Every hospital dropped the forged report by the proof itself.
    for (const j of await jobEverywhere(job)) {
      expect(j).toMatchObject({ status: 'done', instance: 'histogram', reports: CONTRIBUTORS + 1, used: CONTRIBUTORS, dropped: 1, missing: [] });
      expect(j.shares.map((s) => [s.hospital, s.used, s.dropped])).toEqual(hospitals.map((h) => [h, CONTRIBUTORS, 1]));
    }

    const sd = done((await q('stddev')).value);
    expect(sd).toMatchObject({ used: CONTRIBUTORS, dropped: 1, reused: true, result: { stat: 'stddev', stddev: want.stddev, mean: want.mean } });
    expect(sd.job.job).toBe(job);

    // Median through the CLI as an auditor would run it: the same job answers every statistic of the batch.
    const medianRun = await stats(['--measure', 'systolic', '--stat', 'median', '--batch', batch.label, '--wait', '90', '--json']);
    expect(medianRun.stderr).toBe('');
    expect(medianRun.code).toBe(0);
    const median = JSON.parse(medianRun.stdout) as {
      status: string;
      job: string;
      reused: boolean;
      used: number;
      dropped: number;
      result: { bucket: number; lo: number; hi: number };
    };
    phase('median answered');
    const wantMedian = bucketRange(measures.systolic, want.median);
    expect(median).toMatchObject({
      status: 'done',
      job,
      reused: true,
      used: CONTRIBUTORS,
      dropped: 1,
      result: { stat: 'median', count: CONTRIBUTORS, bucket: want.median, ...wantMedian },
    });
    const mode = done((await q('mode')).value);
    expect(mode).toMatchObject({
      reused: true,
      used: CONTRIBUTORS,
      dropped: 1,
      result: { stat: 'mode', bucket: want.mode, ...bucketRange(measures.systolic, want.mode) },
    });
    expect(mode.job.job).toBe(job);
    // The whole histogram the job holds: exactly the contributors' bucket counts.
    const counts = mode.histogram!.buckets.map((b) => b.count);
    expect(counts).toEqual(counts.map((_, i) => SYSTOLIC.filter((v) => displayBucket(v) === i).length));

    // ---- the same batch and statistic again: the stored result, no new aggregation ----
    const jobBefore = await jobEverywhere(job);
    await sleep(1_000); // a second aggregation, if one started, would have time to log
    const againRun = await stats(['--measure', 'systolic', '--stat', 'mean', '--batch', batch.label, '--json']);
    expect(againRun.code).toBe(0);
    const again = JSON.parse(againRun.stdout) as {
      tx: string;
      job: string;
      reused: boolean;
      status: string;
      used: number;
      dropped: number;
      result: { mean: number };
    };
    expect(again).toMatchObject({ status: 'done', job: job, reused: true, used: CONTRIBUTORS, dropped: 1, result: { mean: want.mean } });
    expect(again.tx).not.toBe(job); // a new audited query, answered by the old job
    const text = await stats(['--measure', 'systolic', '--stat', 'mean', '--batch', batch.label]);
    expect(text.stdout).toContain(`systolic mean 134.25 mmHg — batch ${batch.label}`);
    expect(text.stdout).toContain('reports used: 20 · dropped as invalid: 1');
    expect(text.stdout).toContain('computed earlier: this query reused its stored aggregate');
    await sleep(2_000);
    expect(await jobEverywhere(job)).toEqual(jobBefore);
    // Every node opened and prepared all 21 of its shares (none invalid before the proof): the proof dropped the forged one.
    for (const i of [0, 1, 2, 3]) {
      const prepared = net
        .logTail(i, 1_000_000, /stats job prepared/)
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { job: string; reports: number; invalid: number });
      expect(prepared.map((p) => [p.job, p.reports, p.invalid]).sort(), net.node(i).name).toEqual([[job.slice(0, 12), CONTRIBUTORS + 1, 0]]);
    }
    // One aggregation on each node, in all; the batch holds its one job and no other.
    expect(aggregations(job)).toEqual([1, 1, 1, 1]);
    for (const i of [0, 1, 2, 3]) {
      const samples = await fetchMetrics(net.node(i).apiUrl);
      expect(
        [
          metricValue(samples, 'medledger_stats_aggregations_total', { outcome: 'released' }),
          metricValue(samples, 'medledger_stats_aggregations_total', { outcome: 'withheld' }),
          metricValue(samples, 'medledger_stats_reports_total', { result: 'used' }),
          metricValue(samples, 'medledger_stats_reports_total', { result: 'dropped' }),
        ],
        net.node(i).name,
      ).toEqual([1, 0, CONTRIBUTORS, 1]);
    }
    for (const i of [0, 1, 2, 3])
      expect(
        net
          .logTail(i, 1_000_000, /stats job aggregated/)
          .split('\n')
          .filter(Boolean).length,
        net.node(i).name,
      ).toBe(1);
    const systolicBatch = (await auditor.api.statsBatches(auditor.userId, auditor.signer, 'systolic')).batches.find((b) => b.batch === batch.label);
    expect(systolicBatch).toEqual({ batch: batch.label, reports: CONTRIBUTORS + 1, jobs: { histogram: job } });

    // ---- 9 reports: not released ----
    const small = await auditor.queryStats({ measure: 'heartRate', stat: 'mean', batch: batch.label });
    expect(small.denied).toBe('batch-too-small');
    expect(small.value).toBeUndefined();
    const smallRun = await stats(['--measure', 'heartRate', '--stat', 'median', '--batch', batch.label]);
    expect(smallRun.code).toBe(1);
    expect(smallRun.stderr).toContain('denied: batch-too-small');
    expect(smallRun.stdout).toBe('');
    expect((await auditor.api.statsBatches(auditor.userId, auditor.signer, 'heartRate')).batches.find((b) => b.batch === batch.label)).toEqual({
      batch: batch.label,
      reports: 9,
      jobs: {},
    });
    phase('queries done');

    // ---- canaries: API answers and CLI output, then every node's files, LevelDB contents and log ----
    expect(answersScanned).toBeGreaterThan(100);
    expect(answerHits).toEqual([]);
    for (const r of cliRuns) expect(canariesIn(Buffer.from(r.stdout + r.stderr))).toEqual([]);

    await net.stop();
    for (const i of [0, 1, 2, 3]) {
      const n = net.node(i);
      const nodeDir = dirname(n.configFile);
      const files = filesUnder(nodeDir);
      expect(files).toContain(net.processes[i]!.logFile);
      const hits: string[] = [];
      let userIdSeen = false;
      for (const f of files) {
        const bytes = readFileSync(f);
        hits.push(...canariesIn(bytes).map((c) => `${f}: ${c}`));
        userIdSeen ||= bytes.includes(people[i]!.id);
      }
      const ledger = join(n.dataDir, 'ledger');
      expect(existsSync(join(ledger, 'CURRENT'))).toBe(true);
      let levelIdSeen = false;
      const entries = await levelEntries(ledger, (key, value) => {
        hits.push(...canariesIn(Buffer.concat([Buffer.from(key), value])).map((c) => `${n.name} LevelDB ${key}: ${c}`));
        levelIdSeen ||= Buffer.from(value).includes(people[i]!.id) || key.includes(people[i]!.id);
      });
      // The scans see plaintext that is meant to be there (user ids in transactions): they would see a canary.
      expect(userIdSeen && levelIdSeen, `${n.name}: the scan finds the user id ${people[i]!.id}`).toBe(true);
      expect(entries).toBeGreaterThan(100);
      expect(hits, n.name).toEqual([]);
    }
    phase('canaries checked');
    console.log(`stats acceptance: ${phases.join('; ')}; ${answersScanned} API answers scanned`);
  }, 240_000);
});
