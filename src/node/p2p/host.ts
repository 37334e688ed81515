import { createHash } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { gossipsub, StrictNoSign, TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub';
import type { TopicScoreParams } from '@libp2p/gossipsub/score';
import { identify, type Identify } from '@libp2p/identify';
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { tcp } from '@libp2p/tcp';
import { lpStream } from '@libp2p/utils';
import { yamux } from '@libp2p/yamux';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { pino, type Logger } from 'pino';
import { encodeFrame, FrameReader, P2PRequestError } from './frames.js';

export { P2PRequestError, type P2PRequestErrorKind } from './frames.js';

export type Verdict = 'accept' | 'reject' | 'ignore';
/**
 * A verdict with the cost the message caused, in reject units (a plain 'reject' is 1): a batch that made us
 * check many bad signatures costs its sender that many, and merely useless work a fraction each.
 */
export interface WeighedVerdict {
  verdict: Verdict;
  penalty: number;
}

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
  penalty?: { maxRejects?: number; windowMs?: number; banMs?: number };
}

export interface GossipHandler {
  /** Runs for every gossip message received on the topic, before it is delivered or forwarded. */
  validate(data: Uint8Array, fromPeer: string): Verdict | WeighedVerdict | Promise<Verdict | WeighedVerdict>;
  /** Called only for messages that validate() accepted. */
  deliver?(data: Uint8Array, fromPeer: string): void;
}

export type RequestHandler = (request: Uint8Array, fromPeer: string) => AsyncIterable<Uint8Array>;

export interface HandleOptions {
  /** Largest request accepted. Default: the host's maxFrameBytes. */
  maxRequestBytes?: number;
  /** Largest response frame the handler may yield (a bigger one aborts the response). Default: the host's maxFrameBytes. */
  maxFrameBytes?: number;
  /** How long to wait for the request, and for the requester to take each batch of frames. Default 30 s. */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Idle timeout: for opening the stream and then for each response frame. Default: config requestTimeoutMs. */
  timeoutMs?: number;
  maxFrameBytes?: number;
  maxFrames?: number;
}

export interface PeerPenalty {
  /** Messages from this peer that validation rejected since this host started. */
  rejected: number;
  /** Set while the peer is banned (ms since epoch). */
  bannedUntil?: number;
}

const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_HANDLER_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REJECTS = 20;
const DEFAULT_REJECT_WINDOW_MS = 60_000;
const DEFAULT_BAN_MS = 60_000;
const DIAL_TIMEOUT_MS = 5_000;
// Response frames produced in the same tick are written together: one writeV is much cheaper than many writes.
const RESPONSE_BATCH_BYTES = 256 * 1024;
const RESPONSE_BATCH_FRAMES = 256;
const SEND_HIGH_WATER_BYTES = 1024 * 1024;
// gossipsub's graylist threshold (default -80): peers scoring below it are ignored entirely.
const GRAYLIST_THRESHOLD = -80;
const APP_SCORE_CREDIT = 10;

interface StaticPeer {
  id: PeerId;
  idStr: string;
  addrs: Multiaddr[];
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
  dialing: boolean;
}

interface PenaltyState {
  rejected: number;
  /** Reject units charged within the window: [time, weight]. */
  recentRejects: [number, number][];
  bannedUntil: number | undefined;
}

type Services = { identify: Identify; pubsub: GossipSub };

export class P2PHost {
  readonly peerId: string;
  private readonly log: Logger;
  private readonly allowed: Set<string>;
  private blocked = new Set<string>();
  private readonly penaltyByPeer = new Map<string, PenaltyState>();
  private readonly staticPeers = new Map<string, StaticPeer>();
  private readonly connectListeners: ((peerId: string) => void)[] = [];
  /** Peers for which onPeerConnect already fired during their current connection. */
  private readonly announcedPeers = new Set<string>();
  private readonly topicByFullName = new Map<string, string>();
  private libp2p!: Libp2p<Services>;
  private stopped = false;
  private readonly maxRejects: number;
  private readonly rejectWindowMs: number;
  private readonly banMs: number;
  private readonly redialMinMs: number;
  private readonly redialMaxMs: number;
  private readonly maxFrameBytes: number;
  private readonly requestTimeoutMs: number;

