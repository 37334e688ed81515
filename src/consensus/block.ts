import { z } from 'zod';
import { toHex } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { verifySignature, type SignatureVerifier, type Signer } from '../records/crypto/signature.js';
import { domainMessage } from '../records/crypto/signingDomain.js';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { MedLedgerError } from '../records/errors.js';
import { bytes, uintSchema } from '../records/ids.js';
import type { Genesis, Validator } from './genesis.js';
import { merkleRoot } from './merkle.js';
import { certificateSchema, type Certificate } from './votes.js';

/**
 * Block structure (PROTOCOL.md §5.2). The header commits to the transactions (RFC 6962 root over the signed
 * transactions), to the audit events they produced, and to the parent's commit certificate.
 */
export const headerSchema = z.strictObject({
  v: z.literal(1),
  network: z.string(),
  height: uintSchema,
  round: uintSchema,
  time: uintSchema,
  parent: bytes(32),
  proposer: uintSchema,
  txRoot: bytes(32),
  eventsRoot: bytes(32),
  txCount: uintSchema,
  /** SHA-256 of the parent's commit certificate carried in this block (zeros at height 1). */
  lastCommit: bytes(32),
});
export type BlockHeader = z.infer<typeof headerSchema>;

export const blockSchema = z.strictObject({
  header: headerSchema,
  sig: bytes(64),
  txs: z.array(bytes()),
  lastCommit: certificateSchema.nullable(),
});
export type Block = z.infer<typeof blockSchema>;

export const ZERO_HASH = new Uint8Array(32);
export const EMPTY_ROOT = merkleRoot([]);

export function headerHash(header: BlockHeader): Uint8Array {
  return sha256(encodeCanonical(header));
}

/** The proposer signs the header hash under the genesis hash (records/crypto/signingDomain.ts). */
export function headerSigningMessage(hash: Uint8Array, genesisHash: Uint8Array): Uint8Array {
  return domainMessage('block', genesisHash, hash);
}

/** `hash`: the header's hash, when the caller carries it (computed here otherwise); likewise below. */
export function signHeader(header: BlockHeader, signer: Signer, genesisHash: Uint8Array, hash: Uint8Array = headerHash(header)): Uint8Array {
  return signer.sign(headerSigningMessage(hash, genesisHash));
}

/** The header signature of `proposer`, checked under the genesis that appointed it. */
export function verifyHeaderSignature(
  header: BlockHeader,
  sig: Uint8Array,
  proposer: Pick<Validator, 'key' | 'genesisHash'>,
  opts: { hash?: Uint8Array; verify?: SignatureVerifier } = {},
): boolean {
  return (opts.verify ?? verifySignature)(proposer.key, headerSigningMessage(opts.hash ?? headerHash(header), proposer.genesisHash), sig);
}

export function certificateHash(cert: Certificate | null): Uint8Array {
  return cert ? sha256(encodeCanonical(cert)) : ZERO_HASH;
}

/** Block 0 is not signed: every node derives it from the genesis file, and its parent is the file's hash. */
export function genesisBlock(genesis: Genesis): Block {
  return {
    header: {
      v: 1,
      network: genesis.file.network,
      height: 0,
      round: 0,
      time: genesis.file.time,
      parent: genesis.hash,
      proposer: 0,
      txRoot: EMPTY_ROOT,
      eventsRoot: EMPTY_ROOT,
      txCount: 0,
      lastCommit: ZERO_HASH,
    },
    sig: new Uint8Array(64),
    txs: [],
    lastCommit: null,
  };
}

export function encodeBlock(block: Block): Uint8Array {
  return encodeCanonical(block);
}

export function decodeBlock(bytes: Uint8Array, maxBytes: number): Block {
  if (bytes.length > maxBytes) throw new MedLedgerError('TOO_LARGE', `block is ${bytes.length} bytes (limit ${maxBytes})`);
  const parsed = blockSchema.safeParse(decodeCanonical(bytes, 'block'));
  if (!parsed.success) throw new MedLedgerError('MALFORMED', `malformed block: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function blockHashHex(block: Block): string {
  return toHex(headerHash(block.header));
}
