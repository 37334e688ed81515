import { buildProof, type InclusionProof } from '../consensus/proof.js';
import { toHex } from '../records/crypto/bytes.js';
import { MedLedgerError } from '../records/errors.js';
import type { EvidenceRecord, WireEvidenceMessage } from '../api/contract.js';
import type { Ledger } from './ledger.js';
import { K, seqKey } from './store/keys.js';

/**
 * What an auditor asks a node for beyond the chain itself: inclusion proofs of single transactions and
 * the equivocation evidence the node kept. Both are checked on the auditor's side (verify-proof, verify);
 * the node only assembles them from its store.
 */

/** The proof of one committed transaction, built from the stored block, its events and its certificate. */
export async function proofOf(ledger: Ledger, txIdHex: string): Promise<InclusionProof> {
  const { store } = ledger;
  const location = await store.txLocation(txIdHex);
  if (!location) throw new MedLedgerError('NOT_FOUND', `transaction ${txIdHex} is not committed on this node`);
  const [block, cert] = await Promise.all([store.getBlock(location.height), store.getCertificate(location.height)]);
  if (!block || !cert) throw new MedLedgerError('UNAVAILABLE', `block ${location.height} or its certificate is missing from this node's store`);
  // The stored event bytes are the eventsRoot leaves: read them as stored, never re-encoded.
  const eventBytes: Uint8Array[] = [];
  const range = { gte: K.event(seqKey(location.height, 0)), lt: K.event(seqKey(location.height + 1, 0)) };
  for await (const value of store.db.values(range)) eventBytes.push(value);
  if (eventBytes.length !== block.txs.length) throw new MedLedgerError('UNAVAILABLE', `block ${location.height}: ${eventBytes.length} stored events for ${block.txs.length} transactions`);
  return buildProof({ genesis: ledger.genesis, block, index: location.index, eventBytes, cert });
}

function wireMessage(m: unknown): WireEvidenceMessage {
  const v = m as Record<string, unknown>;
  if (v.sig instanceof Uint8Array) {
    return {
      type: v.type as 'prevote' | 'precommit',
      network: String(v.network),
      height: Number(v.height),
      round: Number(v.round),
      validator: Number(v.validator),
      block: v.block instanceof Uint8Array ? toHex(v.block) : null,
      sig: toHex(v.sig),
    };
  }
  return { block: typeof v.block === 'string' ? v.block : v.block instanceof Uint8Array ? toHex(v.block) : '' };
}

/** Equivocation evidence stored under `x/` by the consensus engine, oldest height first. */
export async function evidenceOf(ledger: Ledger): Promise<EvidenceRecord[]> {
  const out: EvidenceRecord[] = [];
  for (const [, value] of await ledger.store.listMeta(K.evidencePrefix)) {
    const e = value as Record<string, unknown>;
    const validator = Number(e.validator);
    out.push({
      kind: e.kind === 'proposal' ? 'proposal' : 'vote',
      validator,
      hospital: ledger.genesis.validators[validator]?.hospital ?? `validator ${validator}`,
      height: Number(e.height),
      round: Number(e.round),
      first: wireMessage(e.first),
      second: wireMessage(e.second),
      seenAt: Number(e.seenAt),
    });
  }
  return out;
}