  private constructor(
    private readonly cfg: P2PConfig,
    private readonly handlers: Record<string, GossipHandler>,
  ) {
    this.peerId = peerIdFromPrivateKey(cfg.privateKey).toString();
    this.log = cfg.logger ?? pino({ level: 'silent' });
    this.allowed = new Set(cfg.allowedPeers.filter((p) => p !== this.peerId));
    this.maxRejects = cfg.penalty?.maxRejects ?? DEFAULT_MAX_REJECTS;
    this.rejectWindowMs = cfg.penalty?.windowMs ?? DEFAULT_REJECT_WINDOW_MS;
    this.banMs = cfg.penalty?.banMs ?? DEFAULT_BAN_MS;
    this.redialMinMs = cfg.redialMinMs ?? 250;
    this.redialMaxMs = cfg.redialMaxMs ?? 10_000;
    this.maxFrameBytes = cfg.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.requestTimeoutMs = cfg.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const name of cfg.topics) this.topicByFullName.set(this.protocolName(name), name);
    for (const name of Object.keys(handlers)) {
      if (!cfg.topics.includes(name)) throw new Error(`gossip handler for '${name}', which is not in topics [${cfg.topics.join(', ')}]`);
    }
  }

  static async start(cfg: P2PConfig, handlers: Record<string, GossipHandler>): Promise<P2PHost> {
    if (!(cfg.maxMessageBytes > 0)) throw new Error('maxMessageBytes must be positive');
    const host = new P2PHost(cfg, handlers);
    await host.init();
    return host;
  }

  private async init(): Promise<void> {
    const { cfg } = this;
    for (const sp of cfg.staticPeers) {
      if (sp.peerId === this.peerId) continue;
      if (!this.allowed.has(sp.peerId)) {
        this.log.warn({ peer: sp.peerId }, 'static peer is not in allowedPeers; not dialling it');
        continue;
      }
      this.staticPeers.set(sp.peerId, {
        id: peerIdFromString(sp.peerId),
        idStr: sp.peerId,
        // Dial by peer id with these addresses; a /p2p/ suffix in the config is tolerated.
        addrs: sp.addrs.map((a) => multiaddr(a).decapsulateCode(PROTOCOL_CODE_P2P)),
        delayMs: this.redialMinMs,
        timer: undefined,
        dialing: false,
      });
    }

    const fullTopics = [...this.topicByFullName.keys()];
    // Gossipsub keeps at most Dhi and tops up below Dlo: with Dlo ≥ the static peers every one of them
    // can stay in the mesh, so a message reaches every node in one hop.
    const staticCount = this.staticPeers.size;
    const Dlo = Math.max(4, staticCount);
    const D = Math.max(6, staticCount);
    const Dhi = Math.max(12, staticCount + 2);

    const denied = (peerId: PeerId): boolean => this.refusal(peerId.toString()) !== undefined;
    this.libp2p = await createLibp2p<Services>({
      privateKey: cfg.privateKey,
      addresses: { listen: cfg.listen, announce: cfg.announce ?? [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // Stream windows no larger than the read buffer: a paused response stream then cannot overflow it.
      streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 4 * 1024 * 1024 } })],
      connectionGater: {
        denyDialPeer: denied,
        // The Noise handshake reveals the remote peer id; refusing here is before the muxer, so before any gossip.
        denyInboundEncryptedConnection: denied,
        denyOutboundEncryptedConnection: denied,
        denyInboundUpgradedConnection: denied,
        denyOutboundUpgradedConnection: denied,
      },
      connectionManager: {
        // Every local-cluster peer shares 127.0.0.1, and the default of 5 inbound connections/s per host
        // refuses honest peers during a restart storm. The gater still refuses anyone not allowed.
        inboundConnectionThreshold: 100,
        maxIncomingPendingConnections: 50,
        dialTimeout: DIAL_TIMEOUT_MS,
      },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          // Application messages carry their own signatures; no per-message libp2p signing, and the id
          // is the content hash, identical on every node so duplicates are recognised across paths.
          globalSignaturePolicy: StrictNoSign,
          msgIdFn: (msg) => createHash('sha256').update(msg.data).digest(),
          allowPublishToZeroTopicPeers: true,
          ignoreDuplicatePublishError: true,
          emitSelf: false,
          allowedTopics: fullTopics,
          D,
          Dlo,
          Dhi,
          // One inbound RPC may bundle several messages (IWANT replies) plus control data, and an RPC over
          // this limit kills the whole gossip stream from that peer, so leave generous room above one message.
          maxInboundDataLength: Math.max(4 * 1024 * 1024, 4 * cfg.maxMessageBytes + 256 * 1024),
          scoreParams: {
            topics: Object.fromEntries(fullTopics.map((t) => [t, this.topicScoreParams()])),
            // Admitted peers start with some credit (score APP_SCORE_CREDIT), so an occasional reject does not
            // evict an honest peer from the mesh; only a burst of invalid messages drives the score negative.
            appSpecificScore: (peer) => (this.allowed.has(peer) ? 1 : 0),
            appSpecificWeight: APP_SCORE_CREDIT,
            // All local-cluster peers share one IP; colocation is not a sign of a Sybil attack here.
            IPColocationFactorWeight: 0,
          },
        }),
      },
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
      this.watchUntilGossipReady(peer);
    });
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString();
      this.log.debug({ peer }, 'peer disconnected');
      this.announcedPeers.delete(peer);
      const sp = this.staticPeers.get(peer);
      if (sp && !this.stopped) {
        this.scheduleDial(sp, sp.delayMs);
        sp.delayMs = Math.min(sp.delayMs * 2, this.redialMaxMs);
      }
    });

    // Known addresses up front, so request() to a static peer works even before the first dial completes.
    for (const sp of this.staticPeers.values()) await this.libp2p.peerStore.merge(sp.id, { multiaddrs: sp.addrs });
    // Subscribe before dialling so the first exchange with each peer already carries our subscriptions.
    for (const t of fullTopics) pubsub.subscribe(t);
    for (const sp of this.staticPeers.values()) this.scheduleDial(sp, 0);
    this.log.debug({ peerId: this.peerId, addrs: this.addresses(), D, Dlo, Dhi }, 'p2p host started');
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
    const now = Date.now();
    const out: Record<string, PeerPenalty> = {};
    for (const [peer, st] of this.penaltyByPeer) {
      out[peer] = st.bannedUntil !== undefined && st.bannedUntil > now ? { rejected: st.rejected, bannedUntil: st.bannedUntil } : { rejected: st.rejected };
    }
    return out;
  }

  onPeerConnect(fn: (peerId: string) => void): void {
    this.connectListeners.push(fn);
  }

  async setBlockedPeers(peerIds: string[]): Promise<void> {
    const ids = peerIds.map((p) => {
      try {
        return peerIdFromString(p);
      } catch {
        throw new Error(`setBlockedPeers: '${p}' is not a peer id`);
      }
    });
    const previous = this.blocked;
    this.blocked = new Set(ids.map((id) => id.toString()));
    this.log.debug({ blocked: [...this.blocked] }, 'blocked peers set');
    await Promise.allSettled(ids.map((id) => this.libp2p.hangUp(id)));
    for (const p of previous) {
      const sp = this.staticPeers.get(p);
      if (sp && !this.blocked.has(p)) {
        sp.delayMs = this.redialMinMs;
        this.scheduleDial(sp, 0);
      }
    }
  }

  async handle(protocol: string, handler: RequestHandler, opts: HandleOptions = {}): Promise<void> {
    const fullProtocol = this.protocolName(protocol);
    const maxRequestBytes = opts.maxRequestBytes ?? this.maxFrameBytes;
    const maxFrameBytes = opts.maxFrameBytes ?? this.maxFrameBytes;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
    await this.libp2p.handle(fullProtocol, async (stream, connection) => {
      await this.serveRequest(stream, connection, protocol, handler, { maxRequestBytes, maxFrameBytes, timeoutMs });
    });
  }

  async *request(peerId: string, protocol: string, request: Uint8Array, opts: RequestOptions = {}): AsyncIterable<Uint8Array> {
    const fullProtocol = this.protocolName(protocol);
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    const maxFrameBytes = opts.maxFrameBytes ?? this.maxFrameBytes;
    const maxFrames = opts.maxFrames ?? Number.POSITIVE_INFINITY;
    const describe = `request ${protocol} to ${peerId}`;
    const refusal = this.refusal(peerId);
    if (refusal) throw new P2PRequestError('refused', `${describe}: peer is ${refusal}`);

    let stream: Stream;
    try {
      stream = await this.libp2p.dialProtocol(peerIdFromString(peerId), fullProtocol, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new P2PRequestError('timeout', `${describe}: could not open a stream within ${timeoutMs} ms`, { cause: err });
      }
      if (name === 'UnsupportedProtocolError') {
        throw new P2PRequestError('refused', `${describe}: peer does not serve ${fullProtocol}`, { cause: err });
      }
      throw new P2PRequestError('refused', `${describe}: cannot open stream (${errMessage(err)})`, { cause: err });
    }

    const reader = new FrameReader(stream, maxFrameBytes, describe);
    let completed = false;
    try {
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        if (!stream.send(encodeFrame(request))) await nextDrain(stream, signal);
        await stream.close({ signal }); // half-close: the request is complete
      } catch (err) {
        if (signal.aborted) throw new P2PRequestError('timeout', `${describe}: sending the request took over ${timeoutMs} ms`, { cause: err });
        throw new P2PRequestError('reset', `${describe}: sending the request failed (${errMessage(err)})`, { cause: err });
      }
      let frames = 0;
      for (;;) {
        const frame = await reader.next(timeoutMs);
        if (frame === undefined) break;
        if (++frames > maxFrames) throw new P2PRequestError('too-large', `${describe}: more than maxFrames ${maxFrames} response frames`);
        yield frame;
      }
      completed = true;
    } finally {
      reader.dispose();
      // On error, timeout or the consumer stopping early, reset so the responder stops producing.
      if (!completed) stream.abort(new Error('request abandoned by requester'));
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const sp of this.staticPeers.values()) clearTimeout(sp.timer);
    await this.libp2p.stop();
    this.log.debug('p2p host stopped');
  }

  // ---------------------------------------------------------------------------------------------

  private protocolName(name: string): string {
    return `/medledger/${this.cfg.network}/${name}/1`;
  }

  /** Why a peer may not connect right now, or undefined if it may. */
  private refusal(peer: string): 'not allowed' | 'blocked' | 'banned' | undefined {
    if (!this.allowed.has(peer)) return 'not allowed';
    if (this.blocked.has(peer)) return 'blocked';
    const until = this.penaltyByPeer.get(peer)?.bannedUntil;
    if (until !== undefined && until > Date.now()) return 'banned';
    return undefined;
  }

  private async validateGossip(topic: string, fromPeer: string, data: Uint8Array): Promise<TopicValidatorResult> {
    let verdict: Verdict;
    let penalty: number | undefined;
    if (data.byteLength > this.cfg.maxMessageBytes) {
      verdict = 'reject';
      this.log.debug({ topic, peer: fromPeer, bytes: data.byteLength }, 'gossip message over size limit');
    } else {
      const handler = this.handlers[topic];
      if (!handler) return TopicValidatorResult.Ignore; // subscribed without a handler: neither deliver nor forward
      try {
        const result = await handler.validate(data, fromPeer);
        if (typeof result === 'string') verdict = result;
        else ({ verdict, penalty } = result);
      } catch (err) {
        // Malformed bytes must not take the node down; treat like an explicit rejection.
        this.log.debug({ topic, peer: fromPeer, bytes: data.byteLength, err: errMessage(err) }, 'gossip validator threw');
        verdict = 'reject';
      }
    }
    const charge = penalty ?? (verdict === 'reject' ? 1 : 0);
    if (charge > 0) this.recordReject(fromPeer, topic, charge, verdict === 'reject');
    switch (verdict) {
      case 'accept':
        return TopicValidatorResult.Accept;
      case 'ignore':
        return TopicValidatorResult.Ignore;
      case 'reject':
        return TopicValidatorResult.Reject;
      default:
        this.log.error({ topic, verdict: String(verdict) }, 'gossip validator returned an unknown verdict; ignoring the message');
        return TopicValidatorResult.Ignore;
    }
  }

  /** Charges `weight` reject units to a peer; `maxRejects` units within the window ban it. */
  private recordReject(peer: string, topic: string, weight: number, rejected: boolean): void {
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
    this.libp2p.hangUp(peerIdFromString(peer)).catch((err) => this.log.debug({ peer, err: errMessage(err) }, 'hang up failed'));
    const sp = this.staticPeers.get(peer);
    if (sp) this.scheduleDial(sp, this.banMs + 10);
  }

  /**
   * Gossipsub's own scoring: only invalid deliveries count, scaled so that graylisting (everything from the
   * peer ignored) needs about as many rejects in quick succession as our own ban.
   */
  private topicScoreParams(): TopicScoreParams {
    const weight = (GRAYLIST_THRESHOLD - APP_SCORE_CREDIT) / (this.maxRejects + 1) ** 2;
    return {
      topicWeight: 1,
      // Off: in a small, quiet permissioned network these would penalise honest peers for low traffic.
      timeInMeshWeight: 0,
      timeInMeshQuantum: 1000,
      timeInMeshCap: 1,
      firstMessageDeliveriesWeight: 0,
      firstMessageDeliveriesDecay: 0.5,
      firstMessageDeliveriesCap: 1,
      meshMessageDeliveriesWeight: 0,
      meshMessageDeliveriesDecay: 0.5,
      meshMessageDeliveriesCap: 1,
      meshMessageDeliveriesThreshold: 1,
      meshMessageDeliveriesWindow: 10,
      meshMessageDeliveriesActivation: 5000,
      meshFailurePenaltyWeight: 0,
      meshFailurePenaltyDecay: 0.5,
      // score = weight × count²; the count decays by half each second, so only a sustained burst graylists.
      invalidMessageDeliveriesWeight: weight,
      invalidMessageDeliveriesDecay: 0.5,
    };
  }

  private scheduleDial(sp: StaticPeer, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(sp.timer);
    sp.timer = setTimeout(() => void this.dialStatic(sp), delayMs);
  }

  private async dialStatic(sp: StaticPeer): Promise<void> {
    sp.timer = undefined;
    if (this.stopped || sp.dialing || this.libp2p.getConnections(sp.id).length > 0) return;
    const refusal = this.refusal(sp.idStr);
    if (refusal === 'banned') {
      this.scheduleDial(sp, this.penaltyByPeer.get(sp.idStr)!.bannedUntil! - Date.now() + 10);
      return;
    }
    if (refusal) return; // blocked: setBlockedPeers() redials when unblocking
    sp.dialing = true;
    try {
      await this.libp2p.peerStore.merge(sp.id, { multiaddrs: sp.addrs });
      // Success does not reset the backoff: a peer that refuses us after the handshake still lets the
      // dial succeed for a moment. The backoff resets once the peer is gossip-ready (emitPeerConnect).
      await this.libp2p.dial(sp.id, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
    } catch (err) {
      if (this.stopped) return;
      this.log.debug({ peer: sp.idStr, retryInMs: sp.delayMs, err: errMessage(err) }, 'dial to static peer failed');
      this.scheduleDial(sp, sp.delayMs);
      sp.delayMs = Math.min(sp.delayMs * 2, this.redialMaxMs);
    } finally {
      sp.dialing = false;
    }
  }

  /**
   * onPeerConnect fires once the peer can actually receive what we publish: it has announced a
   * subscription to one of our topics and our outbound gossip stream to it is open. Firing on the bare
   * connection would let a resend published right away silently reach nobody. Polled, because gossipsub
   * has no event for "outbound stream ready" and its grafts do not cover the case where the peer grafted first.
   */
  private watchUntilGossipReady(peer: string): void {
    const deadline = Date.now() + GOSSIP_READY_TIMEOUT_MS;
    const check = (): void => {
      if (this.stopped || this.announcedPeers.has(peer) || !this.allowed.has(peer)) return;
      const id = peerIdFromString(peer);
      const connections = this.libp2p.getConnections(id);
      if (connections.length === 0) return; // gone again; the next peer:connect starts a new watch
      const timedOut = Date.now() >= deadline;
      if (!timedOut && !this.isGossipReady(peer, connections)) {
        setTimeout(check, GOSSIP_READY_POLL_MS);
        return;
      }
      // After the deadline fire anyway: the peer is connected and request/response works regardless.
      if (timedOut) this.log.debug({ peer }, 'peer connected but gossip not ready; firing onPeerConnect anyway');
      this.announcedPeers.add(peer);
      this.emitPeerConnect(peer);
    };
    check();
  }

  private isGossipReady(peer: string, connections: Connection[]): boolean {
    const pubsub = this.libp2p.services.pubsub;
    const subscribed = [...this.topicByFullName.keys()].some((t) => pubsub.getSubscribers(t).some((p) => p.toString() === peer));
    const outboundStream = connections.some((c) => c.streams.some((s) => s.direction === 'outbound' && pubsub.protocols.includes(s.protocol)));
    return subscribed && outboundStream;
  }

  private emitPeerConnect(peer: string): void {
    const sp = this.staticPeers.get(peer);
    if (sp) sp.delayMs = this.redialMinMs;
    for (const fn of this.connectListeners) {
      try {
        fn(peer);
      } catch (err) {
        this.log.error({ peer, err: errMessage(err) }, 'onPeerConnect listener threw');
      }
    }
  }

  private async serveRequest(
    stream: Stream,
    connection: Connection,
    protocol: string,
    handler: RequestHandler,
    limits: { maxRequestBytes: number; maxFrameBytes: number; timeoutMs: number },
  ): Promise<void> {
    const fromPeer = connection.remotePeer.toString();
    const lp = lpStream(stream, { maxDataLength: limits.maxRequestBytes });
    let frames: AsyncIterator<Uint8Array> | undefined;
    let sent = 0;
    try {
      const request = (await lp.read({ signal: AbortSignal.timeout(limits.timeoutMs) })).subarray();
      frames = handler(request, fromPeer)[Symbol.asyncIterator]();
      let batch: Uint8Array[] = [];
      let batchBytes = 0;
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const out = batch;
        batch = [];
        batchBytes = 0;
        const signal = AbortSignal.timeout(limits.timeoutMs);
        await lp.writeV(out, { signal });
        // libp2p's 'drain' fires on every window update, not when the write buffer is empty, so waiting for
        // one drain still lets the buffer grow by a batch per update. Hold the handler until it is mostly sent.
        while (stream.writeBufferLength > SEND_HIGH_WATER_BYTES) {
          if (stream.writableNeedsDrain) await nextDrain(stream, signal);
          else await new Promise((resolve) => setImmediate(resolve));
          signal.throwIfAborted();
        }
      };
      let pending = frames.next();
      for (;;) {
        let result: IteratorResult<Uint8Array>;
        if (batch.length === 0) {
          result = await pending;
        } else {
          // Flush what we have unless the handler produces its next frame within this tick.
          const raced = await Promise.race([pending, new Promise<'idle'>((resolve) => setImmediate(resolve, 'idle'))]);
          if (raced === 'idle') {
            pending.catch(() => undefined); // still awaited below; avoid an unhandled rejection while flushing
            await flush();
            result = await pending;
          } else {
            result = raced;
          }
        }
        if (result.done) break;
        const frame = result.value;
        if (frame.byteLength > limits.maxFrameBytes) {
          throw new Error(`handler yielded a ${frame.byteLength}-byte frame, over maxFrameBytes ${limits.maxFrameBytes}`);
        }
        batch.push(frame);
        batchBytes += frame.byteLength;
        sent++;
        if (batchBytes >= RESPONSE_BATCH_BYTES || batch.length >= RESPONSE_BATCH_FRAMES) await flush();
        pending = frames.next();
      }
      await flush();
      await stream.close({ signal: AbortSignal.timeout(limits.timeoutMs) });
      this.log.debug({ protocol, peer: fromPeer, frames: sent }, 'served request');
    } catch (err) {
      this.log.debug({ protocol, peer: fromPeer, frames: sent, err: errMessage(err) }, 'request handling failed');
      stream.abort(err instanceof Error ? err : new Error(String(err)));
      // Let the handler release whatever it holds (iterators, snapshots).
      await frames?.return?.().catch(() => undefined);
    }
  }
}

const GOSSIP_READY_POLL_MS = 25;
const GOSSIP_READY_TIMEOUT_MS = 10_000;
// The multiaddr protocol code of /p2p/<peer id>.
const PROTOCOL_CODE_P2P = 421;

/**
 * The next 'drain' event. Not stream.onDrain(): in @libp2p/utils 7.4 its promise is never reset, so after
 * the first drain it resolves at once forever and a wait loop on it spins without yielding.
 */
function nextDrain(stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain);
      stream.removeEventListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (evt: { error?: Error }): void => {
      cleanup();
      reject(evt.error ?? new Error('stream closed while waiting to send'));
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    stream.addEventListener('drain', onDrain);
    stream.addEventListener('close', onClose);
    signal.addEventListener('abort', onAbort);
  });
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
