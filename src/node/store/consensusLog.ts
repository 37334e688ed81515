import { z } from 'zod';
import { proposalSchema, type Proposal } from '../../consensus/proposal.js';
import type { RoundState } from '../../consensus/tendermint.js';
import { signedVoteSchema } from '../../consensus/votes.js';
import { encodeCanonical } from '../../records/encoding.js';
import { uintSchema } from '../../records/ids.js';
import { K } from './keys.js';
import { decodeStored, under, type Level } from './values.js';

/** The write-ahead round state as read back from disk: checked before the engine trusts it. */
export const savedRoundStateSchema = z.object({
  rs: z.custom<RoundState>(
    (v) => typeof v === 'object' && v !== null && Number.isSafeInteger((v as RoundState).height) && typeof (v as RoundState).rounds === 'object',
  ),
  votes: z.array(signedVoteSchema).max(100_000),
});
export type SavedRoundState = z.infer<typeof savedRoundStateSchema>;

/** Equivocation evidence: two signed, conflicting messages of one validator (PROTOCOL.md §5.8). */
const evidenceMessageSchema = z.union([signedVoteSchema, z.strictObject({ block: z.string() })]);
export const evidenceSchema = z.strictObject({
  kind: z.enum(['vote', 'proposal']),
  validator: uintSchema,
  height: uintSchema,
  round: uintSchema,
  first: evidenceMessageSchema,
  second: evidenceMessageSchema,
  seenAt: z.number(),
});
export type StoredEvidence = z.infer<typeof evidenceSchema>;

/** Names one stored evidence record: its height and the engine's id for it (unique per height). */
export interface EvidenceRef {
  height: number;
  id: string;
}

const keyOf = (ref: EvidenceRef) => K.evidence(ref.height, ref.id);

/**
 * What the consensus engine keeps on disk beside the chain: the write-ahead round state of the open height
 * with the proposals it took up (so a restarted validator neither contradicts its votes nor loses a block
 * it is locked on), and the equivocation evidence it saw.
 */
export class ConsensusLog {
  constructor(private readonly db: Level) {}

  /** The saved round state; a value that fails its check is thrown as StoreDamage. */
  async loadRoundState(): Promise<SavedRoundState | undefined> {
    const v = await this.db.get(K.consensus);
    return v ? decodeStored(savedRoundStateSchema, v, 'consensus round state') : undefined;
  }

  async saveRoundState(saved: SavedRoundState): Promise<void> {
    await this.db.put(K.consensus, encodeCanonical(saved));
  }

  /** Keeps a proposal of the open height, by block hash, while it is undecided. */
  async saveProposal(hashHex: string, p: Proposal): Promise<void> {
    await this.db.put(K.consensusBlock(hashHex), encodeCanonical(p));
  }

  /** The kept proposals; one that fails its check is thrown as StoreDamage. */
  async loadProposals(): Promise<Proposal[]> {
    const out: Proposal[] = [];
    for await (const [key, value] of this.db.iterator(under(K.consensusBlockPrefix)))
      out.push(decodeStored(proposalSchema, value, `kept proposal ${key.slice(K.consensusBlockPrefix.length)}`));
    return out;
  }

  /** The height is decided: its round state and kept proposals go, in one batch. */
  async clearRoundState(): Promise<void> {
    const proposals: string[] = [];
    for await (const key of this.db.keys(under(K.consensusBlockPrefix))) proposals.push(key);
    await this.db.batch([K.consensus, ...proposals].map((key) => ({ type: 'del' as const, key })));
  }

  /** Every stored evidence record, by height then id. */
  async evidenceRefs(): Promise<EvidenceRef[]> {
    const out: EvidenceRef[] = [];
    for await (const key of this.db.keys(under(K.evidencePrefix))) {
      const rest = key.slice(K.evidencePrefix.length);
      const slash = rest.indexOf('/');
      out.push({ height: Number(rest.slice(0, slash)), id: rest.slice(slash + 1) });
    }
    return out;
  }

  /** Stores one evidence record and deletes `prune` (older records over the bound), in one batch. */
  async addEvidence(ref: EvidenceRef, evidence: StoredEvidence, prune: readonly EvidenceRef[] = []): Promise<void> {
    await this.db.batch([
      { type: 'put' as const, key: keyOf(ref), value: encodeCanonical(evidence) },
      ...prune.map((r) => ({ type: 'del' as const, key: keyOf(r) })),
    ]);
  }

  /** The stored evidence, oldest height first; a record that fails its check is thrown as StoreDamage. */
  async listEvidence(): Promise<StoredEvidence[]> {
    const out: StoredEvidence[] = [];
    for await (const [key, value] of this.db.iterator(under(K.evidencePrefix)))
      out.push(decodeStored(evidenceSchema, value, `evidence record ${key.slice(K.evidencePrefix.length)}`));
    return out;
  }
}
