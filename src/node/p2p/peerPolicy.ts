import type { Logger } from 'pino';

/**
 * Who may connect: the allow-list (the genesis validators), peers blocked by the operator, and peers banned
 * for a while for repeated invalid gossip. The connection gater, request() and the redialler all ask refusal().
 */

export interface PenaltyOptions {
  /** A peer charged `maxRejects` reject units within `windowMs` is cut off for `banMs`. */
  maxRejects?: number;
  windowMs?: number;
  banMs?: number;
}

export interface PeerPenalty {
  /** Messages from this peer that validation rejected since this host started. */
  rejected: number;
  /** Set while the peer is banned (ms since epoch). */
  bannedUntil?: number;
}

export type Refusal = 'not allowed' | 'blocked' | 'banned';

const DEFAULT_MAX_REJECTS = 20;
const DEFAULT_REJECT_WINDOW_MS = 60_000;
const DEFAULT_BAN_MS = 60_000;

interface PenaltyState {
  rejected: number;
  /** Reject units charged within the window: [time, weight]. */
  recentRejects: [number, number][];
  bannedUntil: number | undefined;
}

export class PeerPolicy {
  readonly maxRejects: number;
  readonly banMs: number;
  private readonly rejectWindowMs: number;
  private readonly allowed: Set<string>;
  private blocked = new Set<string>();
  private readonly penaltyByPeer = new Map<string, PenaltyState>();

  constructor(
    selfPeerId: string,
    allowedPeers: string[],
    penalty: PenaltyOptions | undefined,
    private readonly log: Logger,
    /** Called once when a peer becomes banned: cut it off. */
    private readonly onBan: (peer: string) => void,
  ) {
    this.allowed = new Set(allowedPeers.filter((p) => p !== selfPeerId));
    this.maxRejects = penalty?.maxRejects ?? DEFAULT_MAX_REJECTS;
    this.rejectWindowMs = penalty?.windowMs ?? DEFAULT_REJECT_WINDOW_MS;
    this.banMs = penalty?.banMs ?? DEFAULT_BAN_MS;
  }

  isAllowed(peer: string): boolean {
    return this.allowed.has(peer);
  }

  isBlocked(peer: string): boolean {
    return this.blocked.has(peer);
  }

  /** Why a peer may not connect right now, or undefined if it may. */
  refusal(peer: string): Refusal | undefined {
    if (!this.allowed.has(peer)) return 'not allowed';
    if (this.blocked.has(peer)) return 'blocked';
    if (this.bannedUntil(peer) !== undefined) return 'banned';
    return undefined;
  }

  /** The end of the peer's ban (ms since epoch), if it is banned now. */
  bannedUntil(peer: string): number | undefined {
    const until = this.penaltyByPeer.get(peer)?.bannedUntil;
    return until !== undefined && until > Date.now() ? until : undefined;
  }

  /** Replaces the blocked set; returns the peers that were blocked before. */
  setBlocked(peers: string[]): Set<string> {
    const previous = this.blocked;
    this.blocked = new Set(peers);
    return previous;
  }

  /** Charges `weight` reject units to a peer (`rejected`: the message was rejected); `maxRejects` units within the window ban it. */
  charge(peer: string, topic: string, weight: number, rejected: boolean): void {
    const now = Date.now();
    let st = this.penaltyByPeer.get(peer);
    if (!st) {
      st = { rejected: 0, recentRejects: [], bannedUntil: undefined };
      this.penaltyByPeer.set(peer, st);
    }
    if (rejected) st.rejected++;
    st.recentRejects.push([now, weight]);
    while (st.recentRejects.length > 0 && st.recentRejects[0]![0] <= now - this.rejectWindowMs) st.recentRejects.shift();
    const recent = st.recentRejects.reduce((sum, [, w]) => sum + w, 0);
    this.log.debug({ peer, topic, rejected: st.rejected, recent }, 'gossip message charged');
    if (recent < this.maxRejects || (st.bannedUntil !== undefined && st.bannedUntil > now)) return;

    st.bannedUntil = now + this.banMs;
    st.recentRejects = [];
    this.log.warn({ peer, rejectsInWindow: this.maxRejects, banMs: this.banMs }, 'banning peer for repeated invalid gossip');
    this.onBan(peer);
  }

  penalties(): Record<string, PeerPenalty> {
    const now = Date.now();
    const out: Record<string, PeerPenalty> = {};
    for (const [peer, st] of this.penaltyByPeer) {
      out[peer] = st.bannedUntil !== undefined && st.bannedUntil > now ? { rejected: st.rejected, bannedUntil: st.bannedUntil } : { rejected: st.rejected };
    }
    return out;
  }
}
