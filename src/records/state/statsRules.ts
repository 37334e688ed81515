import { toHex } from '../crypto/bytes.js';
import { batchClosed, parseBatch } from '../stats/batches.js';
import { instanceOf, type StatsInstance } from '../stats/measures.js';
import { aggregateShareLength, decodeAggregateShare, inputShareLength, vdafFor } from '../stats/prio3.js';
import { SEALED_SHARE_OVERHEAD } from '../stats/sealing.js';
import type { UnsignedTx } from '../tx/types.js';
import { ALLOW, deny, existingRecord, isDecision, ownDataOnly, putRecord, putUser, type Decision, type RuleContext, type Writable } from './ruleHelpers.js';
import { NETWORK_KEY, type Hospital, type NetworkInfo, type StateView, type StatsJob, type User } from './types.js';

/**
 * The rules of the private-statistics transactions (issue 13, PROTOCOL.md §10.4), beside the permission
 * table of permissions.ts, which includes `statsRules`.
 */
/** Minimum reports in a batch before any statistic of it is released (issue 13). */
export const MIN_BATCH_REPORTS = 10;
/**
 * Most reports one (measure, batch) takes: every node prepares all of a batch's reports for a job, so the
 * batch is full beyond this (denied `batch-full`) and no job can outgrow what a node works on: ~6.9 KiB per
 * report while it is prepared (node/stats/aggregator.ts; ~160 MB resident measured at this bound). A larger population takes a
 * shorter batch period (genesis `stats.batchMs`).
 */
export const MAX_BATCH_REPORTS = 10_000;

/**
 * Whether a hospital must withhold its aggregate share (publish it empty): fewer than MIN_BATCH_REPORTS reports
 * were used (on chain a share is public), or more than 10% of the job's reports were dropped. Reports are
 * dropped when any one hospital marks them invalid, so without the 10% bound a byzantine hospital could keep
 * just a victim and known reports of its own and read the victim's value off the result (review H1).
 */
export function mustWithhold(used: number, dropped: number): boolean {
  return used < MIN_BATCH_REPORTS || dropped * 10 > used + dropped;
}

export function networkInfo(s: StateView): NetworkInfo {
  const info = s.get('network', NETWORK_KEY);
  if (!info) throw new Error('state has no network entry (genesis)');
  return info;
}

/** Every hospital in the genesis has an aggregator key: the precondition of any statistic. */
function aggregatorsReady(s: StateView, info: NetworkInfo): boolean {
  return info.hospitals.every((h) => s.get('hospitals', h)?.aggregatorKey !== undefined);
}

export const statsBatchKey = (measure: string, batch: string) => `${measure}/${batch}`;

/** Shape of a report against the network: a public share and one sealed input share per hospital of the right size. */
function reportFits(
  report: { publicShare: Uint8Array; shares: Uint8Array[] },
  measure: UnsignedTx<'statsReport'>['body']['measure'],
  instance: StatsInstance,
  n: number,
): boolean {
  if (report.shares.length !== n) return false;
  const vdaf = vdafFor(measure, instance, n);
  if (report.publicShare.length !== vdaf.xof.seedSize * n) return false;
  return report.shares.every((sealed, i) => sealed.length === inputShareLength(vdaf, i) + SEALED_SHARE_OVERHEAD);
}

