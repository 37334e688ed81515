import { z } from 'zod';
import { toHex } from '../records/crypto/bytes.js';
import { verifySignature, type SignatureVerifier, type Signer } from '../records/crypto/signature.js';
import { domainMessage } from '../records/crypto/signingDomain.js';
import { encodeCanonical } from '../records/encoding.js';
import { MedLedgerError } from '../records/errors.js';
import { bytes, uintSchema } from '../records/ids.js';
import type { Validator } from './genesis.js';
import { quorum } from './tendermint.js';

/**
 * Validator votes and commit certificates (PROTOCOL.md §5.7). A certificate is 2f+1 precommit signatures on one
 * block hash at one height and round: anyone holding the genesis file can check it offline. Votes are
 * signed under the genesis hash (records/crypto/signingDomain.ts) and checked under the hash of the
 * genesis that appointed the validator (`Validator.genesisHash`).
 */

export const signedVoteSchema = z.strictObject({
  type: z.enum(['prevote', 'precommit']),
  network: z.string(),
  height: uintSchema,
  round: uintSchema,
  validator: uintSchema,
  block: bytes(32).nullable(),
  sig: bytes(64),
});
export type SignedVote = z.infer<typeof signedVoteSchema>;
export type UnsignedVote = Omit<SignedVote, 'sig'>;

export function voteSigningMessage(vote: UnsignedVote, genesisHash: Uint8Array): Uint8Array {
  const { type, network, height, round, validator, block } = vote;
  return domainMessage('vote', genesisHash, encodeCanonical({ type, network, height, round, validator, block }));
}

export function signVote(vote: UnsignedVote, signer: Signer, genesisHash: Uint8Array): SignedVote {
  return { ...vote, sig: signer.sign(voteSigningMessage(vote, genesisHash)) };
}

/** A vote of a known validator, signed under the genesis that appointed it. */
export function verifyVote(vote: SignedVote, validators: Validator[]): boolean {
  const v = validators[vote.validator];
  return v !== undefined && verifySignature(v.key, voteSigningMessage(vote, v.genesisHash), vote.sig);
}

export const certificateSchema = z.strictObject({
  height: uintSchema,
  round: uintSchema,
  block: bytes(32),
  sigs: z.array(z.strictObject({ validator: uintSchema, sig: bytes(64) })).max(1000),
});
export type Certificate = z.infer<typeof certificateSchema>;

export function certificateFromVotes(votes: SignedVote[]): Certificate {
  const first = votes[0];
  if (!first || !first.block) throw new Error('a certificate needs precommits for a block');
  const sigs = [...votes].sort((a, b) => a.validator - b.validator).map((v) => ({ validator: v.validator, sig: v.sig }));
  return { height: first.height, round: first.round, block: first.block, sigs };
}

/**
 * Checks a certificate against the validator set: distinct known validators in ascending order, every
 * signature valid, at least a quorum. `expected` pins the height and block it must certify.
 */
export function verifyCertificate(
  cert: Certificate,
  validators: Validator[],
  network: string,
  expected?: { height: number; block: Uint8Array },
  verify: SignatureVerifier = verifySignature,
): void {
  const fail = (why: string): never => {
    throw new MedLedgerError('INVALID_CERTIFICATE', `certificate for height ${cert.height}: ${why}`);
  };
  if (expected && cert.height !== expected.height) fail(`certifies height ${cert.height}, expected ${expected.height}`);
  if (expected && toHex(cert.block) !== toHex(expected.block)) fail('certifies a different block');
  let previous = -1;
  for (const { validator, sig } of cert.sigs) {
    if (validator <= previous) fail(validator === previous ? `duplicate signature of validator ${validator}` : 'signatures out of order');
    if (validator >= validators.length) fail(`unknown validator ${validator}`);
    previous = validator;
    const vote: UnsignedVote = { type: 'precommit', network, height: cert.height, round: cert.round, validator, block: cert.block };
    const v = validators[validator]!;
    if (!verify(v.key, voteSigningMessage(vote, v.genesisHash), sig)) fail(`forged signature of validator ${validator}`);
  }
  const needed = quorum(validators.length);
  if (cert.sigs.length < needed) fail(`${cert.sigs.length} signatures, quorum is ${needed}`);
}
