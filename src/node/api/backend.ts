import type { z } from 'zod';
import type { GenesisFile } from '../../consensus/genesis.js';
import type { InclusionProof } from '../../consensus/proof.js';
import type { WrappedKey } from '../../records/envelope.js';
import type { User } from '../../records/state/types.js';
import type {
  ChainBlock,
  EvidenceRecord,
  KeyProofResponse,
  Overview,
  PayloadListing,
  PublicInvitation,
  PublicUser,
  StatusResponse,
  SubmitBatchResponse,
  submitBatchRequestSchema,
  StatsBatchesResponse,
  StatsJobResponse,
  SubmitTxResponse,
  submitTxRequestSchema,
} from '../../api/contract.js';
import type { MeasureName } from '../../records/stats/measures.js';

export type SubmitTxBody = z.output<typeof submitTxRequestSchema>;
export type SubmitBatchBody = z.output<typeof submitBatchRequestSchema>;

/**
 * Everything the HTTP routes need of the node, and nothing more: plain data in, plain data out. The routes
 * own the HTTP side (paths, parameter and body validation, authentication of signed requests, wire
 * encoding); the node answers through this interface (built by node/apiBackend.ts), so the routes never
 * see its ledger, store, mempool or libp2p host.
 */
export interface ApiBackend {
  /** This node's libp2p peer id: a signed request must name it. */
  readonly peerId: string;
  /** The network's genesis: its hash (every signed request is bound to it) and the file served to auditors. */
  readonly genesis: { readonly hash: Uint8Array; readonly file: GenesisFile };
  /** The node's data directory (key backups are kept under it). */
  readonly dataDir: string;
  /** Test-only endpoints are served (config testControls). */
  readonly testControls: boolean;

  status(): StatusResponse;
  /** The node's Prometheus metrics in the text exposition format (fixed label sets: no ids, no content). */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Admits a user's signed transaction and (by default) waits until it is final. */
  submit(req: SubmitTxBody): Promise<SubmitTxResponse>;
  /** Admits a batch without waiting. */
  submitBatch(req: SubmitBatchBody): Promise<SubmitBatchResponse>;

  /** A user of the committed state (undefined: unknown). */
  user(id: string): User | undefined;
  /** A user as the public endpoint shows it (undefined: unknown). */
  publicUser(id: string): PublicUser | undefined;
  /** A staff invitation as the public endpoint shows it (undefined: none). */
  invitation(id: string): PublicInvitation | undefined;
  /** Where a user's keys were set, with its inclusion proof. */
  keyProof(userId: string): Promise<KeyProofResponse>;
  /** What a signed-in user sees of their own relationships. */
  overview(user: User): Overview;
  /** Keys to wrap new content of a patient for (throws NOT_FOUND / FORBIDDEN). */
  recipients(user: User, patientId: string): PublicUser[];
  /** The data keys of a patient's blobs wrapped for `reader`. */
  patientKeys(patientId: string, reader: string): Promise<{ blob: string; key: WrappedKey }[]>;

  /** Finalized blocks from..to (ids only), at most MAX_BLOCKS_PER_PAGE. */
  blocks(from: number, to: number): Promise<ChainBlock[]>;
  /** Encoded blocks from..to (up to the head, stopping at the first one not stored) and their encoded certificates. */
  rawBlocks(from: number, to: number): Promise<{ height: number; block: Uint8Array; cert?: Uint8Array }[]>;
  /** Where a committed transaction is (undefined: not committed). */
  txLocation(txId: string): Promise<{ height: number; index: number } | undefined>;
  /** The transaction waits in the mempool. */
  isPending(txId: string): boolean;
  proof(txId: string): Promise<InclusionProof>;
  evidence(): Promise<EvidenceRecord[]>;
  /** What this replica holds of each committed payload of heights from..to (hashes and markers, never bytes). */
  payloads(from: number, to: number): Promise<PayloadListing>;

  /** A statistics job as the ledger holds it, with what this node's aggregator waits for (undefined: unknown job). */
  statsJob(id: string): StatsJobResponse | undefined;
  /** The statistics batches of a measure with their report counts, oldest first (the newest MAX_STATS_BATCHES). */
  statsBatches(measure: MeasureName): StatsBatchesResponse;

  /** Test controls: peers the libp2p host refuses. */
  setBlockedPeers(peers: string[]): Promise<void>;
}
