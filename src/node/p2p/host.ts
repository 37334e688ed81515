import type { TopicValidatorResult } from '@libp2p/gossipsub';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { errMessage } from './errMessage.js';
import { P2PRequestError } from './frames.js';
import { createHostLibp2p, IDONTWANT_MIN_BYTES, meshDegree, type Services } from './libp2pOptions.js';
import { PeerPolicy, type PenaltyOptions, type PeerPenalty } from './peerPolicy.js';
import { GossipReadiness } from './readiness.js';
import { StaticPeerDialer } from './redial.js';
import { DEFAULT_HANDLER_TIMEOUT_MS, sendRequest, serveRequest, type HandleOptions, type RequestHandler, type RequestOptions } from './requestResponse.js';
import { judgeMessage, type GossipHandler } from './verdict.js';

export { P2PRequestError, type P2PRequestErrorKind } from './frames.js';
export type { PeerPenalty } from './peerPolicy.js';
export type { HandleOptions, RequestHandler, RequestOptions } from './requestResponse.js';
export { GossipError, type GossipAction, type GossipHandler, type Verdict, type WeighedVerdict } from './verdict.js';

/**
 * The node's libp2p host, a facade over: libp2pOptions (transport and gossipsub construction), peerPolicy
 * (allow-list, blocks, penalties and bans), redial (static peers), readiness (onPeerConnect), verdict (gossip
 * validation outcome → gossipsub verdict and penalty) and requestResponse (streams).
 */

export interface P2PConfig {
  /** Topics and protocols are named `/medledger/<network>/<name>/1`. */
  network: string;
  privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/0. */
  listen: string[];
  announce?: string[];
  /** Peer ids admitted by the connection gater; every other peer is refused, inbound and outbound. */
  allowedPeers: string[];
  /** Dialled at start and redialled with exponential backoff whenever disconnected. */
  staticPeers: { peerId: string; addrs: string[] }[];
  /** Gossip topic short names, e.g. ['tx', 'block', 'vote']. */
  topics: string[];
  /** Gossip messages larger than this are rejected on receipt and never published. */
  maxMessageBytes: number;
  logger?: Logger;
  /** Default cap on one request or response frame (request/response protocols). Default 4 MiB. */
  maxFrameBytes?: number;
  /** Default idle timeout of request(): dial, and the wait for each response frame. Default 10 s. */
  requestTimeoutMs?: number;
  /** Static peer redial backoff: first delay and cap. Default 250 ms → 10 s. */
  redialMinMs?: number;
  redialMaxMs?: number;
  /** A peer whose messages we reject `maxRejects` times within `windowMs` is cut off for `banMs`. */
  penalty?: PenaltyOptions;
}

