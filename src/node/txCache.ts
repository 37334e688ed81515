import type { TxCache } from '../consensus/blockExecution.js';
import type { Tx } from '../records/tx/types.js';

/**
 * Recently verified transactions by leaf hash. Two generations of maps keep it bounded without per-entry
 * bookkeeping: when the young map fills up, the old one is dropped. Sized for what is in flight (the
 * mempool and the blocks being voted on), not for history.
 */
export class BoundedTxCache implements TxCache {
  private young = new Map<string, Tx>();
  private old = new Map<string, Tx>();

  /** Two generations of 16,000: the mempool's high-water mark and the blocks being voted on fit (~25 MB). */
  constructor(private readonly generationSize = 16_000) {}

  get(leafHex: string): Tx | undefined {
    return this.young.get(leafHex) ?? this.old.get(leafHex);
  }

  set(leafHex: string, tx: Tx): void {
    if (this.young.size >= this.generationSize) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(leafHex, tx);
  }
}
