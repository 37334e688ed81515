import type { VerifiedCache } from '../consensus/blockExecution.js';

/**
 * Ids of transactions whose signatures this node has verified. Two generations of sets keep it bounded
 * without per-entry bookkeeping: when the young set fills up, the old one is dropped.
 */
export class BoundedVerifiedCache implements VerifiedCache {
  private young = new Set<string>();
  private old = new Set<string>();

  constructor(private readonly generationSize = 200_000) {}

  has(idHex: string): boolean {
    return this.young.has(idHex) || this.old.has(idHex);
  }

  add(idHex: string): void {
    if (this.young.size >= this.generationSize) {
      this.old = this.young;
      this.young = new Set();
    }
    this.young.add(idHex);
  }
}