export const statsRules = {
  /** The patient alone opts in or out; the latest statement counts from its time on. */
  statsConsent(s: Writable, t: UnsignedTx<'statsConsent'>, agent: User): Decision {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    const me = s.get('users', agent.id) ?? agent;
    putUser(s, { ...me, statsConsent: { contribute: t.body.contribute, since: t.time } });
    return ALLOW;
  },

  /**
   * The patient's own report of one measure of the current version of one of their records, while they
   * contribute, at most one per (measure, batch) per patient; apply has already checked that the batch is the batch of the tx time and of the block.
   */
  statsReport(s: Writable, t: UnsignedTx<'statsReport'>, agent: User): Decision {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    if (!agent.statsConsent?.contribute) return deny('no-stats-consent');
    const record = existingRecord(s, agent, t.record);
    if (isDecision(record)) return record;
    if (t.body.version !== record.version) return deny('version-conflict');
    if (record.statsReported?.[t.body.measure] === record.version) return deny('already-reported');
    // One report per patient per (measure, batch): the floor of 10 then counts distinct patients, and no patient
    // can weigh more than one value in a batch or fill it (review H1, M2).
    const me = s.get('users', agent.id) ?? agent;
    if (me.statsReported?.[t.body.measure] === t.body.batch) return deny('already-reported');
    const info = networkInfo(s);
    if (!aggregatorsReady(s, info)) return deny('no-aggregator-key');
    const n = info.hospitals.length;
    if (!reportFits(t.body.reports.histogram, t.body.measure, 'histogram', n)) {
      return deny('bad-report');
    }
    const key = statsBatchKey(t.body.measure, t.body.batch);
    const batch = s.get('statsBatches', key) ?? { measure: t.body.measure, batch: t.body.batch, reports: 0, jobs: {} };
    if (batch.reports >= MAX_BATCH_REPORTS) return deny('batch-full');
    s.write([{ table: 'statsBatches', key, value: { ...batch, reports: batch.reports + 1 } }]);
    putRecord(s, { ...record, statsReported: { ...record.statsReported, [t.body.measure]: record.version } });
    // Bounded: one entry per measure (4), the latest batch reported.
    putUser(s, { ...me, statsReported: { ...me.statsReported, [t.body.measure]: t.body.batch } });
    return ALLOW;
  },

  /**
   * Auditors only (no researcher role: auditors already hold the cross-hospital view). A closed batch of at least
   * MIN_BATCH_REPORTS reports; the first query of (measure, batch, instance) creates the job, later ones point at it.
   */
  statsQuery(s: Writable, t: UnsignedTx<'statsQuery'>, agent: User, ctx: RuleContext): Decision {
    if (agent.role !== 'auditor') return deny('role-not-allowed');
    const info = networkInfo(s);
    const batch = parseBatch(info.stats, t.body.batch);
    if (!batch) return deny('unknown-batch');
    if (!aggregatorsReady(s, info)) return deny('no-aggregator-key');
    if (!batchClosed(batch, ctx.blockTime)) return deny('batch-open');
    const key = statsBatchKey(t.body.measure, t.body.batch);
    const entry = s.get('statsBatches', key);
    if (!entry || entry.reports < MIN_BATCH_REPORTS) return deny('batch-too-small');
    const instance = instanceOf(t.body.stat);
    if (entry.jobs[instance]) return ALLOW; // the existing job answers: a batch is aggregated once per instance
    const job: StatsJob = {
      id: ctx.txId,
      measure: t.body.measure,
      batch: t.body.batch,
      instance,
      queriedBy: agent.id,
      createdAt: t.time,
      height: ctx.height,
      reports: entry.reports,
      status: 'pending',
      shares: {},
    };
    s.write([
      { table: 'statsJobs', key: job.id, value: job },
      { table: 'statsBatches', key, value: { ...entry, jobs: { ...entry.jobs, [instance]: job.id } } },
    ]);
    return ALLOW;
  },
};

/**
 * A hospital's aggregate share for a pending job (apply has checked the validator key and the hospital's
 * nonce). One per hospital; the share must decode, or be empty when mustWithhold (fewer than MIN_BATCH_REPORTS
 * reports passed, or more than 10% were dropped: a share on chain is public, so it is withheld); used + dropped must be the job's report count.
 * When every hospital has answered, the job is `done` (or `withheld`, too few valid reports) if all agree on
 * used, dropped and digest, else `failed` naming the hospitals that differ from the most common answer (ties:
 * the answer of the earliest hospital in genesis order).
 */
export function authorizeStatsAggregate(s: Writable, t: UnsignedTx<'statsAggregate'>, hospital: Hospital): Decision {
  const job = s.get('statsJobs', t.body.job);
  if (!job) return deny('job-not-found');
  if (job.status !== 'pending') return deny('job-closed');
  if (job.shares[hospital.id]) return deny('already-submitted');
  const info = networkInfo(s);
  if (mustWithhold(t.body.used, t.body.dropped)) {
    // Too few valid reports, or too many dropped: the share is withheld (on chain it would be public).
    if (t.body.share.length !== 0) return deny('bad-share');
  } else {
    const vdaf = vdafFor(job.measure, job.instance, info.hospitals.length);
    if (t.body.share.length !== aggregateShareLength(vdaf)) return deny('bad-share');
    try {
      decodeAggregateShare(vdaf, t.body.share);
    } catch {
      return deny('bad-share');
    }
  }
  if (t.body.used + t.body.dropped !== job.reports) return deny('bad-counts');
  const shares = { ...job.shares, [hospital.id]: { share: t.body.share, used: t.body.used, dropped: t.body.dropped, digest: t.body.digest, at: t.time } };
  let next: StatsJob = { ...job, shares };
  if (info.hospitals.every((h) => shares[h])) {
    const answer = (h: string) => `${shares[h]!.used}/${shares[h]!.dropped}/${toHex(shares[h]!.digest)}`;
    const tally = new Map<string, number>();
    for (const h of info.hospitals) tally.set(answer(h), (tally.get(answer(h)) ?? 0) + 1);
    let common = answer(info.hospitals[0]!);
    for (const [a, c] of tally) if (c > tally.get(common)!) common = a;
    const disagreeing = info.hospitals.filter((h) => answer(h) !== common);
    const first = shares[info.hospitals[0]!]!;
    next =
      disagreeing.length > 0
        ? { ...next, status: 'failed', disagreeing }
        : { ...next, status: mustWithhold(first.used, first.dropped) ? 'withheld' : 'done', used: first.used, dropped: first.dropped };
  }
  s.write([{ table: 'statsJobs', key: job.id, value: next }]);
  return ALLOW;
}
