import type { Tx } from '../records/tx/types.js';
import { MedLedgerError } from '../records/errors.js';
import { TX_MAX_AGE_MS } from '../records/state/apply.js';

export interface PendingTx {
  tx: Tx;
  payload?: Uint8Array;
  receivedAt: number;
}

/**
 * Transactions waiting for a block, in arrival order. Bounded in count and bytes; a transaction older
 * than the ledger's time window can never be included and is expired.
 */
export class Mempool {
  private readonly pending = new Map<string, PendingTx>();
  private bytes = 0;

  constructor(private readonly limits: { maxTxs: number; maxBytes: number }) {}

  get size(): number {
    return this.pending.size;
  }

  has(idHex: string): boolean {
    return this.pending.has(idHex);
  }

  get(idHex: string): PendingTx | undefined {
    return this.pending.get(idHex);
  }

  /** Returns false for a duplicate; throws UNAVAILABLE when full (the client should retry later). */
  add(entry: PendingTx): boolean {
    if (this.pending.has(entry.tx.idHex)) return false;
    const size = sizeOf(entry);
    if (this.pending.size >= this.limits.maxTxs || this.bytes + size > this.limits.maxBytes) {
      throw new MedLedgerError('UNAVAILABLE', 'the node is busy (mempool full): retry shortly');
    }
    this.pending.set(entry.tx.idHex, entry);
    this.bytes += size;
    return true;
  }

  remove(idHex: string): PendingTx | undefined {
    const entry = this.pending.get(idHex);
    if (entry) {
      this.pending.delete(idHex);
      this.bytes -= sizeOf(entry);
    }
    return entry;
  }

  /**
   * Candidates for the next block: arrival order, except that one actor's transactions are kept in
   * nonce order (so a later nonce never lands before an earlier one and makes it stale).
   */
  candidates(limit: number): PendingTx[] {
    const byActor = new Map<string, PendingTx[]>();
    for (const entry of this.pending.values()) {
      const list = byActor.get(entry.tx.tx.actor);
      if (list) list.push(entry);
      else byActor.set(entry.tx.tx.actor, [entry]);
      if (byActor.size >= limit && list === undefined) break;
    }
    const out: PendingTx[] = [];
    for (const list of byActor.values()) {
      list.sort((a, b) => a.tx.tx.nonce - b.tx.tx.nonce);
      for (const e of list) {
        out.push(e);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /** Drops transactions too old to be included any more; returns them so waiters can be told. */
  expire(now: number): PendingTx[] {
    const expired: PendingTx[] = [];
    for (const entry of this.pending.values()) {
      if (entry.tx.tx.time + TX_MAX_AGE_MS < now) expired.push(entry);
    }
    for (const e of expired) this.remove(e.tx.idHex);
    return expired;
  }
}

function sizeOf(entry: PendingTx): number {
  return entry.tx.bytes.length + (entry.payload?.length ?? 0);
}