const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export class P2PHost {
  readonly peerId: string;
  private readonly log: Logger;
  private readonly policy: PeerPolicy;
  private readonly dialer: StaticPeerDialer;
  private readonly readiness: GossipReadiness;
  private readonly topicByFullName = new Map<string, string>();
  private libp2p!: Libp2p<Services>;
  private stopped = false;
  private readonly maxFrameBytes: number;
  private readonly requestTimeoutMs: number;

  private constructor(
    private readonly cfg: P2PConfig,
    private readonly handlers: Record<string, GossipHandler>,
  ) {
    this.peerId = peerIdFromPrivateKey(cfg.privateKey).toString();
    this.log = cfg.logger ?? pino({ level: 'silent' });
    this.maxFrameBytes = cfg.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.requestTimeoutMs = cfg.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const name of cfg.topics) this.topicByFullName.set(this.protocolName(name), name);
    for (const name of Object.keys(handlers)) {
      if (!cfg.topics.includes(name)) throw new Error(`gossip handler for '${name}', which is not in topics [${cfg.topics.join(', ')}]`);
    }
    this.policy = new PeerPolicy(this.peerId, cfg.allowedPeers, cfg.penalty, this.log, (peer) => this.cutOff(peer));
    this.dialer = new StaticPeerDialer(cfg.staticPeers, this.peerId, this.policy, this.log, cfg.redialMinMs ?? 250, cfg.redialMaxMs ?? 10_000);
    this.readiness = new GossipReadiness(
      () => this.libp2p,
      [...this.topicByFullName.keys()],
      (peer) => this.policy.isAllowed(peer),
      this.log,
    );
    this.readiness.onReady((peer) => this.dialer.ready(peer));
  }

  static async start(cfg: P2PConfig, handlers: Record<string, GossipHandler>): Promise<P2PHost> {
    if (!(cfg.maxMessageBytes > 0)) throw new Error('maxMessageBytes must be positive');
    const host = new P2PHost(cfg, handlers);
    await host.init();
    return host;
  }

  private async init(): Promise<void> {
    const { cfg, policy } = this;
    const fullTopics = [...this.topicByFullName.keys()];
    this.libp2p = await createHostLibp2p({
      privateKey: cfg.privateKey,
      listen: cfg.listen,
      announce: cfg.announce ?? [],
      topics: fullTopics,
      maxMessageBytes: cfg.maxMessageBytes,
      staticPeerCount: this.dialer.size,
      maxRejects: policy.maxRejects,
      denied: (peerId) => policy.refusal(peerId.toString()) !== undefined,
      isAllowed: (peer) => policy.isAllowed(peer),
    });

    const pubsub = this.libp2p.services.pubsub;
    for (const [fullTopic, name] of this.topicByFullName) {
      pubsub.topicValidators.set(fullTopic, (peer, msg) => this.validateGossip(name, peer.toString(), msg.data));
    }
    pubsub.addEventListener('gossipsub:message', (evt) => {
      const { propagationSource, msg } = evt.detail;
      const name = this.topicByFullName.get(msg.topic);
      const handler = name === undefined ? undefined : this.handlers[name];
      if (!handler?.deliver) return;
      try {
        handler.deliver(msg.data, propagationSource.toString());
      } catch (err) {
        // A throwing listener here would surface as an uncaught exception; keep the node up.
        this.log.error({ topic: name, err: errMessage(err) }, 'gossip deliver handler threw');
      }
    });
    this.libp2p.addEventListener('peer:connect', (evt) => {
      const peer = evt.detail.toString();
      this.log.debug({ peer }, 'peer connected');
      this.readiness.connected(peer);
    });
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString();
      this.log.debug({ peer }, 'peer disconnected');
      this.readiness.disconnected(peer);
      this.dialer.disconnected(peer);
    });

    // Known addresses up front, so request() to a static peer works even before the first dial completes.
    await this.dialer.attach(this.libp2p);
    // Subscribe before dialling so the first exchange with each peer already carries our subscriptions.
    for (const t of fullTopics) pubsub.subscribe(t);
    this.dialer.dialAll();
    this.log.debug({ peerId: this.peerId, addrs: this.addresses(), ...meshDegree(this.dialer.size) }, 'p2p host started');
  }

  addresses(): string[] {
    return this.libp2p.getMultiaddrs().map((ma) => {
      const s = ma.toString();
      return s.includes('/p2p/') ? s : `${s}/p2p/${this.peerId}`;
    });
  }

  async publish(topic: string, data: Uint8Array): Promise<void> {
    const fullTopic = this.protocolName(topic);
    if (!this.topicByFullName.has(fullTopic)) throw new Error(`cannot publish on unknown topic '${topic}'`);
    if (data.byteLength > this.cfg.maxMessageBytes) {
      throw new Error(`gossip message on '${topic}' is ${data.byteLength} bytes, over the ${this.cfg.maxMessageBytes}-byte limit`);
    }
    try {
      await this.libp2p.services.pubsub.publish(fullTopic, data);
    } catch (err) {
      // Both are configured off; keep the promise of never throwing for them should a default change.
      if (/PublishError\.(Duplicate|NoPeersSubscribedToTopic)/.test(errMessage(err))) return;
      throw err;
    }
  }

  connectedPeers(): string[] {
    return this.libp2p.getPeers().map((p) => p.toString());
  }

  penalties(): Record<string, PeerPenalty> {
    return this.policy.penalties();
  }

  onPeerConnect(fn: (peerId: string) => void): void {
    this.readiness.onReady(fn);
  }

  async setBlockedPeers(peerIds: string[]): Promise<void> {
    const ids = peerIds.map((p) => {
      try {
        return peerIdFromString(p);
      } catch {
        throw new Error(`setBlockedPeers: '${p}' is not a peer id`);
      }
    });
    const previous = this.policy.setBlocked(ids.map((id) => id.toString()));
    this.log.debug({ blocked: ids.map((id) => id.toString()) }, 'blocked peers set');
    await Promise.allSettled(ids.map((id) => this.libp2p.hangUp(id)));
    this.dialer.unblocked(previous);
  }

  async handle(protocol: string, handler: RequestHandler, opts: HandleOptions = {}): Promise<void> {
    const limits = {
      maxRequestBytes: opts.maxRequestBytes ?? this.maxFrameBytes,
      maxFrameBytes: opts.maxFrameBytes ?? this.maxFrameBytes,
      timeoutMs: opts.timeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS,
    };
    await this.libp2p.handle(this.protocolName(protocol), async (stream, connection) => {
      await serveRequest(stream, connection, protocol, handler, limits, this.log);
    });
  }

  async *request(peerId: string, protocol: string, request: Uint8Array, opts: RequestOptions = {}): AsyncIterable<Uint8Array> {
    const describe = `request ${protocol} to ${peerId}`;
    const refusal = this.policy.refusal(peerId);
    if (refusal) throw new P2PRequestError('refused', `${describe}: peer is ${refusal}`);
    yield* sendRequest(this.libp2p, peerId, this.protocolName(protocol), request, {
      timeoutMs: opts.timeoutMs ?? this.requestTimeoutMs,
      maxFrameBytes: opts.maxFrameBytes ?? this.maxFrameBytes,
      maxFrames: opts.maxFrames ?? Number.POSITIVE_INFINITY,
      describe,
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.dialer.stop();
    this.readiness.stop();
    await this.libp2p.stop();
    this.log.debug('p2p host stopped');
  }

  // ---------------------------------------------------------------------------------------------

  private protocolName(name: string): string {
    return `/medledger/${this.cfg.network}/${name}/1`;
  }

  /** Validates a received gossip message; its verdict and the sender's charge come from judgeValidation alone. */
  private async validateGossip(topic: string, fromPeer: string, data: Uint8Array): Promise<TopicValidatorResult> {
    // Gossipsub sends IDONTWANT to its mesh peers on a message's first arrival, and forwards it right after
    // validation; validation here is long synchronous work (signatures), and without these two turns of the
    // event loop neither our IDONTWANT nor the peers' ones are written or read in time, so in a full mesh
    // every node got each large message from every peer (about 2.9 copies). Before: ours leaves first;
    // after: the peers' ones that arrived meanwhile are read, and they are not sent the message again.
    const large = data.byteLength >= IDONTWANT_MIN_BYTES;
    if (large) await yieldToIo();
    const judged = await judgeMessage(this.handlers[topic], data, { topic, peer: fromPeer, maxMessageBytes: this.cfg.maxMessageBytes, log: this.log });
    if (judged.penalty > 0) this.policy.charge(fromPeer, topic, judged.penalty, judged.verdict === 'reject');
    if (large) await yieldToIo();
    return judged.result;
  }

  /** A peer was just banned: hang up, and let the redialler try again after the ban. */
  private cutOff(peer: string): void {
    this.libp2p.hangUp(peerIdFromString(peer)).catch((err) => this.log.debug({ peer, err: errMessage(err) }, 'hang up failed'));
    this.dialer.banned(peer, this.policy.banMs);
  }
}
