import type { Logger } from 'pino';
import type { SignedVote } from '../consensus/votes.js';
import type { EvidenceRef, LedgerStore } from './store/ledgerStore.js';

/**
 * Evidence kept on disk: at most one record per (kind, validator, height), and at most this many in all;
 * beyond it the oldest records are pruned, except each validator's first (which already proves it
 * equivocated). ~1 KB each, so at most ~10 MB.
 */
export const MAX_EVIDENCE_RECORDS = 10_000;

/** Equivocation evidence: two signed, conflicting messages of one validator (PROTOCOL.md §5.8). */
export interface Evidence {
  kind: 'vote' | 'proposal';
  validator: number;
  height: number;
  round: number;
  first: SignedVote | { block: string };
  second: SignedVote | { block: string };
  seenAt: number;
}

/** The store's evidence methods (store/consensusLog.ts). */
export type EvidenceStore = Pick<LedgerStore, 'evidenceRefs' | 'addEvidence'>;

/** The equivocation evidence the consensus engine saw, kept on disk and bounded (MAX_EVIDENCE_RECORDS). */
export class EvidencePool {
  /** (kind, validator) pairs already reported at the open height. */
  private readonly reported = new Set<string>();
  private refs: EvidenceRef[] | null = null;

  constructor(
    private readonly store: EvidenceStore,
    private readonly logger: Logger,
  ) {}

  /** Keeps the first proof of each validator's equivocation per height; bounded in all. */
  async record(e: Evidence): Promise<void> {
    const id = `${e.kind}-${e.validator}`;
    if (this.reported.has(id)) return;
    this.reported.add(id);
    this.logger.warn({ validator: e.validator, height: e.height, round: e.round, kind: e.kind }, 'equivocation evidence');
    const ref: EvidenceRef = { height: e.height, id };
    this.refs ??= await this.store.evidenceRefs();
    this.refs.push(ref);
    let prune: EvidenceRef[] = [];
    if (this.refs.length > MAX_EVIDENCE_RECORDS) {
      const firstOfValidator = new Map<string, EvidenceRef>();
      for (const k of this.refs) {
        const who = k.id.slice(k.id.lastIndexOf('-') + 1);
        if (!firstOfValidator.has(who)) firstOfValidator.set(who, k);
      }
      const keep = new Set(firstOfValidator.values());
      const excess = this.refs.length - MAX_EVIDENCE_RECORDS;
      prune = this.refs.filter((k) => !keep.has(k)).slice(0, excess);
      const gone = new Set(prune);
      this.refs = this.refs.filter((k) => !gone.has(k));
    }
    await this.store.addEvidence(ref, e, prune);
  }

  /** A new height: each validator's equivocation there is news again. */
  nextHeight(): void {
    this.reported.clear();
  }
}
