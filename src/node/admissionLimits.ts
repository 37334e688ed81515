import { MedLedgerError } from '../records/errors.js';
import { TX_MAX_FUTURE_MS } from '../records/state/apply.js';

/**
 * Admission limits: what keeps one user, or one local process talking to a node's API, from filling the
 * mempool, the gossip mesh or the replicated state for free. Every limit is a named constant (or a node
 * config value defaulting to one) with the reason it exists. Rejections are typed errors: UNAVAILABLE
 * (HTTP 503) for "busy, retry later", CONFLICT (409) for a nonce that clashes with a pending transaction.
 */

/** Pending transactions per user in one mempool: ample for a person, and one user cannot crowd out others. */
export const MAX_PENDING_PER_USER = 64;

/**
 * How far a new nonce may lie beyond the user's committed nonce plus their pending count, so nobody parks
 * transactions with absurd nonces (a committed nonce near 2^53 would also lock the user out for good).
 */
export const MAX_NONCE_GAP = 64;

/**
 * Clients draw nonces from the clock in microseconds (client/session.ts, gaps are valid on-chain), so the
 * nonce ceiling never falls below the clock's nonce one future window ahead.
 */
export const NONCE_UNITS_PER_MS = 1_000;

/** Sustained API submissions per user and second: far above what a person clicks, far below a flood. */
export const TX_RATE_PER_USER = 20;
/** Burst of API submissions per user: a client's batch (an import, a re-wrap of many records) fits. */
export const TX_BURST_PER_USER = 100;
/**
 * Users with a rate bucket at once. Only existing users whose key signed the transaction get one (creating
 * users is itself limited), so the map is bounded by this many entries; the least recently used goes first.
 */
export const MAX_RATE_BUCKETS = 10_000;

/** New self-registrations a node accepts through its API per minute: a ward's front desk, not a script. */
export const REGISTRATIONS_PER_MINUTE = 30;
/** … and per day: each registration grows every replica's state for ever. */
export const REGISTRATIONS_PER_DAY = 2_000;

/**
 * Transactions one admission may evict from a full mempool: bounds the work of one call; a mempool full by
 * bytes is full of large payloads, a few of which make room.
 */
export const MAX_EVICTIONS_PER_ADMISSION = 64;

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/**
 * The highest nonce a new transaction of a user may carry: committed nonce plus pending count plus a
 * bounded gap, or the clock-derived nonce (one future window ahead) plus the gap when that is higher.
 */
export function nonceCeiling(lastNonce: number, pending: number, now: number): number {
  return Math.max(lastNonce + pending, (now + TX_MAX_FUTURE_MS) * NONCE_UNITS_PER_MS) + MAX_NONCE_GAP;
}

const retryIn = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** Token buckets by key, refilled continuously; at most `maxBuckets` entries, least recently used evicted. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly opts: { ratePerSecond: number; burst: number; maxBuckets: number }) {}

  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token; returns 0 when granted, else the milliseconds until a token is available. */
  take(key: string, now: number): number {
    const { ratePerSecond, burst, maxBuckets } = this.opts;
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is least recently used first
      b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) * ratePerSecond) / 1000);
      b.at = now;
    } else {
      // An evicted bucket is the least recently used one: with the bound above it was idle for
      // (maxBuckets / request rate) and is full again unless maxBuckets users submitted within burst/rate s.
      if (this.buckets.size >= maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: burst, at: now };
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / ratePerSecond);
  }
}

/** Sliding windows over accepted registrations: at most `perDay` timestamps are kept. */
export class RegistrationWindow {
  private readonly times: number[] = [];

  constructor(private readonly opts: { perMinute: number; perDay: number }) {}

  /** Seconds until one more registration fits, or 0 if it fits now. */
  waitSeconds(now: number): number {
    this.prune(now);
    const { perMinute, perDay } = this.opts;
    const t = this.times;
    let waitMs = 0;
    if (t.length >= perDay) waitMs = Math.max(waitMs, t[t.length - perDay]! + DAY_MS - now);
    if (t.length >= perMinute && t[t.length - perMinute]! + MINUTE_MS > now) waitMs = Math.max(waitMs, t[t.length - perMinute]! + MINUTE_MS - now);
    return waitMs > 0 ? retryIn(waitMs) : 0;
  }

  record(now: number): void {
    this.prune(now);
    this.times.push(now);
    if (this.times.length > this.opts.perDay) this.times.shift();
  }

  private prune(now: number): void {
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! + DAY_MS <= now) drop++;
    if (drop > 0) this.times.splice(0, drop);
  }
}

export interface ApiLimitsConfig {
  txPerSecondPerUser: number;
  txBurstPerUser: number;
  registrationsPerMinute: number;
  registrationsPerDay: number;
}

/**
 * Limits on what reaches a node through its own API (never on gossip: a peer's transactions were limited
 * by the node that received them). Node-local and in memory.
 */
export class ApiAdmissionLimits {
  readonly txBuckets: TokenBuckets;
  readonly registrations: RegistrationWindow;

  constructor(cfg: ApiLimitsConfig) {
    this.txBuckets = new TokenBuckets({ ratePerSecond: cfg.txPerSecondPerUser, burst: cfg.txBurstPerUser, maxBuckets: MAX_RATE_BUCKETS });
    this.registrations = new RegistrationWindow({ perMinute: cfg.registrationsPerMinute, perDay: cfg.registrationsPerDay });
  }

  /** One submission of an existing user (whose key signed it); throws UNAVAILABLE when over the rate. */
  takeTx(user: string, now: number): void {
    const waitMs = this.txBuckets.take(user, now);
    if (waitMs > 0) {
      throw new MedLedgerError('UNAVAILABLE', `too many submissions from ${user} at this node: retry in ${retryIn(waitMs)} s`);
    }
  }

  /** Throws UNAVAILABLE when this node has accepted as many registrations as it may for now. */
  checkRegistration(now: number): void {
    const wait = this.registrations.waitSeconds(now);
    if (wait > 0) throw new MedLedgerError('UNAVAILABLE', `registration limit reached at this node: retry in ${wait} s`);
  }

  /** A registration entered the mempool: it counts against the windows. */
  registered(now: number): void {
    this.registrations.record(now);
  }
}
