import type { StatsJobResponse } from '../api/contract.js';
import { bytesEqual, fromBase64, fromHex } from '../records/crypto/bytes.js';
import type { RecordContent } from '../records/content.js';
import { MedLedgerError } from '../records/errors.js';
import { batchOf } from '../records/stats/batches.js';
import { instanceOf, measures, measureValues, type MeasureName, type StatName } from '../records/stats/measures.js';
import { bucketCounts, computeStat, histogramResult, valueCounts, type HistogramResult, type StatResult } from '../records/stats/prio3.js';
import { buildStatsReportBody } from '../records/stats/report.js';
import type { ActionOutcome, Session } from './session.js';

/**
 * Private statistics on the user's side (issue 13). A contributing patient's client turns the vitals of each
 * record version it writes into one statsReport per measure (values sharded and sealed here, never sent in
 * clear); an auditor's client posts the query, waits for the hospitals' aggregate shares and combines them.
 */

/**
 * After a patient's own record version committed: one statsReport per measure present in its vitals, if the
 * patient contributes and has not reported that measure in the current batch yet (the ledger takes one report
 * per patient, measure and batch: a later version in the same batch is skipped, silently). Never fails the
 * record action: a failure is a warning naming the measure, never a value.
 * Staff-written records are not reported (a report is the patient's own signed statement); copies are not either
 * (the same value would count twice).
 */
export async function reportVitals(session: Session, r: { patient: string; record: string; version: number; content: RecordContent }): Promise<void> {
  if (session.keys.role !== 'patient' || r.patient !== session.userId) return;
  const values = measureValues(r.content);
  if (values.length === 0) return;
  let setup: { genesisHash: Uint8Array; aggregatorKeys: Uint8Array[]; stats: Parameters<typeof batchOf>[0]; reported: Partial<Record<MeasureName, string>> };
  try {
    const overview = await session.overview();
    if (!overview.statsConsent?.contribute) return;
    const [{ genesis }, identity] = await Promise.all([session.recipientKeys.trustAnchor(), session.api.identify()]);
    if (!bytesEqual(genesis.hash, identity.genesisHash)) throw new MedLedgerError('FORBIDDEN', 'the genesis file does not match the network of the node');
    const lacking = genesis.file.hospitals.filter((h) => !h.aggregatorKey).map((h) => h.id);
    if (lacking.length > 0) throw new MedLedgerError('MALFORMED', `no aggregator key in the genesis for ${lacking.join(', ')}`);
    setup = {
      genesisHash: genesis.hash,
      aggregatorKeys: genesis.file.hospitals.map((h) => fromHex(h.aggregatorKey!)),
      stats: genesis.stats,
      reported: overview.statsReported ?? {},
    };
  } catch (err) {
    session.onWarning(`record ${r.record} v${r.version} not reported to statistics: ${(err as Error).message}`);
    return;
  }
  for (const { measure, value } of values) {
    try {
      const time = Date.now();
      const batch = batchOf(setup.stats, time).label;
      if (setup.reported[measure] === batch) continue; // this batch already holds the patient's value
      const body = await buildStatsReportBody({
        genesisHash: setup.genesisHash,
        patient: r.patient,
        record: r.record,
        version: r.version,
        measure,
        value,
        batch,
        aggregatorKeys: setup.aggregatorKeys,
      });
      const res = await session.act('statsReport', { patient: r.patient, record: r.record, body }, undefined, time);
      if (res.event?.outcome === 'denied')
        session.onWarning(`statistics report of ${measure} (record ${r.record} v${r.version}) denied: ${res.event.reason ?? 'denied'}`);
    } catch (err) {
      session.onWarning(`statistics report of ${measure} (record ${r.record} v${r.version}) failed: ${(err as Error).message}`);
    }
  }
}

export interface StatsQuery {
  measure: MeasureName;
  stat: StatName;
  batch: string;
}

export interface StatsWaitOptions {
  /** How long to wait for a pending job (default 60 s); then the answer is `pending`, naming who is missing. */
  timeoutMs?: number;
  pollMs?: number;
  /** Each pending state seen while waiting (to show the missing hospitals). */
  onPending?: (job: StatsJobResponse) => void;
}

