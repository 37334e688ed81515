import type { Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import type { Logger } from 'pino';
import { errMessage } from './errMessage.js';
import type { Services } from './libp2pOptions.js';

/**
 * "Peer connected", as the node means it: the peer can actually receive what we publish. It has announced a
 * subscription to one of our topics and our outbound gossip stream to it is open. Firing on the bare
 * connection would let a resend published right away silently reach nobody. Polled, because gossipsub has no
 * event for "outbound stream ready" and its grafts do not cover the case where the peer grafted first.
 */

const GOSSIP_READY_POLL_MS = 25;
const GOSSIP_READY_TIMEOUT_MS = 10_000;

export class GossipReadiness {
  private readonly listeners: ((peerId: string) => void)[] = [];
  /** Peers for which the listeners already ran during their current connection. */
  private readonly announced = new Set<string>();
  private stopped = false;

  constructor(
    private readonly libp2p: () => Libp2p<Services>,
    /** Full gossip topic names. */
    private readonly topics: string[],
    private readonly isAllowed: (peer: string) => boolean,
    private readonly log: Logger,
  ) {}

  /** Runs `fn` once per connection of each peer, when it is gossip-ready (listeners run in order). */
  onReady(fn: (peerId: string) => void): void {
    this.listeners.push(fn);
  }

  /** A peer connected: watch it until it is gossip-ready (or the deadline passes; then fire anyway). */
  connected(peer: string): void {
    const deadline = Date.now() + GOSSIP_READY_TIMEOUT_MS;
    const check = (): void => {
      if (this.stopped || this.announced.has(peer) || !this.isAllowed(peer)) return;
      const connections = this.libp2p().getConnections(peerIdFromString(peer));
      if (connections.length === 0) return; // gone again; the next connection starts a new watch
      const timedOut = Date.now() >= deadline;
      if (!timedOut && !this.isGossipReady(peer, connections)) {
        setTimeout(check, GOSSIP_READY_POLL_MS);
        return;
      }
      // After the deadline fire anyway: the peer is connected and request/response works regardless.
      if (timedOut) this.log.debug({ peer }, 'peer connected but gossip not ready; firing onPeerConnect anyway');
      this.announced.add(peer);
      this.emit(peer);
    };
    check();
  }

  disconnected(peer: string): void {
    this.announced.delete(peer);
  }

  stop(): void {
    this.stopped = true;
  }

  private isGossipReady(peer: string, connections: Connection[]): boolean {
    const pubsub = this.libp2p().services.pubsub;
    const subscribed = this.topics.some((t) => pubsub.getSubscribers(t).some((p) => p.toString() === peer));
    const outboundStream = connections.some((c) => c.streams.some((s) => s.direction === 'outbound' && pubsub.protocols.includes(s.protocol)));
    return subscribed && outboundStream;
  }

  private emit(peer: string): void {
    for (const fn of this.listeners) {
      try {
        fn(peer);
      } catch (err) {
        this.log.error({ peer, err: errMessage(err) }, 'onPeerConnect listener threw');
      }
    }
  }
}
