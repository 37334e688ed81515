import type { UnsignedTx } from '../records/tx/types.js';
import type { FinalizedBlock } from './finalizedBlock.js';
import type { Ledger } from './ledger.js';
import type { NodeMetrics } from './metrics.js';

/** Runs after every commit, still under the lock: the consensus engine moves to the next height here. */
export type CommitFollower = (finalized: FinalizedBlock) => Promise<void> | void;

/** Work refused because the writer was halted (a decided block could not be stored) or closed (the node stops). */
export class ChainWriterClosed extends Error {
  constructor(readonly reason: string) {
    super(`the chain writer takes no more work: ${reason}`);
  }
}

/**
 * The one writer of the finalized chain, shared by the consensus engine (blocks it decided) and sync (blocks
 * downloaded with their certificates). It holds the one lock under which the chain moves: every consensus
 * step, every synced block's validation and commit, and every payload repair runs alone, so a block is always
 * validated against the head it is committed on and the engine never works on a height that moved under it.
 *
 * `commit` applies a FinalizedBlock once, on one path: the store's atomic batch, the ledger's state and head,
 * the 'committed' event, then the followers (the engine enters the next height and clears its write-ahead
 * log), then the compaction of what a deletion purged.
 */
export class ChainWriter {
  private queue: Promise<void> = Promise.resolve();
  private readonly followers: CommitFollower[] = [];
  private closedBy: string | null = null;
  /** True while work runs under the lock. */
  private locked = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly metrics?: NodeMetrics,
  ) {}

  /** Registered at construction by whoever must move along with the chain (the engine). */
  onCommitted(follower: CommitFollower): void {
    this.followers.push(follower);
  }

  /**
   * Runs `work` alone under the chain lock, after all work queued before it. Work that comes up after the
   * writer halted or closed is refused with ChainWriterClosed (work already running finishes).
   */
  exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.closedBy !== null) throw new ChainWriterClosed(this.closedBy);
      this.locked = true;
      try {
        return await work();
      } finally {
        this.locked = false;
      }
    });
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Commits a finalized block on top of the head. Call it from inside `exclusive` (the engine's steps and
   * sync's work run there), with a block validated against the current head and a certificate checked
   * against the validators. Throws if the store refused the block; the ledger then has not moved.
   */
  async commit(finalized: FinalizedBlock): Promise<void> {
    if (!this.locked) throw new Error('ChainWriter.commit called outside the chain lock');
    const stored = this.metrics?.commitSeconds.startTimer();
    await this.ledger.commit(finalized);
    stored?.();
    this.metrics?.committed(finalized.executed);
    for (const follow of this.followers) await follow(finalized);
    // A deleted record's ciphertext also sat in the proposals kept while undecided (cleared by the engine
    // just now) and its wrapped keys in LevelDB: compacting those ranges drops the old values from the
    // table files and the log.
    const { executed } = finalized;
    const deleted = executed.txs.flatMap((tx, i) =>
      tx.tx.type === 'deleteRecord' && executed.events[i]?.outcome === 'success' && tx.tx.record ? [tx.tx.record] : [],
    );
    if (deleted.length > 0) await this.ledger.compactPurged(deleted);
  }

  /** Stores a missing payload under the lock, so it never races the commit of a deletion that purges it. */
  repairPayload(txIdHex: string, t: UnsignedTx, payload: Uint8Array, redacted: boolean): Promise<'stored' | 'dropped'> {
    return this.exclusive(() => this.ledger.repairPayload(txIdHex, t, payload, redacted));
  }

  /**
   * Refuses all work from now on: a decided block could not be stored, and nothing is committed after it
   * (callable from inside `exclusive`). The first reason is kept.
   */
  halt(reason: string): void {
    this.closedBy ??= reason;
  }

  /** The node stops: refuses all work from now on and waits for the work in progress. */
  async close(): Promise<void> {
    this.halt('the node stops');
    await this.queue;
  }
}
