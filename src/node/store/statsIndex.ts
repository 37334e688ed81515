import { decodeBlock } from '../../consensus/block.js';
import type { MeasureName } from '../../records/stats/measures.js';
import { decodeTx } from '../../records/tx/codec.js';
import type { Tx } from '../../records/tx/types.js';
import { K, parseSeqKey } from './keys.js';
import type { PendingBatch } from './pendingBatch.js';
import { EMPTY, StoreDamage, under, type Level } from './values.js';

const MAX_STORED_BLOCK = 64 * 1024 * 1024;

/** A committed statsReport with its place in the chain. */
export interface StoredStatsReport {
  height: number;
  index: number;
  tx: Tx<'statsReport'>;
}

/**
 * The statistics report index (issue 13): one value-less key per successful statsReport, by (measure, batch),
 * ending in its chain position, so that a prefix scan gives a batch's reports in (height, index) order — the
 * order every aggregator uses. The transactions themselves are read from their blocks (not copied).
 */
export class StatsIndex {
  constructor(private readonly db: Level) {}

  stageReport(batch: PendingBatch, measure: string, label: string, seq: string): void {
    batch.put(K.statsReport(measure, label, seq), EMPTY);
  }

  /** How many reports the index holds for (measure, batch). */
  async count(measure: MeasureName, label: string): Promise<number> {
    let n = 0;
    for await (const _ of this.db.keys(under(K.statsReportPrefix(measure, label)))) n++;
    return n;
  }

  /**
   * The reports of (measure, batch) in chain order, each decoded (schema-checked) from its stored block; a
   * block is read once for all its reports. Throws StoreDamage when an entry points at something that is not
   * a statsReport of that measure and batch, and when there are more than `max` (the caller's bound).
   */
  async *reports(measure: MeasureName, label: string, max: number): AsyncGenerator<StoredStatsReport> {
    const prefix = K.statsReportPrefix(measure, label);
    let block: { height: number; txs: Uint8Array[] } | undefined;
    let seen = 0;
    for await (const key of this.db.keys(under(prefix))) {
      if (++seen > max) throw new StoreDamage(`stats index ${measure}/${label}`, `more than ${max} reports`);
      const { height, index } = parseSeqKey(key.slice(prefix.length));
      if (block?.height !== height) {
        const bytes = await this.db.get(K.block(height));
        if (!bytes) throw new StoreDamage(`stats index ${measure}/${label}`, `block ${height} is not stored`, height);
        try {
          block = { height, txs: decodeBlock(bytes, MAX_STORED_BLOCK).txs };
        } catch (err) {
          throw new StoreDamage(`block ${height}`, (err as Error).message, height);
        }
      }
      const txBytes = block.txs[index];
      if (!txBytes) throw new StoreDamage(`stats index ${measure}/${label}`, `block ${height} has no transaction ${index}`, height);
      let tx: Tx;
      try {
        tx = decodeTx(txBytes, { verify: false }); // validated when its block was committed
      } catch (err) {
        throw new StoreDamage(`transaction ${height}/${index}`, (err as Error).message, height);
      }
      if (tx.tx.type !== 'statsReport') throw new StoreDamage(`stats index ${measure}/${label}`, `${height}/${index} is a ${tx.tx.type}`, height);
      const report = tx as Tx<'statsReport'>;
      if (report.tx.body.measure !== measure || report.tx.body.batch !== label) {
        throw new StoreDamage(`stats index ${measure}/${label}`, `${height}/${index} reports ${report.tx.body.measure}/${report.tx.body.batch}`, height);
      }
      yield { height, index, tx: report };
    }
  }
}
