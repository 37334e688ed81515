import { z } from 'zod';
import type { AuditEvent } from '../records/audit.js';
import type { Appointment, RecordMeta } from '../records/state/types.js';
import type { GenesisFile } from '../consensus/genesis.js';
import type { InclusionProof } from '../consensus/proof.js';
import type { SignedVote } from '../consensus/votes.js';
import { fromHex, toHex } from '../records/crypto/bytes.js';

/**
 * The node's HTTP API wire formats (JSON; binary fields base64). Shared by the server and the client so
 * that both sides agree by construction.
 */
const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

export const submitTxRequestSchema = z.strictObject({
  tx: b64,
  payload: b64.optional(),
  /** Wait until the transaction is final (default true); results of reads and queries need it. */
  wait: z.boolean().default(true),
  timeoutMs: z.number().int().min(100).max(120_000).default(30_000),
});
export type SubmitTxRequest = z.input<typeof submitTxRequestSchema>;

export const submitBatchRequestSchema = z.strictObject({
  txs: z
    .array(z.strictObject({ tx: b64, payload: b64.optional() }))
    .min(1)
    .max(2_000),
});

export interface WireWrappedKey {
  epk: string;
  w: string;
}

export interface WireBlob {
  blob: string;
  /** AEAD nonce and ciphertext of the blob: opened on the client only. */
  n: string;
  c: string;
  /** The blob's data key wrapped for the requesting user, if one was shared with them. */
  key?: WireWrappedKey;
}

export interface ReadRecordResult {
  kind: 'record';
  record: RecordMeta;
  content?: WireBlob;
  files: (WireBlob & { file: string; version: number })[];
}
export interface ListRecordsResult {
  kind: 'records';
  records: RecordMeta[];
}
export interface QueryAuditResult {
  kind: 'audit';
  events: AuditEvent[];
  cursor?: string;
}
export type TxResult = ReadRecordResult | ListRecordsResult | QueryAuditResult;

export interface SubmitTxResponse {
  id: string;
  status: 'committed' | 'pending';
  height?: number;
  event?: AuditEvent;
  result?: TxResult;
}

export interface SubmitBatchResponse {
  accepted: string[];
  rejected: { index: number; code: string; message: string }[];
}

export interface IntegrityStatus {
  ok: boolean;
  /** Height verified so far by the monitor. */
  verifiedHeight: number;
  alert?: { height: number; problem: string; since: number };
}

export interface StatusResponse {
  node: string;
  hospital: string;
  network: string;
  peerId: string;
  height: number;
  headHash: string;
  finalizedHeight: number;
  finalizedHash: string;
  peers: string[];
  validators: number;
  round: number;
  mempool: number;
  integrity: IntegrityStatus;
  /** Load shedding: submissions refused (503) by reason, resident memory, event-loop delay. */
  load?: {
    shed: Record<'mempool' | 'memory' | 'loop', number>;
    rssMB: number;
    loopDelayP99Ms: number;
    /** API requests refused before any handler ran, by reason. */
    api: { rateLimited: number; wrongHost: number; crossOrigin: number; badContentType: number; malformedTarget: number };
  };
  /**
   * Payloads against the hashes the chain commits to (integrity monitor) and their repair from peers (sync):
   * checked, found damaged or missing, purged (held after a deletion), restored, dropped, still missing; and
   * the latest problems found, naming transaction and record.
   */
  payloads?: {
    checked: number;
    damaged: number;
    purged: number;
    stored: number;
    dropped: number;
    missing: number;
    recent: { height: number; tx: string; record?: string; problem: string; action: 'repair' | 'purge' }[];
  };
  /** Heights decided and the rounds beyond round 0 they needed (timeouts, skipped proposers). */
  consensusStats?: { heights: number; extraRounds: number; heightsWithExtraRounds: number };
  /** Set when this node stopped consensus because it could not commit a decided block (e.g. a disk failure). */
  halted?: { height: number; reason: string; since: number };
  /** Where this node's users' keystore files live (the TUI and CLI on this host unlock them there). */
  keystoreDir: string;
  sync?: { target: number; active: boolean };
  /** Peers whose gossip this node rejected, with any ban in force. */
  penalties?: Record<string, { rejected: number; bannedUntil?: number }>;
}

