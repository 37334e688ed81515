import type { Logger } from 'pino';
import type { Proposal } from '../consensus/proposal.js';
import type { RoundState } from '../consensus/tendermint.js';
import type { SignedVote } from '../consensus/votes.js';
import { StoreDamage, type LedgerStore, type SavedRoundState } from './store/ledgerStore.js';

/** The store's consensus-log methods (store/consensusLog.ts): all the write-ahead log needs. */
export type ConsensusLogStore = Pick<LedgerStore, 'loadRoundState' | 'saveRoundState' | 'saveProposal' | 'loadProposals' | 'clearRoundState'>;

/**
 * The consensus engine's write-ahead log: the round state of the open height with every signed vote in hand,
 * saved before any vote of ours leaves (so a restart never signs a different vote), and the proposals the
 * engine took up while undecided (so a validator locked on a block can still re-propose it after a restart).
 * Cleared when the height is decided. What the disk damaged is logged and left out, never trusted.
 */
export class WriteAheadLog {
  constructor(
    private readonly store: ConsensusLogStore,
    private readonly logger: Logger,
  ) {}

  /** What was saved for `height` (the one after the head), or null: nothing, another height, or damaged. */
  async restore(height: number): Promise<{ saved: SavedRoundState; proposals: Proposal[] } | null> {
    const saved = await this.read(() => this.store.loadRoundState(), 'stored consensus state is damaged: starting the height afresh');
    if (!saved || saved.rs.height !== height) return null;
    const proposals = await this.read(() => this.store.loadProposals(), 'stored proposals are damaged: none restored');
    return { saved, proposals: (proposals ?? []).filter((p) => p.height === height) };
  }

  /** Every signed vote of the height goes with the round state: after a restart the machine's tally and the signatures in hand agree. */
  saveRoundState(rs: RoundState, votes: SignedVote[]): Promise<void> {
    return this.store.saveRoundState({ rs, votes } satisfies SavedRoundState);
  }

  /** Keeps a proposal of the open height, by block hash, while it is undecided. */
  saveProposal(hashHex: string, p: Proposal): Promise<void> {
    return this.store.saveProposal(hashHex, p);
  }

  /** The height is decided: its round state and kept proposals go. */
  clear(): Promise<void> {
    return this.store.clearRoundState();
  }

  private async read<T>(read: () => Promise<T | undefined>, damaged: string): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if (!(err instanceof StoreDamage)) throw err;
      this.logger.error({ err }, damaged);
      return undefined;
    }
  }
}
