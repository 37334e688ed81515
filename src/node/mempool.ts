import type { Tx } from '../records/tx/types.js';
import { MedLedgerError } from '../records/errors.js';
import { TX_MAX_AGE_MS } from '../records/state/apply.js';
import { MAX_EVICTIONS_PER_ADMISSION, MAX_PENDING_PER_USER } from './admissionLimits.js';

export interface PendingTx {
  tx: Tx;
  payload?: Uint8Array;
  receivedAt: number;
}

export interface MempoolLimits {
  maxTxs: number;
  maxBytes: number;
  /** Pending transactions per user (actor); default MAX_PENDING_PER_USER. */
  maxPerUser?: number;
}

export interface MempoolHooks {
  /** A transaction left the mempool to make room for a lighter user's: tell whoever waits for it. */
  onEvict?: (entry: PendingTx, error: MedLedgerError) => void;
}

export type AddResult = { added: false } | { added: true; evicted: PendingTx[] };

/**
 * Transactions waiting for a block. Bounded in count and bytes overall and in count per user, with one
 * pending transaction per (user, nonce). When full, a transaction of a user holding few pending ones evicts
 * the newest (highest-nonce) one of the user holding the most; a user already holding the most is refused.
 * A transaction older than the ledger's time window can never be included and is expired.
 *
 * Per user, the entries are kept sorted by nonce; users are kept in the order their current pending run
 * began (roughly arrival order), and users are bucketed by pending count to find the heaviest in O(1).
 */
export class Mempool {
  private readonly pending = new Map<string, PendingTx>();
  private bytes = 0;
  /** actor → pending entries in ascending nonce order. Map order: when the actor's pending run began. */
  private readonly actors = new Map<string, PendingTx[]>();
  /** pending count → actors with exactly that many pending transactions. */
  private readonly byCount = new Map<number, Set<string>>();
  private maxCount = 0;
  private readonly maxPerUser: number;