/** GET /v1/chain/blocks answers at most this many blocks per page. */
export const MAX_BLOCKS_PER_PAGE = 500;

/** A finalized block as the chain endpoint lists it (ids only: contents need an audited read). */
export interface ChainBlock {
  height: number;
  hash: string;
  parent: string;
  time: number;
  round: number;
  proposer: number;
  txRoot: string;
  eventsRoot: string;
  txs: string[];
  /** The commit certificate stored with the block: its round and the validators who signed it. */
  cert?: { round: number; signers: number[] };
}

export interface PublicUser {
  id: string;
  role: string;
  hospital: string;
  active: boolean;
  signKey: string;
  encKey?: string;
}

/**
 * GET /v1/invitations/:id: a staff invitation (issue 10), public like users are. The activating client reads
 * role, hospital and expiry from it and checks the code against `codeKey` before anything is signed.
 */
export interface PublicInvitation {
  user: string;
  role: 'doctor' | 'auditor';
  hospital: string;
  invitedBy: string;
  expiresAt: number;
  /** Base64 of the public key derived from the activation code. */
  codeKey: string;
  activated: boolean;
}

export interface Overview {
  user: PublicUser;
  /** Patient: who has access and who asked for it. */
  grants?: { user: string; kind: string; since: number }[];
  requests?: { user: string; kind: string; at: number }[];
  /** Doctor / auditor: patients who granted access, and own pending requests. */
  patients?: { patient: string; since: number }[];
  pendingRequests?: { patient: string; at: number }[];
  appointments?: Appointment[];
  /** Admin: own hospital's staff. */
  staff?: PublicUser[];
  /** Patient: the latest statsConsent (issue 13); absent when they never chose (= not contributing). */
  statsConsent?: { contribute: boolean; since: number };
  /** Patient: per measure, the batch they last reported it in (one report per measure and batch). */
  statsReported?: Partial<Record<'systolic' | 'diastolic' | 'heartRate' | 'temperature', string>>;
}

export interface ErrorResponse {
  error: { code: string; message: string };
}

// ---- auditor endpoints (issue #5): genesis, inclusion proofs, equivocation evidence ----

/** GET /v1/genesis: the genesis file this node runs (an unpinned trust anchor for `medledger verify`). */
export interface GenesisResponse {
  /** SHA-256 of the canonical encoding of the file: block 0's parent. */
  hash: string;
  genesis: GenesisFile;
}

/** GET /v1/proof/:txId returns an InclusionProof (src/consensus/proof.ts), checked offline by verify-proof. */
export type ProofResponse = InclusionProof;

/**
 * GET /v1/users/:id/key-proof: where the user's public keys were set — in the genesis file (hospital
 * admins), or by the committed transaction (registerPatient / activateUser) whose inclusion proof is given.
 * Clients check it against the genesis file they trust before sealing anything for that key.
 */
export type KeyProofResponse = { user: string; source: 'genesis' } | { user: string; source: 'transaction'; proof: InclusionProof };

/** A signed vote as stored in evidence (bytes as hex), or a block hash where only that was kept. */
export type WireEvidenceMessage =
  { type: 'prevote' | 'precommit'; network: string; height: number; round: number; validator: number; block: string | null; sig: string } | { block: string };

/** A stored evidence message on the wire: a signed vote with its bytes as hex, or the block hash alone. */
export function voteToWire(m: SignedVote | { block: string }): WireEvidenceMessage {
  if (!('sig' in m)) return { block: m.block };
  const { type, network, height, round, validator } = m;
  return { type, network, height, round, validator, block: m.block ? toHex(m.block) : null, sig: toHex(m.sig) };
}

/** The signed vote of a wire evidence message (null for a bare block hash or malformed hex); its signature is the caller's to check. */
export function voteFromWire(m: WireEvidenceMessage): SignedVote | null {
  if (!('sig' in m)) return null;
  try {
    const { type, network, height, round, validator } = m;
    return { type, network, height, round, validator, block: m.block === null ? null : fromHex(m.block), sig: fromHex(m.sig) };
  } catch {
    return null;
  }
}

