import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildBlock, type ExecutedBlock } from '../../src/consensus/blockExecution.js';
import { signProposal, type Proposal } from '../../src/consensus/proposal.js';
import { signVote, type SignedVote } from '../../src/consensus/votes.js';
import { ChainWriter } from '../../src/node/chainWriter.js';
import { ConsensusEngine } from '../../src/node/consensusEngine.js';
import { Ledger } from '../../src/node/ledger.js';
import { Mempool } from '../../src/node/mempool.js';
import { LedgerStore } from '../../src/node/store/ledgerStore.js';
import type { Tx } from '../../src/records/tx/types.js';
import { ChainBuilder } from './chainBuilder.js';

/**
 * One validator's real consensus engine on a real LevelDB ledger, in process, with the other validators
 * played by the test: it signs their votes and proposals with their real keys (ChainBuilder's genesis)
 * and feeds them in as gossip would after signature checks. What the engine publishes is captured.
 */
export class EngineRig {
  readonly published: { proposals: Proposal[]; votes: SignedVote[] } = { proposals: [], votes: [] };
  readonly behindCalls: number[] = [];
  engine!: ConsensusEngine;
  ledger!: Ledger;
  store!: LedgerStore;
  readonly mempool = new Mempool({ maxTxs: 10_000, maxBytes: 64 * 1024 * 1024 });

  private constructor(
    readonly chain: ChainBuilder,
    readonly dir: string,
    readonly self: number,
  ) {}

  /** Validator `self` of a 4-validator network; timeouts long enough that only the test moves rounds. */
  static async create(self = 0): Promise<EngineRig> {
    const chain = ChainBuilder.create({
      startTime: Date.now() - 60_000,
      consensus: { periodMs: 10, emptyBlockIntervalMs: 60_000, timeoutProposeMs: 60_000, timeoutVoteMs: 60_000, timeoutDeltaMs: 1_000 },
    });
    const rig = new EngineRig(chain, mkdtempSync(join(tmpdir(), 'medledger-engine-')), self);
    await rig.open();
    return rig;
  }

  /** Opens the store and starts a fresh engine on it (again after `crash`). */
  async open(): Promise<void> {
    this.store = await LedgerStore.open(join(this.dir, 'ledger'));
    this.ledger = await Ledger.open(this.store, this.chain.genesis);
    this.engine = new ConsensusEngine({
      ledger: this.ledger,
      chain: new ChainWriter(this.ledger),
      mempool: this.mempool,
      self: { index: this.self, signer: this.chain.validators[this.self]!.signer },
      publishProposal: (p) => this.published.proposals.push(p),
      publishVotes: (votes) => this.published.votes.push(...votes),
      behind: (height) => this.behindCalls.push(height),
      dropped: () => undefined,
      logger: pino({ level: 'silent' }),
    });
    await this.engine.start();
  }

  /** Stops the engine and closes the store as a crash would leave them (no commit in flight). */
  async crash(): Promise<void> {
    await this.engine.stop();
    await this.store.close();
  }

  async destroy(): Promise<void> {
    await this.engine.stop().catch(() => undefined);
    await this.store.close().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A block for the next height built and signed by `proposer` from these transactions (none dropped). */
  block(proposer: number, txs: Tx[], round = 0): ExecutedBlock {
    const { executed, dropped } = buildBlock({
      genesis: this.chain.genesis,
      parent: this.ledger.headRef,
      lastCommit: null,
      state: this.ledger.state,
      candidates: txs,
      round,
      time: Date.now(),
      signer: this.chain.validators[proposer]!.signer,
    });
    if (dropped.length > 0) throw new Error(`dropped: ${dropped[0]!.error.message}`);
    return executed;
  }

  proposal(proposer: number, executed: ExecutedBlock, payloads: (Uint8Array | null)[], round = 0, validRound = -1): Proposal {
    const p = { height: executed.block.header.height, round, validRound, block: executed.block, payloads };
    return signProposal(this.chain.genesis.file.network, p, this.chain.validators[proposer]!.signer, this.chain.genesis.hash);
  }

  vote(validator: number, type: 'prevote' | 'precommit', block: Uint8Array | null, round = 0, height = this.ledger.height + 1): SignedVote {
    return signVote(
      { type, network: this.chain.genesis.file.network, height, round, validator, block },
      this.chain.validators[validator]!.signer,
      this.chain.genesis.hash,
    );
  }

  /** Waits until everything fed so far has gone through the engine's queue. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await (this.engine as unknown as { queue: Promise<void> }).queue;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async until(cond: () => boolean, ms = 5_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not reached in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
