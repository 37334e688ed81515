import { z } from 'zod';
import type { AuditEvent } from '../records/audit.js';
import { fromBase64, fromHex, toBase64, toHex } from '../records/crypto/bytes.js';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { agentRoles } from '../records/ids.js';
import { decodeTx } from '../records/tx/codec.js';
import { txTypes, type TxType } from '../records/tx/types.js';
import { headerHash, headerSchema, verifyHeaderSignature, type Block, type BlockHeader } from './block.js';
import type { Genesis } from './genesis.js';
import { inclusionPath, leafHash, verifyInclusion } from './merkle.js';
import { proposerIndex } from './tendermint.js';
import { certificateSchema, verifyCertificate, type Certificate } from './votes.js';

/**
 * Inclusion proofs (issue #5): one transaction and its audit event, each with its RFC 6962 audit path up
 * to the roots in a block header, the proposer's signature on that header and the commit certificate of
 * the validators. Anyone holding the genesis file can check one offline: a patient can show a third party
 * that an access to their data was recorded, final, on the ledger all hospitals share.
 *
 * The proof carries the exact signed bytes (base64) and, for people, a readable `claim`; the verifier
 * derives the claim from the bytes and rejects a proof whose claim says anything else.
 */
export const PROOF_FORMAT = 'medledger/inclusion-proof/v1';

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes of hex');
const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

export const proofClaimSchema = z.strictObject({
  tx: hex32,
  type: z.enum(txTypes as [TxType, ...TxType[]]),
  action: z.enum(['C', 'R', 'U', 'D', 'E']),
  outcome: z.enum(['success', 'denied']),
  reason: z.string().optional(),
  /** When the user signed the action (ISO 8601). */
  recorded: z.string(),
  actor: z.string(),
  role: z.enum(agentRoles),
  hospital: z.string(),
  patient: z.string().optional(),
  record: z.string().optional(),
  subject: z.string().optional(),
  /** The hospital whose node received the transaction. */
  source: z.string(),
  height: z.number().int().min(1),
  index: z.number().int().min(0),
  block: hex32,
  blockTime: z.string(),
  /** Hospitals whose validators signed the commit certificate. */
  certifiedBy: z.array(z.string()),
});
export type ProofClaim = z.infer<typeof proofClaimSchema>;

export const inclusionProofSchema = z.strictObject({
  format: z.literal(PROOF_FORMAT),
  network: z.string(),
  /** SHA-256 of the genesis file: which network's history this is. */
  genesis: hex32,
  claim: proofClaimSchema,
  height: z.number().int().min(1),
  index: z.number().int().min(0),
  /** Canonical bytes of the signed transaction (the txRoot leaf). */
  tx: b64,
  txPath: z.array(hex32).max(64),
  /** Canonical bytes of the audit event (the eventsRoot leaf). */
  event: b64,
  eventPath: z.array(hex32).max(64),
  /** Canonical bytes of the block header. */
  header: b64,
  proposerSig: b64,
  /** Canonical bytes of the block's commit certificate. */
  certificate: b64,
});
export type InclusionProof = z.infer<typeof inclusionProofSchema>;

/** The shape of a stored audit event: strict, so a proof cannot smuggle in fields. */
export const auditEventSchema = z.strictObject({
  tx: hex32,
  height: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
  type: z.enum(txTypes as [TxType, ...TxType[]]),
  action: z.enum(['C', 'R', 'U', 'D', 'E']),
  recorded: z.number().int().nonnegative(),
  outcome: z.enum(['success', 'denied']),
  reason: z.string().optional(),
  agent: z.strictObject({ user: z.string(), role: z.enum(agentRoles), hospital: z.string() }),
  patient: z.string().optional(),
  record: z.string().optional(),
  subject: z.string().optional(),
  source: z.string(),
});

