import type { PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import type { Logger } from 'pino';
import { errMessage } from './errMessage.js';
import { DIAL_TIMEOUT_MS } from './libp2pOptions.js';
import type { PeerPolicy } from './peerPolicy.js';

/**
 * The static peers: dialled at start and redialled with exponential backoff whenever disconnected, held
 * back while banned or blocked. The backoff resets once a peer is gossip-ready, not when a dial succeeds.
 */

export interface StaticPeerConfig {
  peerId: string;
  addrs: string[];
}

interface StaticPeer {
  id: PeerId;
  idStr: string;
  addrs: Multiaddr[];
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
  dialing: boolean;
}

// The multiaddr protocol code of /p2p/<peer id>.
const PROTOCOL_CODE_P2P = 421;

export class StaticPeerDialer {
  private readonly peers = new Map<string, StaticPeer>();
  private libp2p: Libp2p | undefined;
  private stopped = false;

  constructor(
    configured: StaticPeerConfig[],
    selfPeerId: string,
    private readonly policy: PeerPolicy,
    private readonly log: Logger,
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {
    for (const sp of configured) {
      if (sp.peerId === selfPeerId) continue;
      if (!policy.isAllowed(sp.peerId)) {
        log.warn({ peer: sp.peerId }, 'static peer is not in allowedPeers; not dialling it');
        continue;
      }
      this.peers.set(sp.peerId, {
        id: peerIdFromString(sp.peerId),
        idStr: sp.peerId,
        // Dial by peer id with these addresses; a /p2p/ suffix in the config is tolerated.
        addrs: sp.addrs.map((a) => multiaddr(a).decapsulateCode(PROTOCOL_CODE_P2P)),
        delayMs: minMs,
        timer: undefined,
        dialing: false,
      });
    }
  }

  get size(): number {
    return this.peers.size;
  }

  /** Records the known addresses (so request() works before the first dial completes); dial later with dialAll(). */
  async attach(libp2p: Libp2p): Promise<void> {
    this.libp2p = libp2p;
    for (const sp of this.peers.values()) await libp2p.peerStore.merge(sp.id, { multiaddrs: sp.addrs });
  }

  dialAll(): void {
    for (const sp of this.peers.values()) this.scheduleDial(sp, 0);
  }

  /** A static peer went away: redial after the current backoff, and double it. */
  disconnected(peer: string): void {
    const sp = this.peers.get(peer);
    if (sp && !this.stopped) {
      this.scheduleDial(sp, sp.delayMs);
      sp.delayMs = Math.min(sp.delayMs * 2, this.maxMs);
    }
  }

  /** The peer is gossip-ready: the next disconnection starts the backoff afresh. */
  ready(peer: string): void {
    const sp = this.peers.get(peer);
    if (sp) sp.delayMs = this.minMs;
  }

  /** The peer was just banned: try again right after the ban. */
  banned(peer: string, banMs: number): void {
    const sp = this.peers.get(peer);
    if (sp) this.scheduleDial(sp, banMs + 10);
  }

  /** These peers were blocked and no longer are: dial them now. */
  unblocked(peers: Iterable<string>): void {
    for (const p of peers) {
      const sp = this.peers.get(p);
      if (sp && !this.policy.isBlocked(p)) {
        sp.delayMs = this.minMs;
        this.scheduleDial(sp, 0);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const sp of this.peers.values()) clearTimeout(sp.timer);
  }

  private scheduleDial(sp: StaticPeer, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(sp.timer);
    sp.timer = setTimeout(() => void this.dial(sp), delayMs);
  }

  private async dial(sp: StaticPeer): Promise<void> {
    sp.timer = undefined;
    const libp2p = this.libp2p;
    if (this.stopped || !libp2p || sp.dialing || libp2p.getConnections(sp.id).length > 0) return;
    const refusal = this.policy.refusal(sp.idStr);
    if (refusal === 'banned') {
      this.scheduleDial(sp, (this.policy.bannedUntil(sp.idStr) ?? Date.now()) - Date.now() + 10);
      return;
    }
    if (refusal) return; // blocked: unblocked() redials
    sp.dialing = true;
    try {
      await libp2p.peerStore.merge(sp.id, { multiaddrs: sp.addrs });
      // Success does not reset the backoff: a peer that refuses us after the handshake still lets the
      // dial succeed for a moment. The backoff resets once the peer is gossip-ready (ready()).
      await libp2p.dial(sp.id, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
    } catch (err) {
      if (this.stopped) return;
      this.log.debug({ peer: sp.idStr, retryInMs: sp.delayMs, err: errMessage(err) }, 'dial to static peer failed');
      this.scheduleDial(sp, sp.delayMs);
      sp.delayMs = Math.min(sp.delayMs * 2, this.maxMs);
    } finally {
      sp.dialing = false;
    }
  }
}
