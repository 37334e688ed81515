import { z } from 'zod';
import { verifySignature, type Signer } from '../records/crypto/signature.js';
import { domainMessage } from '../records/crypto/signingDomain.js';
import { encodeCanonical } from '../records/encoding.js';
import { bytes, uintSchema } from '../records/ids.js';
import { blockSchema, headerHash, type Block } from './block.js';
import type { Validator } from './genesis.js';
import { proposerIndex } from './tendermint.js';

/**
 * A proposal: a block offered in one round by that round's proposer, who signs (height, round,
 * validRound, block hash). A block first built in an earlier round keeps its original header and
 * signature; the proposal signature is what binds it to the current round. Signed under the genesis hash,
 * checked under the hash of the genesis that appointed the proposer (`Validator.genesisHash`).
 */

export const proposalSchema = z.strictObject({
  height: uintSchema,
  round: uintSchema,
  validRound: z.number().int().min(-1),
  block: blockSchema,
  /** The off-chain payloads of the block's transactions, aligned with block.txs (null: none). */
  payloads: z.array(bytes().nullable()),
  sig: bytes(64),
});
export type Proposal = z.infer<typeof proposalSchema>;

/** `blockHash`: the block's header hash, when the caller carries it (computed here otherwise). */
export function proposalSigningMessage(
  network: string,
  genesisHash: Uint8Array,
  p: { height: number; round: number; validRound: number; block: Block },
  blockHash: Uint8Array = headerHash(p.block.header),
): Uint8Array {
  return domainMessage('proposal', genesisHash, encodeCanonical({ network, height: p.height, round: p.round, validRound: p.validRound, block: blockHash }));
}

export function signProposal(network: string, p: Omit<Proposal, 'sig'>, signer: Signer, genesisHash: Uint8Array, blockHash?: Uint8Array): Proposal {
  return { ...p, sig: signer.sign(proposalSigningMessage(network, genesisHash, p, blockHash)) };
}

/**
 * Checks that the proposal is signed by the proposer of its round and is about the block it carries.
 * `blockHash`: the block's header hash, when the caller carries it.
 */
export function checkProposal(p: Proposal, validators: Validator[], network: string, blockHash?: Uint8Array): string | null {
  if (p.block.header.height !== p.height) return 'proposal height differs from its block';
  if (p.validRound >= p.round) return 'validRound must precede the round';
  if (p.payloads.length !== p.block.txs.length) return 'payloads do not align with transactions';
  const proposer = validators[proposerIndex(validators.length, p.height, p.round)]!;
  if (!verifySignature(proposer.key, proposalSigningMessage(network, proposer.genesisHash, p, blockHash), p.sig))
    return 'not signed by the proposer of its round';
  return null;
}