function claimOf(event: AuditEvent, header: BlockHeader, hash: Uint8Array, cert: Certificate, genesis: Genesis): ProofClaim {
  return {
    tx: event.tx,
    type: event.type,
    action: event.action,
    outcome: event.outcome,
    ...(event.reason !== undefined ? { reason: event.reason } : {}),
    recorded: new Date(event.recorded).toISOString(),
    actor: event.agent.user,
    role: event.agent.role,
    hospital: event.agent.hospital,
    ...(event.patient !== undefined ? { patient: event.patient } : {}),
    ...(event.record !== undefined ? { record: event.record } : {}),
    ...(event.subject !== undefined ? { subject: event.subject } : {}),
    source: event.source,
    height: header.height,
    index: event.index,
    block: toHex(hash),
    blockTime: new Date(header.time).toISOString(),
    certifiedBy: cert.sigs.map((s) => genesis.validators[s.validator]?.hospital ?? `validator ${s.validator}`),
  };
}

/**
 * Builds the proof of transaction `index` of a finalized block from what a node stores: the block, the
 * canonical bytes of its audit events (in order) and the block's own commit certificate.
 */
export function buildProof(args: { genesis: Genesis; block: Block; index: number; eventBytes: Uint8Array[]; cert: Certificate }): InclusionProof {
  const { genesis, block, index, eventBytes, cert } = args;
  const { header } = block;
  if (index < 0 || index >= block.txs.length) throw new RangeError(`block ${header.height} has no transaction ${index}`);
  if (eventBytes.length !== block.txs.length) throw new Error(`block ${header.height}: ${eventBytes.length} events for ${block.txs.length} transactions`);
  const hash = headerHash(header);
  const event = auditEventSchema.parse(decodeCanonical(eventBytes[index]!, 'audit event')) as AuditEvent;
  return {
    format: PROOF_FORMAT,
    network: genesis.file.network,
    genesis: toHex(genesis.hash),
    claim: claimOf(event, header, hash, cert, genesis),
    height: header.height,
    index,
    tx: toBase64(block.txs[index]!),
    txPath: inclusionPath(block.txs.map(leafHash), index).map(toHex),
    event: toBase64(eventBytes[index]!),
    eventPath: inclusionPath(eventBytes.map(leafHash), index).map(toHex),
    header: toBase64(encodeCanonical(header)),
    proposerSig: toBase64(block.sig),
    certificate: toBase64(encodeCanonical(cert)),
  };
}

export type ProofVerdict = { ok: true; claim: ProofClaim; checks: string[] } | { ok: false; reason: string; checks: string[] };

class ProofFailure extends Error {}
const fail = (reason: string): never => {
  throw new ProofFailure(reason);
};

function decodeWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  let value: unknown;
  try {
    value = decodeCanonical(bytes, what);
  } catch (err) {
    return fail(`${what}: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) return fail(`${what} is malformed: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** Field by field, so a failure says which part of the readable claim disagrees with the signed bytes. */
function firstDifference(a: Record<string, unknown>, b: Record<string, unknown>): string | null {
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return key;
  }
  return null;
}

/**
 * Checks a proof offline against the genesis file. Every step that passes is listed in `checks`; the first
 * that fails is the `reason`. Nothing here talks to a node.
 */
export function verifyProof(input: unknown, genesis: Genesis): ProofVerdict {
  const checks: string[] = [];
  try {
    const parsed = inclusionProofSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      fail(`not a MedLedger inclusion proof: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
    }
    const proof = parsed.data!;
    const bytesOf = (field: 'tx' | 'event' | 'header' | 'proposerSig' | 'certificate') => fromBase64(proof[field]);
    if (proof.network !== genesis.file.network) fail(`proof is for network ${proof.network}, the genesis file is ${genesis.file.network}`);
    if (proof.genesis !== toHex(genesis.hash)) fail('proof names another genesis file than the one given');
    checks.push(`network ${genesis.file.network}, genesis ${proof.genesis.slice(0, 16)}…`);

    // 1. The header is final: a quorum of the genesis validators signed a precommit for its hash.
    const header = decodeWith(headerSchema, bytesOf('header'), 'block header');
    if (header.network !== genesis.file.network) fail(`block header is for network ${header.network}`);
    if (header.height !== proof.height) fail(`block header is at height ${header.height}, the proof says ${proof.height}`);
    const hash = headerHash(header);
    const cert = decodeWith(certificateSchema, bytesOf('certificate'), 'commit certificate');
    try {
      verifyCertificate(cert, genesis.validators, genesis.file.network, { height: header.height, block: hash });
    } catch (err) {
      fail(`commit certificate does not make this block final: ${(err as Error).message}`);
    }
    checks.push(`block ${header.height} (${toHex(hash).slice(0, 16)}…) is final: ${cert.sigs.length} of ${genesis.validators.length} validator signatures`);
    const proposer = proposerIndex(genesis.validators.length, header.height, header.round);
    if (header.proposer !== proposer) fail(`block names proposer ${header.proposer}, the proposer of round ${header.round} is ${proposer}`);
    if (!verifyHeaderSignature(header, bytesOf('proposerSig'), genesis.validators[proposer]!)) fail('proposer signature on the block header does not verify');
    checks.push(`header signed by its proposer ${genesis.validators[proposer]!.hospital}`);

    // 2. The transaction: signed by its user, and a leaf of the block's transaction root.
    if (proof.index >= header.txCount) fail(`index ${proof.index} is outside a block of ${header.txCount} transactions`);
    const txBytes = bytesOf('tx');
    let tx;
    try {
      tx = decodeTx(txBytes, { genesisHash: genesis.hash });
    } catch (err) {
      return fail(`transaction: ${(err as Error).message}`);
    }
    checks.push(`transaction ${tx.idHex.slice(0, 16)}… carries a valid signature of ${tx.tx.actor}`);
    if (!verifyInclusion(leafHash(txBytes), proof.index, header.txCount, proof.txPath.map(fromHex), header.txRoot)) {
      fail("transaction is not in the block: its audit path does not lead to the header's transaction root");
    }
    checks.push(`transaction is leaf ${proof.index} of ${header.txCount} under the transaction root`);

    // 3. The audit event: a leaf of the events root, and the event of this very transaction.
    const eventBytes = bytesOf('event');
    const event = decodeWith(auditEventSchema, eventBytes, 'audit event') as AuditEvent;
    if (!verifyInclusion(leafHash(eventBytes), proof.index, header.txCount, proof.eventPath.map(fromHex), header.eventsRoot)) {
      fail("audit event is not in the block: its audit path does not lead to the header's events root");
    }
    checks.push(`audit event is leaf ${proof.index} under the events root`);
    const t = tx.tx;
    const mismatch =
      event.tx !== tx.idHex
        ? 'transaction id'
        : event.height !== header.height
          ? 'height'
          : event.index !== proof.index
            ? 'index'
            : event.type !== t.type
              ? 'type'
              : event.agent.user !== t.actor
                ? 'actor'
                : event.recorded !== t.time
                  ? 'time'
                  : event.source !== t.via
                    ? 'source hospital'
                    : event.record !== t.record
                      ? 'record'
                      : t.patient !== undefined && event.patient !== t.patient
                        ? 'patient'
                        : null;
    if (mismatch) fail(`audit event does not belong to the transaction (${mismatch} differs)`);
    checks.push('audit event matches the transaction');

    // 4. The readable claim says exactly what the signed bytes say.
    const claim = claimOf(event, header, hash, cert, genesis);
    const differs = firstDifference(claim as Record<string, unknown>, proof.claim as Record<string, unknown>);
    if (differs) fail(`the readable claim differs from the signed data in "${differs}"`);
    checks.push('readable claim matches the signed data');
    return { ok: true, claim, checks };
  } catch (err) {
    if (err instanceof ProofFailure) return { ok: false, reason: err.message, checks };
    throw err;
  }
}
