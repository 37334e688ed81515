import { MAX_STATS_BATCHES, type StatsBatchesResponse, type StatsJobResponse } from '../../api/contract.js';
import { toBase64, toHex } from '../../records/crypto/bytes.js';
import type { MemoryState } from '../../records/state/memoryState.js';
import { networkInfo } from '../../records/state/statsRules.js';
import type { MeasureName } from '../../records/stats/measures.js';

/**
 * What the statistics endpoints show (issue 13): a job's ledger entry and aggregate shares, and the batches of a
 * measure with their report counts. Aggregate shares are published on the ledger anyway; nothing per report.
 */
export function statsJobOf(state: MemoryState, id: string, waitingFor: string[] | undefined): StatsJobResponse | undefined {
  const job = state.get('statsJobs', id);
  if (!job) return undefined;
  const hospitals = networkInfo(state).hospitals;
  return {
    job: job.id,
    measure: job.measure,
    batch: job.batch,
    instance: job.instance,
    status: job.status,
    reports: job.reports,
    ...(job.used !== undefined ? { used: job.used } : {}),
    ...(job.dropped !== undefined ? { dropped: job.dropped } : {}),
    ...(job.disagreeing ? { disagreeing: job.disagreeing } : {}),
    shares: hospitals.flatMap((h) => {
      const s = job.shares[h];
      return s ? [{ hospital: h, share: toBase64(s.share), used: s.used, dropped: s.dropped, digest: toHex(s.digest) }] : [];
    }),
    missing: job.status === 'pending' ? hospitals.filter((h) => !job.shares[h]) : [],
    waitingFor: job.status === 'pending' ? (waitingFor ?? []) : [],
  };
}

export function statsBatchesOf(state: MemoryState, measure: MeasureName): StatsBatchesResponse {
  const batches: StatsBatchesResponse['batches'] = [];
  // Every batch of every measure is a state entry: a scan of one table in memory.
  for (const [, b] of state.entries('statsBatches')) if (b.measure === measure) batches.push({ batch: b.batch, reports: b.reports, jobs: { ...b.jobs } });
  batches.sort((a, b) => (a.batch < b.batch ? -1 : a.batch > b.batch ? 1 : 0));
  return { measure, batches: batches.slice(-MAX_STATS_BATCHES) };
}
