import { createHash } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { gossipsub, StrictNoSign, type GossipSub } from '@libp2p/gossipsub';
import type { TopicScoreParams } from '@libp2p/gossipsub/score';
import { identify, type Identify } from '@libp2p/identify';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import { createLibp2p, type Libp2p } from 'libp2p';

/**
 * The libp2p node: TCP, Noise, yamux, identify and gossipsub, with the connection gater and gossipsub's
 * mesh and scoring parameters for a small permissioned network. Only construction: the policy it enforces
 * is passed in.
 */

export type Services = { identify: Identify; pubsub: GossipSub };

export const DIAL_TIMEOUT_MS = 5_000;
/** Gossipsub sends IDONTWANT for messages of at least this size (its default, set explicitly here). */
export const IDONTWANT_MIN_BYTES = 512;
// gossipsub's graylist threshold (default -80): peers scoring below it are ignored entirely.
const GRAYLIST_THRESHOLD = -80;
const APP_SCORE_CREDIT = 10;

export interface Libp2pOptions {
  privateKey: PrivateKey;
  listen: string[];
  announce: string[];
  /** Full gossip topic names. */
  topics: string[];
  maxMessageBytes: number;
  /** How many static peers we dial (each should be able to stay in the mesh). */
  staticPeerCount: number;
  /** The reject units that ban a peer: gossipsub's own scoring graylists at about as many. */
  maxRejects: number;
  /** True if the peer may not connect now (checked at dial and after the Noise handshake). */
  denied: (peer: PeerId) => boolean;
  /** True for peers of the allow-list: they start with some score credit. */
  isAllowed: (peer: string) => boolean;
}

/**
 * Gossipsub keeps at most Dhi and tops up below Dlo: with Dlo ≥ the static peers every one of them can stay in
 * the mesh, so a message reaches every node in one hop.
 */
export function meshDegree(staticPeerCount: number): { D: number; Dlo: number; Dhi: number } {
  return { D: Math.max(6, staticPeerCount), Dlo: Math.max(4, staticPeerCount), Dhi: Math.max(12, staticPeerCount + 2) };
}

export async function createHostLibp2p(o: Libp2pOptions): Promise<Libp2p<Services>> {
  const { D, Dlo, Dhi } = meshDegree(o.staticPeerCount);
  return createLibp2p<Services>({
    privateKey: o.privateKey,
    addresses: { listen: o.listen, announce: o.announce },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // Stream windows no larger than the read buffer: a paused response stream then cannot overflow it.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 4 * 1024 * 1024 } })],
    connectionGater: {
      denyDialPeer: o.denied,
      // The Noise handshake reveals the remote peer id; refusing here is before the muxer, so before any gossip.
      denyInboundEncryptedConnection: o.denied,
      denyOutboundEncryptedConnection: o.denied,
      denyInboundUpgradedConnection: o.denied,
      denyOutboundUpgradedConnection: o.denied,
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
        allowedTopics: o.topics,
        idontwantMinDataSize: IDONTWANT_MIN_BYTES,
        D,
        Dlo,
        Dhi,
        // One inbound RPC may bundle several messages (IWANT replies) plus control data, and an RPC over
        // this limit kills the whole gossip stream from that peer, so leave generous room above one message.
        maxInboundDataLength: Math.max(4 * 1024 * 1024, 4 * o.maxMessageBytes + 256 * 1024),
        scoreParams: {
          topics: Object.fromEntries(o.topics.map((t) => [t, topicScoreParams(o.maxRejects)])),
          // Admitted peers start with some credit (score APP_SCORE_CREDIT), so an occasional reject does not
          // evict an honest peer from the mesh; only a burst of invalid messages drives the score negative.
          appSpecificScore: (peer) => (o.isAllowed(peer) ? 1 : 0),
          appSpecificWeight: APP_SCORE_CREDIT,
          // All local-cluster peers share one IP; colocation is not a sign of a Sybil attack here.
          IPColocationFactorWeight: 0,
        },
      }),
    },
  });
}

/**
 * Gossipsub's own scoring: only invalid deliveries count, scaled so that graylisting (everything from the
 * peer ignored) needs about as many rejects in quick succession as our own ban.
 */
function topicScoreParams(maxRejects: number): TopicScoreParams {
  const weight = (GRAYLIST_THRESHOLD - APP_SCORE_CREDIT) / (maxRejects + 1) ** 2;
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