export type StatsAnswer =
  | {
      status: 'done';
      /** Absent when no report survived (every one dropped). */
      result?: StatResult;
      /** For histogram, median and mode: the whole histogram the job's aggregate holds, median and mode marked. */
      histogram?: HistogramResult;
      used: number;
      dropped: number;
      job: StatsJobResponse;
      /** The job existed before this query: its stored aggregate answered, no new aggregation ran. */
      reused: boolean;
    }
  | { status: 'pending'; job: StatsJobResponse; missing: string[]; waitingFor: string[]; reused: boolean }
  /** The hospitals agree, but fewer than 10 reports passed the proof: no share was published, nothing is released. */
  | { status: 'withheld'; job: StatsJobResponse; used: number; dropped: number; reused: boolean }
  | { status: 'failed'; job: StatsJobResponse; disagreeing: string[]; reused: boolean };

export const DEFAULT_STATS_WAIT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Auditor: posts an audited statsQuery; when the ledger allows it, finds the job that answers it (created by
 * this query, or an earlier one of the same batch and instance), waits for every hospital's aggregate share,
 * and computes the result here from them over the reports they all used.
 */
export async function queryStats(session: Session, q: StatsQuery, opts: StatsWaitOptions = {}): Promise<ActionOutcome<StatsAnswer>> {
  const res = await session.act('statsQuery', { body: { measure: q.measure, stat: q.stat, batch: q.batch } });
  const outcome = session.outcomeOf<StatsAnswer>(res);
  if (outcome.denied || res.event?.outcome !== 'success') return outcome;
  const instance = instanceOf(q.stat);
  const { batches } = await session.api.statsBatches(session.userId, session.signer, q.measure);
  const jobId = batches.find((b) => b.batch === q.batch)?.jobs[instance];
  if (!jobId)
    throw new MedLedgerError('UNAVAILABLE', `the node lists no ${instance} job for ${q.measure} in batch ${q.batch} after query ${res.id.slice(0, 12)}`);
  // A query that creates its job names it by its own id; any other id is an earlier query's job.
  const reused = jobId !== res.id;
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_STATS_WAIT_MS);
  let job: StatsJobResponse;
  for (;;) {
    job = await session.api.statsJob(session.userId, session.signer, jobId);
    if (job.job !== jobId || job.measure !== q.measure || job.batch !== q.batch || job.instance !== instance)
      throw new MedLedgerError('MALFORMED', `the node answered job ${jobId.slice(0, 12)} with another job`);
    if (job.status !== 'pending' || Date.now() >= deadline) break;
    opts.onPending?.(job);
    await sleep(Math.min(opts.pollMs ?? 500, Math.max(0, deadline - Date.now())));
  }
  if (job.status === 'done') return { ...outcome, value: { ...(await combine(session, q, job)), job, reused } };
  if (job.status === 'pending') return { ...outcome, value: { status: 'pending', job, missing: job.missing, waitingFor: job.waitingFor, reused } };
  if (job.status === 'failed') return { ...outcome, value: { status: 'failed', job, disagreeing: job.disagreeing ?? [], reused } };
  // withheld: every hospital agrees, but too few reports passed the proof to publish anything.
  return { ...outcome, value: { status: 'withheld', job, used: job.used ?? 0, dropped: job.dropped ?? 0, reused } };
}

