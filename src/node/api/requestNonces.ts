import { MedLedgerError } from '../../records/errors.js';
import { REQUEST_MAX_SKEW_MS } from '../../records/requestAuth.js';

/** At most this many nonces of signed view requests are remembered (about 20 MB at the bound). */
export const MAX_REQUEST_NONCES = 100_000;
/** When full, the whole map is swept for expired nonces at most this often; in between, new requests get 503. */
const FULL_SWEEP_INTERVAL_MS = 1_000;

/**
 * The nonces of signed view requests this node accepted, each kept until its request's freshness window
 * closes (request time + REQUEST_MAX_SKEW_MS): within the window a nonce is refused a second time (REPLAY),
 * after it the request's time is refused anyway. Bounded: expired nonces are dropped as new ones come (from
 * the front, where the oldest sit) and by a full sweep when the map is full; when it is full of unexpired
 * nonces, new requests are refused with 503 (UNAVAILABLE) rather than forgetting a nonce that could still
 * be replayed. Only requests whose signature verified reach this map.
 */
export class RequestNonces {
  /** `user nonce` → the time after which the request is stale anyway (ms). Insertion order ≈ expiry order. */
  private readonly seen = new Map<string, number>();
  private lastFullSweep = -Infinity;

  constructor(
    readonly max = MAX_REQUEST_NONCES,
    private readonly windowMs = REQUEST_MAX_SKEW_MS,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Remembers the nonce of an authenticated request made at `time`; throws REPLAY if it is already known. */
  use(user: string, nonce: string, time: number, now: number): void {
    const key = `${user} ${nonce}`;
    const until = this.seen.get(key);
    if (until !== undefined && until >= now) throw new MedLedgerError('REPLAY', 'this signed request was already used (its nonce was seen): sign a new one');
    this.dropExpiredFront(now);
    if (this.seen.size >= this.max && now - this.lastFullSweep >= FULL_SWEEP_INTERVAL_MS) {
      this.lastFullSweep = now;
      for (const [k, t] of this.seen) if (t < now) this.seen.delete(k);
    }
    if (this.seen.size >= this.max) {
      throw new MedLedgerError('UNAVAILABLE', `too many signed requests in the last ${this.windowMs / 1000} s: retry after 1 s`);
    }
    this.seen.delete(key);
    this.seen.set(key, time + this.windowMs);
  }

  private dropExpiredFront(now: number): void {
    for (const [k, t] of this.seen) {
      if (t >= now) return;
      this.seen.delete(k);
    }
  }
}
