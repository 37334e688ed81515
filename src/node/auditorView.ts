import { buildProof, type InclusionProof } from '../consensus/proof.js';
import { MedLedgerError } from '../records/errors.js';
import { voteToWire, type EvidenceRecord } from '../api/contract.js';
import type { Ledger } from './ledger.js';

/**
 * What an auditor asks a node for beyond the chain itself: inclusion proofs of single transactions and
 * the equivocation evidence the node kept. Both are checked on the auditor's side (verify-proof, verify);
 * the node only assembles them from its store.
 */

/** The proof of one committed transaction, built from the stored block, its events and its certificate. */
export async function proofOf(ledger: Ledger, txIdHex: string): Promise<InclusionProof> {
  const location = await ledger.txLocation(txIdHex);
  if (!location) throw new MedLedgerError('NOT_FOUND', `transaction ${txIdHex} is not committed on this node`);
  const [block, cert] = await Promise.all([ledger.getBlock(location.height), ledger.getCertificate(location.height)]);
  if (!block || !cert) throw new MedLedgerError('UNAVAILABLE', `block ${location.height} or its certificate is missing from this node's store`);
  // The stored event bytes are the eventsRoot leaves: read them as stored, never re-encoded.
  const eventBytes = await ledger.blockEventBytes(location.height);
  if (eventBytes.length !== block.txs.length)
    throw new MedLedgerError('UNAVAILABLE', `block ${location.height}: ${eventBytes.length} stored events for ${block.txs.length} transactions`);
  return buildProof({ genesis: ledger.genesis, block, index: location.index, eventBytes, cert });
}

/** Equivocation evidence kept by the consensus engine, oldest height first. */
export async function evidenceOf(ledger: Ledger): Promise<EvidenceRecord[]> {
  return (await ledger.listEvidence()).map((e) => ({
    kind: e.kind,
    validator: e.validator,
    hospital: ledger.genesis.validators[e.validator]?.hospital ?? `validator ${e.validator}`,
    height: e.height,
    round: e.round,
    first: voteToWire(e.first),
    second: voteToWire(e.second),
    seenAt: e.seenAt,
  }));
}