/** The result from every hospital's aggregate share, in genesis order (the Prio3 aggregator order). */
async function combine(session: Session, q: StatsQuery, job: StatsJobResponse): Promise<Omit<Extract<StatsAnswer, { status: 'done' }>, 'job' | 'reused'>> {
  if (job.used === undefined || job.dropped === undefined)
    throw new MedLedgerError('MALFORMED', `job ${job.job.slice(0, 12)} is done without its report counts`);
  const { used, dropped } = job;
  const { genesis } = await session.recipientKeys.trustAnchor();
  const shares = genesis.file.hospitals.map((h) => {
    const s = job.shares.find((x) => x.hospital === h.id);
    if (!s) throw new MedLedgerError('MALFORMED', `job ${job.job.slice(0, 12)} is done without the share of ${h.id}`);
    if (s.used !== used || s.dropped !== dropped) throw new MedLedgerError('MALFORMED', `${h.id}'s share disagrees with the job's report counts`);
    return fromBase64(s.share);
  });
  if (used === 0) return { status: 'done', used, dropped };
  const result = computeStat(q.measure, q.stat, shares, used);
  if (q.stat === 'count' || q.stat === 'mean' || q.stat === 'stddev') return { status: 'done', result, used, dropped };
  const histogram = histogramResult(q.measure, bucketCounts(q.measure, valueCounts(q.measure, shares, used)));
  return { status: 'done', result, histogram, used, dropped };
}

// ---- presentation shared by the CLI and the TUI ----

/** A number in a measure's display unit, e.g. "123.45 mmHg" or "36.82 °C". */
export function formatMeasure(measure: MeasureName, value: number, digits = 2): string {
  return `${value.toFixed(digits)} ${measures[measure].unit}`;
}

/** A bucket's bounds in display units: "120–129" (temperature "36.5–36.9"). */
export function bucketLabel(measure: MeasureName, b: { lo: number; hi: number }): string {
  const digits = measures[measure].scale === 1 ? 0 : 1;
  return `${b.lo.toFixed(digits)}–${b.hi.toFixed(digits)}`;
}

/** One line of the result, e.g. "mean 123.45 mmHg" or "median bucket 120–129 mmHg". */
export function resultSentence(measure: MeasureName, r: StatResult): string {
  const unit = measures[measure].unit;
  switch (r.stat) {
    case 'count':
      return `count ${r.count}`;
    case 'mean':
      return `mean ${formatMeasure(measure, r.mean)}`;
    case 'stddev':
      return `standard deviation ${formatMeasure(measure, r.stddev)} (population; mean ${formatMeasure(measure, r.mean)})`;
    case 'histogram':
      return `histogram of ${r.count} reports`;
    case 'median':
    case 'mode':
      return `${r.stat} bucket ${bucketLabel(measure, r)} ${unit}`;
  }
}

export interface HistogramBar {
  label: string;
  count: number;
  /** Bar length in cells, proportional to the count (at least 1 for a non-empty bucket). */
  cells: number;
  median: boolean;
  mode: boolean;
}

/**
 * The histogram as horizontal bars, from the first to the last non-empty bucket (the empty ends of a measure's
 * wide range carry nothing). `width` is the longest bar.
 */
export function histogramBars(measure: MeasureName, h: HistogramResult, width = 40): HistogramBar[] {
  const first = h.buckets.findIndex((b) => b.count > 0);
  if (first < 0) return [];
  let last = h.buckets.length - 1;
  while (h.buckets[last]!.count === 0) last--;
  const max = Math.max(...h.buckets.map((b) => b.count));
  return h.buckets.slice(first, last + 1).map((b, k) => {
    const i = first + k;
    return {
      label: bucketLabel(measure, b),
      count: b.count,
      cells: b.count === 0 ? 0 : Math.max(1, Math.round((b.count / max) * width)),
      median: i === h.median,
      mode: i === h.mode,
    };
  });
}

/** The bars as text lines (the CLI's chart): "120–129 │████████ 8  ◀ median, mode". */
export function histogramText(measure: MeasureName, h: HistogramResult, width = 40): string[] {
  const bars = histogramBars(measure, h, width);
  const labelWidth = Math.max(0, ...bars.map((b) => b.label.length));
  const countWidth = Math.max(0, ...bars.map((b) => String(b.count).length));
  return bars.map((b) => {
    const marks = [b.median ? 'median' : '', b.mode ? 'mode' : ''].filter(Boolean).join(', ');
    return `${b.label.padStart(labelWidth)} ${measures[measure].unit} │${'█'.repeat(b.cells).padEnd(width)} ${String(b.count).padStart(countWidth)}${marks ? `  ◀ ${marks}` : ''}`;
  });
}