  constructor(
    private readonly limits: MempoolLimits,
    private readonly hooks: MempoolHooks = {},
  ) {
    this.maxPerUser = limits.maxPerUser ?? MAX_PENDING_PER_USER;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Bytes held: transactions and their payloads. */
  get byteSize(): number {
    return this.bytes;
  }

  has(idHex: string): boolean {
    return this.pending.has(idHex);
  }

  get(idHex: string): PendingTx | undefined {
    return this.pending.get(idHex);
  }

  /** How many transactions of this user are pending. */
  pendingOf(actor: string): number {
    return this.actors.get(actor)?.length ?? 0;
  }

  /** The pending transaction of this user with this nonce, if any. */
  withNonce(actor: string, nonce: number): PendingTx | undefined {
    const list = this.actors.get(actor);
    if (!list) return undefined;
    const i = lowerBound(list, nonce);
    return list[i]?.tx.tx.nonce === nonce ? list[i] : undefined;
  }

  /**
   * Adds a transaction. Returns `{ added: false }` for a duplicate id, else the transactions evicted to
   * make room (already reported through `onEvict`). Throws CONFLICT for a second pending transaction with
   * the same (user, nonce) or a second pending registration of one user id, and UNAVAILABLE when the user
   * holds their maximum or the mempool is full and this user is among those holding the most.
   */
  add(entry: PendingTx): AddResult {
    const id = entry.tx.idHex;
    if (this.pending.has(id)) return { added: false };
    const t = entry.tx.tx;
    const list = this.actors.get(t.actor);
    const held = list?.length ?? 0;
    if (list && (t.type === 'registerPatient' || t.type === 'activateUser')) {
      throw new MedLedgerError('CONFLICT', `a registration of ${t.actor} is already pending`);
    }
    const same = this.withNonce(t.actor, t.nonce);
    if (same) {
      throw new MedLedgerError('CONFLICT', `${t.actor} already has pending transaction ${same.tx.idHex.slice(0, 12)} with nonce ${t.nonce}`);
    }
    if (held >= this.maxPerUser) {
      throw new MedLedgerError('UNAVAILABLE', `${t.actor} already has ${held} transactions waiting at this node (the most allowed): retry when some are final`);
    }
    const size = sizeOf(entry);
    const needCount = Math.max(0, this.pending.size + 1 - this.limits.maxTxs);
    const needBytes = Math.max(0, this.bytes + size - this.limits.maxBytes);
    let evicted: PendingTx[] = [];
    if (needCount > 0 || needBytes > 0) {
      const victims = size > this.limits.maxBytes ? null : this.planEviction(t.actor, held, needCount, needBytes);
      if (!victims) throw new MedLedgerError('UNAVAILABLE', 'the node is busy (mempool full): retry shortly');
      evicted = victims;
      const error = new MedLedgerError(
        'UNAVAILABLE',
        'the node is busy: this transaction was evicted from its full mempool by a user with fewer pending ones; resubmit it later',
      );
      for (const v of victims) {
        this.remove(v.tx.idHex);
        this.hooks.onEvict?.(v, error);
      }
    }
    this.insert(entry, size);
    return { added: true, evicted };
  }

  remove(idHex: string): PendingTx | undefined {
    const entry = this.pending.get(idHex);
    if (!entry) return undefined;
    this.pending.delete(idHex);
    this.bytes -= sizeOf(entry);
    const actor = entry.tx.tx.actor;
    const list = this.actors.get(actor)!;
    const i = list.indexOf(entry, lowerBound(list, entry.tx.tx.nonce));
    list.splice(i, 1);
    this.moveCount(actor, list.length + 1, list.length);
    if (list.length === 0) this.actors.delete(actor);
    return entry;
  }

  /**
   * Candidates for the next block: users in the order their pending transactions began arriving, each
   * user's transactions in nonce order (a later nonce never lands before an earlier one and makes it stale).
   * O(limit + users visited).
   */
  candidates(limit: number): PendingTx[] {
    const out: PendingTx[] = [];
    if (limit <= 0) return out;
    for (const list of this.actors.values()) {
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

  /** Pending counts per user and the count buckets, recomputed: for tests of the bookkeeping. */
  checkInvariants(): void {
    let bytes = 0;
    const counts = new Map<string, number>();
    for (const e of this.pending.values()) {
      bytes += sizeOf(e);
      counts.set(e.tx.tx.actor, (counts.get(e.tx.tx.actor) ?? 0) + 1);
    }
    const fail = (what: string) => {
      throw new Error(`mempool bookkeeping: ${what}`);
    };
    if (bytes !== this.bytes) fail(`bytes ${this.bytes}, actual ${bytes}`);
    if (counts.size !== this.actors.size) fail(`${this.actors.size} users indexed, ${counts.size} pending`);
    let max = 0;
    let bucketed = 0;
    for (const [count, set] of this.byCount) {
      if (set.size === 0) fail(`empty bucket ${count}`);
      bucketed += set.size;
      for (const actor of set) if (counts.get(actor) !== count) fail(`${actor} in bucket ${count}, has ${counts.get(actor)}`);
      max = Math.max(max, count);
    }
    if (bucketed !== counts.size) fail(`${bucketed} users bucketed, ${counts.size} pending`);
    if (max !== this.maxCount) fail(`maxCount ${this.maxCount}, actual ${max}`);
    for (const [actor, list] of this.actors) {
      if (list.length !== counts.get(actor)) fail(`${actor} list of ${list.length}, has ${counts.get(actor)}`);
      for (let i = 0; i < list.length; i++) {
        if (this.pending.get(list[i]!.tx.idHex) !== list[i]) fail(`${actor} lists a transaction that is not pending`);
        if (i > 0 && list[i - 1]!.tx.tx.nonce >= list[i]!.tx.tx.nonce) fail(`${actor} nonces not strictly ascending`);
      }
    }
  }

  private insert(entry: PendingTx, size: number): void {
    this.pending.set(entry.tx.idHex, entry);
    this.bytes += size;
    const actor = entry.tx.tx.actor;
    let list = this.actors.get(actor);
    if (!list) this.actors.set(actor, (list = []));
    list.splice(lowerBound(list, entry.tx.tx.nonce), 0, entry);
    this.moveCount(actor, list.length - 1, list.length);
  }

  private moveCount(actor: string, from: number, to: number): void {
    if (from > 0) {
      const set = this.byCount.get(from)!;
      set.delete(actor);
      if (set.size === 0) this.byCount.delete(from);
    }
    if (to > 0) {
      let set = this.byCount.get(to);
      if (!set) this.byCount.set(to, (set = new Set()));
      set.add(actor);
    }
    // Counts move by one, so the maximum moves by at most one.
    if (to > this.maxCount) this.maxCount = to;
    else if (from === this.maxCount && !this.byCount.has(from)) this.maxCount = to;
  }

  /**
   * The transactions to evict so that a new one of `newcomer` (holding `held`) fits, or null if it may not
   * evict: each victim is the highest-nonce transaction of a user holding the most, and only while that
   * user would still hold more than the newcomer afterwards (so two users never evict each other in turn).
   * Plans without changing anything; at most MAX_EVICTIONS_PER_ADMISSION victims.
   */
  private planEviction(newcomer: string, held: number, needCount: number, needBytes: number): PendingTx[] | null {
    const victims: PendingTx[] = [];
    const taken = new Map<string, number>();
    const groups: Set<string>[] = [];
    let level = this.maxCount;
    let freedCount = 0;
    let freedBytes = 0;
    const addGroup = (count: number) => {
      const set = this.byCount.get(count);
      if (set) groups.push(set);
    };
    addGroup(level);
    for (;;) {
      // Every user in `groups` holds `level` now (in the plan): one victim from each, then the next level.
      for (const group of groups) {
        for (const actor of group) {
          if (freedCount >= needCount && freedBytes >= needBytes) return victims;
          if (level <= held + 1 || actor === newcomer || victims.length >= MAX_EVICTIONS_PER_ADMISSION) return null;
          const list = this.actors.get(actor)!;
          const k = taken.get(actor) ?? 0;
          const victim = list[list.length - 1 - k]!;
          taken.set(actor, k + 1);
          victims.push(victim);
          freedCount++;
          freedBytes += sizeOf(victim);
        }
      }
      if (freedCount >= needCount && freedBytes >= needBytes) return victims;
      level--;
      if (level <= held + 1) return null;
      addGroup(level);
    }
  }
}

/** First index whose nonce is >= `nonce` in a list sorted by nonce. */
function lowerBound(list: PendingTx[], nonce: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.tx.tx.nonce < nonce) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sizeOf(entry: PendingTx): number {
  return entry.tx.bytes.length + (entry.payload?.length ?? 0);
}