/** GET /v1/evidence: two conflicting messages of one validator, as this node's consensus engine saw them. */
export interface EvidenceRecord {
  kind: 'vote' | 'proposal';
  validator: number;
  hospital: string;
  height: number;
  round: number;
  first: WireEvidenceMessage;
  second: WireEvidenceMessage;
  seenAt: number;
}

// ---- payload listing (issue 9): what a replica holds of each committed payload, for `verify --payloads` ----

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes of hex');
const height = z.number().int().nonnegative();

export const payloadListingEntrySchema = z
  .strictObject({
    tx: hex64,
    height,
    kind: z.enum(['blob', 'grant']),
    /** Bytes of it are on disk here (referenced by the store or not). */
    held: z.boolean(),
    /** The store references it (only referenced payloads are served to readers and peers). */
    referenced: z.boolean(),
    /** SHA-256 of the bytes on disk, when held; the bytes themselves never leave through this endpoint. */
    sha256: hex64.optional(),
    /** A record deletion redacted this grant payload (its hash no longer matches the transaction's). */
    redacted: z.boolean(),
    /** Marked missing: to be repaired from peers. */
    missing: z.boolean(),
    /** Record content not held because its record was deleted: the deletion, as this replica knows it. */
    deleted: z.strictObject({ tx: hex64, height }).optional(),
  })
  .refine((e) => e.held === (e.sha256 !== undefined), { message: 'sha256 is given exactly when the payload is held' });
export type PayloadListingEntry = z.infer<typeof payloadListingEntrySchema>;

/** GET /v1/payloads?from=&to=: `to` is how far this page got (a page ends early when it is full). */
export const payloadListingSchema = z.strictObject({
  head: height,
  from: height,
  to: z.number().int().min(-1),
  payloads: z.array(payloadListingEntrySchema).max(10_000),
});
export type PayloadListing = z.infer<typeof payloadListingSchema>;

// ---- private statistics (issue 13): jobs and batches, for auditors (signed view requests) ----

const statsMeasure = z.enum(['systolic', 'diastolic', 'heartRate', 'temperature']);
const statsInstance = z.enum(['histogram']);
const count = z.number().int().nonnegative();

/**
 * GET /v1/stats/jobs/:id — one aggregation job as the ledger holds it, plus what this node's aggregator still
 * waits for. `shares` are the hospitals' published aggregate shares (base64): the querier sums them into the
 * result (records/stats/prio3.ts computeStat). Nothing per report, no sealed share, ever.
 */
export const statsJobResponseSchema = z.strictObject({
  job: hex64,
  measure: statsMeasure,
  batch: z.string().max(40),
  instance: statsInstance,
  /** `withheld`: every hospital agrees, but fewer than 10 reports passed the proof, so no share was published. */
  status: z.enum(['pending', 'done', 'withheld', 'failed']),
  /** Reports in the (closed) batch when the job was created. */
  reports: count,
  /** When done or withheld: reports used and dropped (a failed validity proof, or a share a hospital could not open). */
  used: count.optional(),
  dropped: count.optional(),
  /** When failed: the hospitals whose counts or digest differ from the most common answer. */
  disagreeing: z.array(z.string()).max(100).optional(),
  /** Aggregate shares submitted so far, in genesis order (empty when withheld). */
  shares: z.array(z.strictObject({ hospital: z.string(), share: b64, used: count, dropped: count, digest: hex64 })).max(100),
  /** Hospitals that have not submitted their aggregate share (genesis order). */
  missing: z.array(z.string()).max(100),
  /** Hospitals this node's aggregator has not yet received preparation shares from (empty when it is not working on the job). */
  waitingFor: z.array(z.string()).max(100),
});
export type StatsJobResponse = z.infer<typeof statsJobResponseSchema>;

/** GET /v1/stats/batches?measure=… — the batches of a measure with their report counts and jobs, oldest first. */
export const MAX_STATS_BATCHES = 500;
export const statsBatchesResponseSchema = z.strictObject({
  measure: statsMeasure,
  batches: z
    .array(
      z.strictObject({
        batch: z.string().max(40),
        reports: count,
        jobs: z.strictObject({ histogram: hex64.optional() }),
      }),
    )
    .max(MAX_STATS_BATCHES),
});
export type StatsBatchesResponse = z.infer<typeof statsBatchesResponseSchema>;
