import type { TxBody } from '../tx/types.js';
import { histogramMeasurement, measures, type MeasureName, type StatsInstance } from './measures.js';
import { shard, vdafFor } from './prio3.js';
import { sealShare, type ShareContext } from './sealing.js';

/**
 * Building and locating a statsReport's shares (issue 13): the client shards one value into the measure's
 * histogram instance and seals each input share to its hospital; a node finds the context to open its own share with.
 */
export interface ReportInput {
  genesisHash: Uint8Array;
  patient: string;
  record: string;
  version: number;
  measure: MeasureName;
  /** The value in stored units (records/stats/measures.ts); never leaves the client in clear. */
  value: number;
  /** Label of the batch of the transaction's time. */
  batch: string;
  /** Aggregator public keys of every hospital, in genesis order. */
  aggregatorKeys: Uint8Array[];
}

export async function buildStatsReportBody(r: ReportInput): Promise<TxBody<'statsReport'>> {
  const m = measures[r.measure];
  const n = r.aggregatorKeys.length;
  const one = async (instance: StatsInstance) => {
    const vdaf = vdafFor(r.measure, instance, n);
    const report = await shard(vdaf, histogramMeasurement(m, r.value));
    const shares = report.inputShares.map((share, i) => sealShare(r.aggregatorKeys[i]!, shareContext(r.genesisHash, r, instance, report.nonce, i), share));
    return { nonce: report.nonce, publicShare: report.publicShare, shares };
  };
  return { version: r.version, measure: r.measure, batch: r.batch, reports: { histogram: await one('histogram') } };
}

/** The AAD context of hospital `hospitalIndex`'s share of one instance of a report. */
export function shareContext(
  genesisHash: Uint8Array,
  r: { patient: string; record: string; version: number; measure: MeasureName; batch: string },
  instance: StatsInstance,
  nonce: Uint8Array,
  hospitalIndex: number,
): ShareContext {
  return { genesisHash, patient: r.patient, record: r.record, version: r.version, measure: r.measure, batch: r.batch, instance, nonce, hospitalIndex };
}

/** The context of a statsReport transaction's share for a hospital (from the tx's patient, record and body). */
export function shareContextOfTx(
  genesisHash: Uint8Array,
  tx: { patient?: string; record?: string; body: TxBody<'statsReport'> },
  instance: StatsInstance,
  hospitalIndex: number,
): ShareContext {
  const b = tx.body;
  return shareContext(
    genesisHash,
    { patient: tx.patient!, record: tx.record!, version: b.version, measure: b.measure, batch: b.batch },
    instance,
    b.reports[instance].nonce,
    hospitalIndex,
  );
}
