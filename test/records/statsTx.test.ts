import { describe, expect, it } from 'vitest';
import { actionOf } from '../../src/records/audit.js';
import { generateSigningKeyPair, createSigner } from '../../src/records/crypto/signature.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { utf8 } from '../../src/records/crypto/bytes.js';
import { generateEncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { MAX_BATCH_REPORTS, MIN_BATCH_REPORTS } from '../../src/records/state/statsRules.js';
import { batchOf, type StatsSetting } from '../../src/records/stats/batches.js';
import { reportsDigest, verifyKeyFor } from '../../src/records/stats/job.js';
import { measures, type MeasureName, type StatsInstance } from '../../src/records/stats/measures.js';
import { aggregate, combinePrepShares, computeStat, prepareInit, prepareNext, vdafFor } from '../../src/records/stats/prio3.js';
import { buildStatsReportBody, shareContextOfTx } from '../../src/records/stats/report.js';
import { openShare } from '../../src/records/stats/sealing.js';
import { decodeTx, signTx } from '../../src/records/tx/codec.js';
import { MAX_TX_BYTES, type Tx, type TxBody, type UnsignedTx } from '../../src/records/tx/types.js';
import { createLedger, DEFAULT_START_TIME, type Ledger, type LedgerOptions, type TxInput } from '../support/ledgerFixture.js';

/**
 * Issue 13's transactions through the pure `apply`: statsConsent, statsReport, statsQuery and statsAggregate,
 * every denial reason and invalidity, and one whole batch aggregated by the hospitals' shares in process.
 */
const HOUR = 3_600_000;
const stats: StatsSetting = { batchMs: HOUR };
const P = 'pat-1';
const P2 = 'pat-2';
const AUD = 'aud-1';
const DOC = 'doc-1';

function world(options: Partial<LedgerOptions> = {}) {
  const ledger = createLedger({ stats, ...options });
  ledger.registerPatient(P, 'hosp-a');
  ledger.registerPatient(P2, 'hosp-b');
  ledger.enrol('admin-a', AUD, 'auditor');
  ledger.enrol('admin-a', DOC, 'doctor');
  ledger.grant(P, DOC);
  return ledger;
}

const hospitalsOf = (ledger: Ledger) => ledger.state.get('network', 'genesis')!.hospitals;
const batchNow = (ledger: Ledger) => batchOf(stats, ledger.clock).label;

async function reportBody(ledger: Ledger, patient: string, record: string, value = 120, measure: MeasureName = 'systolic'): Promise<TxBody<'statsReport'>> {
  const hospitals = hospitalsOf(ledger);
  return buildStatsReportBody({
    genesisHash: ledger.genesisHash,
    patient,
    record,
    version: ledger.state.get('records', record)!.version,
    measure,
    value,
    batch: batchNow(ledger),
    aggregatorKeys: hospitals.map((h) => ledger.aggregatorKeys.get(h)?.publicKey ?? generateEncryptionKeyPair().publicKey),
  });
}

const reportInput = (patient: string, record: string, body: TxBody<'statsReport'>): TxInput<'statsReport'> => ({ type: 'statsReport', patient, record, body });

function consent(ledger: Ledger, patient: string, contribute = true) {
  return ledger.must(patient, { type: 'statsConsent', patient, body: { contribute } });
}

/** Expects a valid, denied transaction with exactly `reason`, whose only state change is the actor's nonce. */
function expectDenied<T extends UnsignedTx['type']>(ledger: Ledger, actor: string, input: TxInput<T>, reason: string) {
  const before = ledger.snapshot();
  const tx = ledger.sign(actor, input);
  const result = ledger.apply(tx);
  if (!result.valid) throw new Error(`expected a denied transaction, got ${result.error.code}: ${result.error.message}`);
  expect(result.event.outcome).toBe('denied');
  expect(result.event.reason).toBe(reason);
  expect(result.event.action).toBe(actionOf[input.type]);
  const consumed = { ...before.users[actor]!, lastNonce: tx.tx.nonce };
  expect(result.changes).toEqual([{ table: 'users', key: actor, value: consumed }]);
  return result.event;
}

function expectInvalid<T extends UnsignedTx['type']>(ledger: Ledger, tx: Tx<T>, code: string, ctx?: { blockTime?: number }) {
  const before = ledger.snapshot();
  const result = ledger.apply(tx, ctx);
  expect(result.valid).toBe(false);
  if (!result.valid) expect(result.error.code).toBe(code);
  expect(ledger.snapshot()).toEqual(before);
}

describe('statsConsent', () => {
  it('the patient opts in and out; the state and the audit event show it', () => {
    const ledger = world();
    const event = consent(ledger, P);
    expect(event).toMatchObject({ type: 'statsConsent', action: 'U', outcome: 'success', patient: P });
    expect(ledger.user(P).statsConsent).toEqual({ contribute: true, since: event.recorded });
    const out = consent(ledger, P, false);
    expect(ledger.user(P).statsConsent).toEqual({ contribute: false, since: out.recorded });
  });

  it('denies anyone else: another patient (not-own-data), staff (role-not-allowed)', () => {
    const ledger = world();
    expectDenied(ledger, P2, { type: 'statsConsent', patient: P, body: { contribute: true } }, 'not-own-data');
    expectDenied(ledger, DOC, { type: 'statsConsent', patient: P, body: { contribute: true } }, 'role-not-allowed');
    expectDenied(ledger, AUD, { type: 'statsConsent', patient: P, body: { contribute: true } }, 'role-not-allowed');
    expectDenied(ledger, 'admin-a', { type: 'statsConsent', patient: P, body: { contribute: true } }, 'role-not-allowed');
  });
});

describe('statsReport', () => {
  it('an opted-in patient reports a measure of the current version once; the batch counts it', async () => {
    const ledger = world();
    consent(ledger, P);
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    const event = ledger.must(P, reportInput(P, record, body));
    expect(event).toMatchObject({ type: 'statsReport', action: 'C', patient: P, record });
    expect(ledger.state.get('statsBatches', `systolic/${body.batch}`)).toEqual({ measure: 'systolic', batch: body.batch, reports: 1, jobs: {} });
    expect(ledger.state.get('records', record)!.statsReported).toEqual({ systolic: 1 });
    // Another measure of the same version is its own report.
    ledger.must(P, reportInput(P, record, await reportBody(ledger, P, record, 80, 'diastolic')));
    expect(ledger.user(P).statsReported).toEqual({ systolic: body.batch, diastolic: body.batch });
    expectDenied(ledger, P, reportInput(P, record, await reportBody(ledger, P, record)), 'already-reported');
  });

  it('one report per patient per (measure, batch): a new version or another record is already-reported until the next batch', async () => {
    const ledger = world();
    consent(ledger, P);
    consent(ledger, P2);
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    ledger.must(P, reportInput(P, record, body));
    // A new version of the same record, another record: the patient already counts in this batch.
    ledger.must(DOC, { type: 'updateRecord', patient: P, record, body: { recipients: ledger.recipientsFor(P), version: 2 } });
    expectDenied(ledger, P, reportInput(P, record, await reportBody(ledger, P, record, 130)), 'already-reported');
    const other = ledger.createRecord(P, P);
    expectDenied(ledger, P, reportInput(P, other, await reportBody(ledger, P, other, 300)), 'already-reported');
    // Another patient is not affected.
    const theirs = ledger.createRecord(P2, P2);
    ledger.must(P2, reportInput(P2, theirs, await reportBody(ledger, P2, theirs, 140)));
    expect(ledger.state.get('statsBatches', `systolic/${body.batch}`)!.reports).toBe(2);
    // The next batch takes the patient's report again.
    ledger.clock = batchOf(stats, ledger.clock).end + 1_000;
    const next = await reportBody(ledger, P, other, 125);
    expect(next.batch).not.toBe(body.batch);
    ledger.must(P, reportInput(P, other, next));
    expect(ledger.user(P).statsReported).toEqual({ systolic: next.batch });
    expect(ledger.state.get('statsBatches', `systolic/${next.batch}`)!.reports).toBe(1);
  });

  it(`a batch holding ${MAX_BATCH_REPORTS} reports of a measure is full (batch-full): no job outgrows what a node prepares`, async () => {
    const ledger = world();
    consent(ledger, P);
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    const key = `systolic/${body.batch}`;
    ledger.state.write([{ table: 'statsBatches', key, value: { measure: 'systolic', batch: body.batch, reports: MAX_BATCH_REPORTS, jobs: {} } }]);
    expectDenied(ledger, P, reportInput(P, record, body), 'batch-full');
    expect(ledger.state.get('statsBatches', key)!.reports).toBe(MAX_BATCH_REPORTS);
    // Another measure's batch is its own.
    ledger.must(P, reportInput(P, record, await reportBody(ledger, P, record, 80, 'diastolic')));
  });

  it('every transaction stays under MAX_TX_BYTES (4 hospitals and 70, the stated limit, each measure)', async () => {
    for (const n of [4, 70]) {
      const keys = Array.from({ length: n }, () => new Uint8Array(32).fill(9));
      for (const measure of Object.keys(measures) as MeasureName[]) {
        const value = measures[measure].hi;
        const body = await buildStatsReportBody({
          genesisHash: new Uint8Array(32),
          patient: P,
          record: 'rec-0000000000000001',
          version: 1,
          measure,
          value,
          batch: '2026-12',
          aggregatorKeys: keys,
        });
        const size = encodeCanonical({ tx: { body, pad: new Uint8Array(400) }, sig: new Uint8Array(64) }).length; // + the envelope's other fields
        expect(size, `${measure} with ${n} hospitals`).toBeLessThan(MAX_TX_BYTES);
      }
    }
  });

  it('denies: not-own-data, role-not-allowed, no-stats-consent (never / opted out), record-not-found, record-deleted, version-conflict', async () => {
    const ledger = world();
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    expectDenied(ledger, P2, reportInput(P, record, body), 'not-own-data');
    expectDenied(ledger, DOC, reportInput(P, record, body), 'role-not-allowed');
    expectDenied(ledger, P, reportInput(P, record, body), 'no-stats-consent');
    consent(ledger, P);
    consent(ledger, P, false);
    expectDenied(ledger, P, reportInput(P, record, body), 'no-stats-consent');
    consent(ledger, P);
    expectDenied(ledger, P, reportInput(P, 'rec-00000000000000ff', body), 'record-not-found');
    expectDenied(ledger, P, reportInput(P, record, { ...body, version: 2 }), 'version-conflict');
    const other = ledger.createRecord(P, P);
    ledger.must(P, { type: 'deleteRecord', patient: P, record: other, body: {} });
    expectDenied(ledger, P, reportInput(P, other, await reportBody(ledger, P, other)), 'record-deleted');
  });

  it('denies bad-report: a share missing, a share of the wrong size, a public share of the wrong size', async () => {
    const ledger = world();
    consent(ledger, P);
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    const h = body.reports.histogram;
    const variants: TxBody<'statsReport'>['reports'][] = [
      { histogram: { ...h, shares: [...h.shares, h.shares[1]!] } },
      { histogram: { ...h, shares: [h.shares[0]!.subarray(1), h.shares[1]!] } },
      { histogram: { ...h, shares: [h.shares[0]!, h.shares[1]!.subarray(1)] } },
      { histogram: { ...h, publicShare: h.publicShare.subarray(16) } },
    ];
    for (const reports of variants) expectDenied(ledger, P, reportInput(P, record, { ...body, reports }), 'bad-report');
  });

  it('denies no-aggregator-key when a hospital of the genesis has none', async () => {
    const ledger = world({ aggregators: ['hosp-a'] });
    consent(ledger, P);
    const record = ledger.createRecord(P, P);
    expectDenied(ledger, P, reportInput(P, record, await reportBody(ledger, P, record)), 'no-aggregator-key');
  });

  it('is invalid when it names another batch than its time, or lands in a block of another batch', async () => {
    const ledger = world();
    consent(ledger, P);
    const record = ledger.createRecord(P, P);
    const body = await reportBody(ledger, P, record);
    const previous = batchOf(stats, ledger.clock - HOUR).label;
    expectInvalid(ledger, ledger.sign(P, reportInput(P, record, { ...body, batch: previous })), 'MALFORMED');
    // Signed just before the batch end, included in the first block after it: the closed batch takes nothing.
    const end = batchOf(stats, ledger.clock).end;
    const late = ledger.sign(P, { ...reportInput(P, record, body), time: end - 1 });
    expectInvalid(ledger, late, 'BAD_TIME', { blockTime: end });
  });
});

/** `count` patients with consent, a record and a systolic report each, in the current batch. */
async function fillBatch(ledger: Ledger, values: number[]): Promise<{ batch: string; txs: Tx<'statsReport'>[] }> {
  const batch = batchNow(ledger);
  const txs: Tx<'statsReport'>[] = [];
  for (const [i, value] of values.entries()) {
    const patient = `pt-${i}`;
    ledger.registerPatient(patient, i % 2 ? 'hosp-b' : 'hosp-a');
    consent(ledger, patient);
    const record = ledger.createRecord(patient, patient);
    const tx = ledger.sign(patient, reportInput(patient, record, await reportBody(ledger, patient, record, value)));
    const result = ledger.apply(tx);
    if (!result.valid || result.event.outcome !== 'success') throw new Error('report failed');
    txs.push(tx);
  }
  expect(batchNow(ledger)).toBe(batch);
  return { batch, txs };
}

function closeBatch(ledger: Ledger, batch: string) {
  ledger.clock = Date.parse(batch) + HOUR + 1_000;
}

const query = (measure: MeasureName, stat: UnsignedTx<'statsQuery'>['body']['stat'], batch: string): TxInput<'statsQuery'> => ({
  type: 'statsQuery',
  body: { measure, stat, batch },
});

describe('statsQuery', () => {
  it('denies role-not-allowed, unknown-batch, batch-open, batch-too-small (9 reports), no-aggregator-key', async () => {
    const ledger = world();
    const { batch } = await fillBatch(ledger, [120, 121, 122, 123, 124, 125, 126, 127, 128]);
    expectDenied(ledger, AUD, query('systolic', 'mean', batch), 'batch-open');
    closeBatch(ledger, batch);
    for (const actor of [P, DOC, 'admin-a']) expectDenied(ledger, actor, query('systolic', 'mean', batch), 'role-not-allowed');
    expectDenied(ledger, AUD, query('systolic', 'mean', '2026-12'), 'unknown-batch');
    expectDenied(ledger, AUD, query('systolic', 'mean', '2025-01-01T00:30:00Z'), 'unknown-batch');
    expect(MIN_BATCH_REPORTS).toBe(10);
    expectDenied(ledger, AUD, query('systolic', 'mean', batch), 'batch-too-small');
    expectDenied(ledger, AUD, query('diastolic', 'mean', batch), 'batch-too-small'); // no reports at all

    const keyless = world({ aggregators: ['hosp-b'] });
    closeBatch(keyless, batch);
    expectDenied(keyless, AUD, query('systolic', 'mean', batch), 'no-aggregator-key');
  });

  it('the first query of (measure, batch) creates the one job of every statistic; later ones point at it', async () => {
    const ledger = world();
    const { batch } = await fillBatch(
      ledger,
      Array.from({ length: 10 }, (_, i) => 110 + i),
    );
    closeBatch(ledger, batch);
    const first = ledger.sign(AUD, query('systolic', 'mean', batch));
    const result = ledger.apply(first);
    expect(result.valid && result.event.outcome).toBe('success');
    const job = ledger.state.get('statsJobs', first.idHex)!;
    expect(job).toMatchObject({
      id: first.idHex,
      measure: 'systolic',
      batch,
      instance: 'histogram',
      queriedBy: AUD,
      reports: 10,
      status: 'pending',
      shares: {},
    });
    expect(job.height).toBe(ledger.height);
    const before = ledger.snapshot();
    for (const stat of ['stddev', 'count', 'histogram', 'median', 'mode'] as const) ledger.must(AUD, query('systolic', stat, batch)); // no new job
    expect(ledger.snapshot().statsJobs).toEqual(before.statsJobs);
    expect(ledger.state.get('statsBatches', `systolic/${batch}`)!.jobs).toEqual({ histogram: first.idHex });
  });
});

/** What a hospital's node does for a job, in process: open own shares, prepare with the others, aggregate. */
async function aggregateShares(ledger: Ledger, jobId: string, txs: Tx<'statsReport'>[], blockHash: Uint8Array) {
  const job = ledger.state.get('statsJobs', jobId)!;
  const hospitals = hospitalsOf(ledger);
  const vdaf = vdafFor(job.measure, job.instance, hospitals.length);
  const verifyKey = verifyKeyFor(blockHash, jobId, vdaf.verifyKeySize);
  const outputs: Uint8Array[][] = hospitals.map(() => []);
  const used: string[] = [];
  for (const tx of txs) {
    const r = tx.tx.body.reports[job.instance as StatsInstance];
    const prepped = [];
    for (const [i, h] of hospitals.entries()) {
      const keys = ledger.aggregatorKeys.get(h)!;
      const share = openShare(keys, shareContextOfTx(ledger.genesisHash, tx.tx, job.instance, i), r.shares[i]!);
      prepped.push(await prepareInit(vdaf, verifyKey, i, r.nonce, r.publicShare, share));
    }
    const message = await combinePrepShares(
      vdaf,
      prepped.map((p) => p.prepShare),
    );
    prepped.forEach((p, i) => outputs[i]!.push(prepareNext(vdaf, p.prepState, message)));
    used.push(tx.idHex);
  }
  return { shares: outputs.map((o) => aggregate(vdaf, o)), used: used.length, digest: reportsDigest(used) };
}

const aggregateInput = (job: string, share: Uint8Array, used: number, dropped: number, digest: Uint8Array, via: string): TxInput<'statsAggregate'> => ({
  type: 'statsAggregate',
  via,
  body: { job, share, used, dropped, digest },
});

describe('statsAggregate', () => {
  async function pendingJob(values = [112, 118, 120, 125, 131, 140, 99, 104, 150, 122, 127]) {
    const ledger = world();
    const { batch, txs } = await fillBatch(ledger, values);
    closeBatch(ledger, batch);
    const q = ledger.sign(AUD, query('systolic', 'mean', batch));
    ledger.apply(q);
    const blockHash = sha256(utf8(`block ${ledger.height}`));
    const agg = await aggregateShares(ledger, q.idHex, txs, blockHash);
    return { ledger, values, job: q.idHex, agg };
  }

  it('each hospital submits its share signed by its validator key; all agree: done, and the result is exact', async () => {
    const { ledger, values, job, agg } = await pendingJob();
    const first = ledger.must('hosp-a', aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'));
    expect(first).toMatchObject({ type: 'statsAggregate', action: 'E', agent: { user: 'hosp-a', role: 'hospital', hospital: 'hosp-a' }, source: 'hosp-a' });
    expect(ledger.state.get('statsJobs', job)!.status).toBe('pending');
    expect(ledger.state.get('hospitals', 'hosp-a')!.lastNonce).toBeGreaterThan(0);
    ledger.must('hosp-b', aggregateInput(job, agg.shares[1]!, agg.used, 0, agg.digest, 'hosp-b'));
    const done = ledger.state.get('statsJobs', job)!;
    expect(done).toMatchObject({ status: 'done', used: values.length, dropped: 0 });
    const shares = hospitalsOf(ledger).map((h) => done.shares[h]!.share);
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    expect(computeStat('systolic', 'mean', shares, done.used!)).toEqual({ stat: 'mean', count: values.length, mean });
    // Closed: a late share is denied, the hospital's nonce still consumed.
    const late = ledger.sign('hosp-a', aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'));
    const result = ledger.apply(late);
    expect(result.valid && result.event.reason).toBe('job-closed');
    expect(ledger.state.get('hospitals', 'hosp-a')!.lastNonce).toBe(late.tx.nonce);
  });

  it('fewer than 10 reports passing the proof: every hospital withholds its share (empty) and the job is withheld', async () => {
    const { ledger, job, agg } = await pendingJob(); // 11 reports: say two failed the proof
    const empty = new Uint8Array(0);
    const before = ledger.snapshot();
    const tx = ledger.sign('hosp-a', aggregateInput(job, agg.shares[0]!, 9, 2, agg.digest, 'hosp-a'));
    const result = ledger.apply(tx);
    expect(result.valid && result.event.reason).toBe('bad-share'); // a real share with 9 used would publish it
    expect(ledger.snapshot().statsJobs).toEqual(before.statsJobs);
    ledger.must('hosp-a', aggregateInput(job, empty, 9, 2, agg.digest, 'hosp-a'));
    ledger.must('hosp-b', aggregateInput(job, empty, 9, 2, agg.digest, 'hosp-b'));
    expect(ledger.state.get('statsJobs', job)).toMatchObject({ status: 'withheld', used: 9, dropped: 2 });
  });

  it('more than 10% of the reports dropped: a real share is a bad share; every hospital withholds and nothing is released', async () => {
    // 13 reports: 1 dropped is 7.7%, 2 dropped is 15%.
    const { ledger, job, agg } = await pendingJob([112, 118, 120, 125, 131, 140, 99, 104, 150, 122, 127, 133, 109]);
    expect(ledger.submit('hosp-a', aggregateInput(job, agg.shares[0]!, 12, 1, agg.digest, 'hosp-a'))).toMatchObject({ valid: true });
    expect(ledger.state.get('statsJobs', job)!.shares['hosp-a']!.share.length).toBeGreaterThan(0);
    const denied = ledger.submit('hosp-b', aggregateInput(job, agg.shares[1]!, 11, 2, agg.digest, 'hosp-b'));
    expect(denied.valid && denied.event.reason).toBe('bad-share');
    const second = await pendingJob([112, 118, 120, 125, 131, 140, 99, 104, 150, 122, 127, 133, 109]);
    const empty = new Uint8Array(0);
    second.ledger.must('hosp-a', aggregateInput(second.job, empty, 11, 2, second.agg.digest, 'hosp-a'));
    second.ledger.must('hosp-b', aggregateInput(second.job, empty, 11, 2, second.agg.digest, 'hosp-b'));
    const withheld = second.ledger.state.get('statsJobs', second.job)!;
    expect(withheld).toMatchObject({ status: 'withheld', used: 11, dropped: 2 });
    expect(Object.values(withheld.shares).map((x) => x.share.length)).toEqual([0, 0]);
  });

  it('an empty share with 10 or more used is a bad share', async () => {
    const { ledger, job, agg } = await pendingJob();
    const result = ledger.submit('hosp-a', aggregateInput(job, new Uint8Array(0), agg.used, 0, agg.digest, 'hosp-a'));
    expect(result.valid && result.event.reason).toBe('bad-share');
  });

  it('disagreeing counts or digests fail the job, naming the hospitals that differ', async () => {
    const { ledger, job, agg } = await pendingJob();
    ledger.must('hosp-a', aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'));
    ledger.must('hosp-b', aggregateInput(job, agg.shares[1]!, agg.used - 1, 1, agg.digest, 'hosp-b'));
    expect(ledger.state.get('statsJobs', job)).toMatchObject({ status: 'failed', disagreeing: ['hosp-b'] });
  });

  it('denies: job-not-found, already-submitted (second share), bad-share, bad-counts; only the hospital nonce changes', async () => {
    const { ledger, job, agg } = await pendingJob();
    const denied = (input: TxInput<'statsAggregate'>, reason: string) => {
      const before = ledger.snapshot();
      const tx = ledger.sign('hosp-a', input);
      const result = ledger.apply(tx);
      if (!result.valid) throw new Error(result.error.message);
      expect(result.event).toMatchObject({ outcome: 'denied', reason, agent: { user: 'hosp-a', role: 'hospital' } });
      expect(result.changes).toEqual([{ table: 'hospitals', key: 'hosp-a', value: { ...before.hospitals['hosp-a']!, lastNonce: tx.tx.nonce } }]);
    };
    denied(aggregateInput('ab'.repeat(32), agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'), 'job-not-found');
    denied(aggregateInput(job, agg.shares[0]!.subarray(1), agg.used, 0, agg.digest, 'hosp-a'), 'bad-share');
    denied(aggregateInput(job, new Uint8Array(agg.shares[0]!.length).fill(0xff), agg.used, 0, agg.digest, 'hosp-a'), 'bad-share'); // not field elements
    denied(aggregateInput(job, agg.shares[0]!, agg.used, 1, agg.digest, 'hosp-a'), 'bad-counts');
    ledger.must('hosp-a', aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'));
    denied(aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a'), 'already-submitted');
  });

  it('is invalid when forged (another key), replayed, from an unknown hospital, via another node, or by a user', async () => {
    const { ledger, job, agg } = await pendingJob();
    const input = aggregateInput(job, agg.shares[0]!, agg.used, 0, agg.digest, 'hosp-a');
    // Forged: hosp-a as actor, signed by some other key (the transaction's own signature is fine).
    const rogue = generateSigningKeyPair();
    expectInvalid(
      ledger,
      ledger.sign('hosp-a', input, { signWith: { signing: rogue, signer: createSigner(rogue.secretKey), encKey: new Uint8Array(32) } }),
      'KEY_MISMATCH',
    );
    // hosp-b's validator key cannot speak for hosp-a either.
    expectInvalid(ledger, ledger.sign('hosp-a', input, { signWith: 'hosp-b' }), 'KEY_MISMATCH');
    // Replayed: the same signed transaction a second time.
    const tx = ledger.sign('hosp-a', input);
    expect(ledger.apply(tx).valid).toBe(true);
    expectInvalid(ledger, tx, 'REPLAY');
    // Unknown hospital.
    expectInvalid(ledger, ledger.sign('hosp-z', { ...input, via: 'hosp-a' }), 'UNKNOWN_ACTOR');
    // Through another hospital's node.
    expectInvalid(ledger, ledger.sign('hosp-b', { ...input, body: { ...input.body, share: agg.shares[1]! }, via: 'hosp-a' }), 'MALFORMED');
    // A user's own key under a user actor: statsAggregate actors are hospitals only.
    expectInvalid(ledger, ledger.sign(P, { ...input, via: 'hosp-a' }), 'UNKNOWN_ACTOR');
    // And the hospital's nonce was not moved by any of these.
    expect(ledger.state.get('hospitals', 'hosp-a')!.lastNonce).toBe(tx.tx.nonce);
  });

  it('a statsAggregate signed for another network does not verify (signature domain)', () => {
    const ledger = world();
    const keys = ledger.keys('hosp-a');
    const unsigned = {
      v: 1 as const,
      type: 'statsAggregate' as const,
      actor: 'hosp-a',
      key: keys.signing.publicKey,
      via: 'hosp-a',
      nonce: 1,
      time: DEFAULT_START_TIME,
      body: { job: 'ab'.repeat(32), share: new Uint8Array(16), used: 0, dropped: 0, digest: new Uint8Array(32) },
    };
    const tx = signTx(unsigned, keys.signer, new Uint8Array(32).fill(1));
    expect(() => decodeTx(tx.bytes, { genesisHash: ledger.genesisHash })).toThrow(/invalid signature/);
    expect(decodeTx(tx.bytes, { genesisHash: new Uint8Array(32).fill(1) }).tx.type).toBe('statsAggregate');
  });
});
