import type { Logger } from 'pino';
import { fromHex, toHex } from '../records/crypto/bytes.js';
import type { Signer } from '../records/crypto/signature.js';
import type { MedLedgerError } from '../records/errors.js';
import { headerHash } from '../consensus/block.js';
import { checkProposal, type Proposal } from '../consensus/proposal.js';
import * as tm from '../consensus/tendermint.js';
import { MAX_ROUNDS_AHEAD, VoteBook } from '../consensus/voteBook.js';
import { certificateFromVotes, signVote, verifyCertificate, type Certificate, type SignedVote } from '../consensus/votes.js';
import type { ChainWriter } from './chainWriter.js';
import { EvidencePool } from './evidencePool.js';
import type { FinalizedBlock } from './finalizedBlock.js';
import type { Ledger } from './ledger.js';
import type { Mempool, PendingTx } from './mempool.js';
import type { NodeMetrics } from './metrics.js';
import { ProposalCache, type KnownBlock } from './proposalCache.js';
import { WriteAheadLog } from './writeAheadLog.js';

export { MAX_EVIDENCE_RECORDS, type Evidence } from './evidencePool.js';

export interface EngineDeps {
  ledger: Ledger;
  /** Commits what the engine decides; its lock runs the engine's steps (shared with sync). */
  chain: ChainWriter;
  mempool: Mempool;
  /** This node's validator index and key; null runs the node as an observer. */
  self: { index: number; signer: Signer } | null;
  publishProposal(p: Proposal): void;
  publishVotes(votes: SignedVote[]): void;
  /** Called when peers are seen at a height above ours: the sync manager fetches what we lack. */
  behind(height: number, peer?: string): void;
  /** A transaction left the mempool without being committed (invalid at block building). */
  dropped(entry: PendingTx, error: MedLedgerError): void;
  logger: Logger;
  /** Round changes and block validation times are counted here (absent in tests that do not read them). */
  metrics?: NodeMetrics;
}

/**
 * The imperative shell around the pure Tendermint state machine: it signs and gossips what the machine
 * decides, arms its timers, takes up proposed blocks (proposalCache.ts), saves the round state before every
 * vote (writeAheadLog.ts, so a restart never double-signs), keeps equivocation evidence (evidencePool.ts),
 * and hands each decided block with its certificate to the chain writer. Every input runs as one step under
 * the chain writer's lock, so the machine sees one input at a time and the head never moves during a step;
 * after every commit, the engine's own or sync's, the writer moves the engine to the next height.
 */
export class ConsensusEngine {
  private rs: tm.RoundState;
  private readonly ctx: tm.Context;
  private book: VoteBook;
  private readonly proposals: ProposalCache;
  private readonly wal: WriteAheadLog;
  private readonly evidence: EvidencePool;
  /** Set when a decided block cannot be committed (e.g. the disk failed): consensus stops, loudly. */
  private haltedBy: { height: number; reason: string; since: number } | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly futureMessages: { height: number; run: () => void }[] = [];
  /** The step queued last (steps run in order under the chain writer's lock). */
  private queue: Promise<void> = Promise.resolve();
  private lastCommitAt = Date.now();
  private waitingToPropose: { height: number; round: number } | null = null;
  private catchUpArmed = false;
  private stopped = false;

  constructor(private readonly deps: EngineDeps) {
    const n = deps.ledger.genesis.validators.length;
    this.ctx = { n, self: deps.self?.index ?? null, proposer: (h, r) => tm.proposerIndex(n, h, r) };
    this.rs = tm.initialState(deps.ledger.height + 1);
    this.book = new VoteBook(this.rs.height);
    this.proposals = new ProposalCache(deps);
    // The engine's own part of the store: the consensus log and the evidence beside the chain.
    this.wal = new WriteAheadLog(deps.ledger.store, deps.logger);
    this.evidence = new EvidencePool(deps.ledger.store, deps.logger);
    deps.chain.onCommitted((finalized) => this.enterNextHeight(finalized));
  }

  /** Heights this engine decided, and the rounds beyond round 0 they took (an overload or fault shows here). */
  readonly stats = { heights: 0, extraRounds: 0, heightsWithExtraRounds: 0 };

  /** Why consensus stopped, if it did (shown in the node's status). */
  get halted(): { height: number; reason: string; since: number } | null {
    return this.haltedBy;
  }

  get height(): number {
    return this.rs.height;
  }

  get round(): number {
    return this.rs.round;
  }

  private get params() {
    return this.deps.ledger.genesis.params;
  }

  private get network(): string {
    return this.deps.ledger.genesis.file.network;
  }

  /** Restores the persisted round state of the next height (after a crash) or starts it fresh. */
  async start(): Promise<void> {
    const restored = await this.wal.restore(this.deps.ledger.height + 1);
    if (!restored) return this.scheduleStart();
    this.rs = restored.saved.rs;
    this.book = new VoteBook(this.rs.height);
    for (const v of restored.saved.votes) this.book.add(v, Number.MAX_SAFE_INTEGER - MAX_ROUNDS_AHEAD);
    for (const proposal of restored.proposals) await this.learnBlock(proposal, headerHash(proposal.block.header));
    this.deps.logger.info({ height: this.rs.height, round: this.rs.round, step: this.rs.step }, 'consensus state restored');
    if (this.rs.started) this.armStepTimeout();
    else this.scheduleStart();
  }

  /** Stops timers and waits for the step in progress, so nothing touches the store after it closes. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.queue;
  }

  /** Queues a step under the chain writer's lock; errors are logged, never thrown into gossip or timers. */
  private enqueue(work: () => Promise<void> | void): Promise<void> {
    this.queue = this.deps.chain
      .exclusive(async () => {
        if (this.stopped) return;
        try {
          await work();
        } catch (err) {
          this.deps.logger.error({ err }, 'consensus step failed');
        }
      })
      .catch(() => undefined); // refused: the writer halted or closed, so this engine is stopped too
    return this.queue;
  }

  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private scheduleStart(): void {
    const height = this.rs.height;
    const wait = Math.max(0, this.lastCommitAt + this.params.periodMs - Date.now());
    this.later(wait, () => void this.enqueue(() => this.feed({ kind: 'startHeight', height })));
  }

  // ---- inputs from the network -------------------------------------------------------------

  /** A proposal whose signature was checked by gossip validation; `hash`: its block's header hash, carried. */
  onProposal(p: Proposal, peer?: string, hash: Uint8Array = headerHash(p.block.header)): void {
    this.deps.logger.trace({ height: p.height, round: p.round }, 'proposal received');
    void this.enqueue(async () => {
      if (p.height < this.rs.height) return;
      if (p.height > this.rs.height) return this.future(p.height, peer, () => this.onProposal(p, peer, hash));
      const known = await this.learnBlock(p, hash);
      if (!known) return;
      await this.feed({ kind: 'proposal', height: p.height, round: p.round, value: known.hashHex, validRound: p.validRound, valid: known.executed !== null });
    });
  }

  /** A vote whose signature was checked by gossip validation. */
  onVote(v: SignedVote, peer?: string): void {
    this.deps.logger.trace({ height: v.height, round: v.round, type: v.type, validator: v.validator }, 'vote received');
    void this.enqueue(async () => {
      if (v.height < this.rs.height) return;
      if (v.height > this.rs.height) return this.future(v.height, peer, () => this.onVote(v, peer));
      const added = this.book.add(v, this.rs.round);
      if (added.kind !== 'added') return;
      if (added.conflictsWith) {
        await this.evidence.record({
          kind: 'vote',
          validator: v.validator,
          height: v.height,
          round: v.round,
          first: added.conflictsWith,
          second: v,
          seenAt: Date.now(),
        });
      }
      // Conflicting votes still go to the machine: it counts each validator at most once per value, which
      // keeps honest nodes that saw the two votes in different orders able to reach the same polka.
      await this.feed({
        kind: 'vote',
        vote: { type: v.type, height: v.height, round: v.round, validator: v.validator, value: v.block ? toHex(v.block) : null },
      });
    });
  }

  /**
   * Whether a gossiped vote could still change anything here, judged before its signature is checked:
   * 'useful' (new, for this or the next height), 'known' (a duplicate, or an old height), or 'excess' (beyond
   * the round window or a full slot: only a byzantine validator sends these in numbers).
   */
  judgeVote(v: Pick<SignedVote, 'height' | 'round' | 'type' | 'validator' | 'block'>): 'useful' | 'known' | 'excess' {
    if (v.height < this.rs.height) return 'known';
    if (v.height > this.rs.height) return 'useful'; // future heights are kept in a bounded buffer or hint at a sync
    const verdict = this.book.wouldAdd(v, this.rs.round);
    return verdict === 'new' ? 'useful' : verdict === 'duplicate' ? 'known' : 'excess';
  }

  /** Re-gossips our own messages of this height (a peer reconnected, or a round timed out). */
  resendOwn(): void {
    void this.enqueue(() => this.resendOwnNow());
  }

  /** Messages from a height above ours: keep a few to replay, and ask the sync manager to catch up. */
  private future(height: number, peer: string | undefined, replay: () => void): void {
    if (height > this.rs.height + 1) {
      this.deps.behind(height - 1, peer);
      return;
    }
    // One height ahead is normal for a node that is a moment slower than the others: keep the message for
    // the next height, and sync only if our own decision has not come by the time a proposal would time out.
    if (this.futureMessages.length < 200) this.futureMessages.push({ height, run: replay });
    if (!this.catchUpArmed) {
      this.catchUpArmed = true;
      const stuckAt = this.rs.height;
      this.later(this.params.timeoutProposeMs, () => {
        this.catchUpArmed = false;
        if (this.rs.height === stuckAt) this.deps.behind(stuckAt, peer);
      });
    }
  }

  /** The mempool gained a transaction: a proposer waiting on an empty mempool can propose now. */
  onMempoolTx(): void {
    const waiting = this.waitingToPropose;
    if (!waiting) return;
    this.waitingToPropose = null;
    void this.enqueue(() => this.proposeNew(waiting.height, waiting.round));
  }

  // ---- the machine -------------------------------------------------------------------------

  private async feed(input: tm.Input): Promise<void> {
    const { state, outputs } = tm.step(this.rs, input, this.ctx);
    const votesOut = outputs.some((o) => o.kind === 'vote');
    if (state.height === this.rs.height && state.round > this.rs.round) this.deps.metrics?.roundChanges.inc(state.round - this.rs.round);
    this.rs = state;
    // Persist before signing: after a crash we restore what we voted and cannot sign a different vote.
    if (votesOut) await this.persist();
    for (const out of outputs) await this.carryOut(out);
  }

  private async carryOut(out: tm.Output): Promise<void> {
    switch (out.kind) {
      case 'propose':
        if (out.value === null) await this.proposeNew(out.height, out.round);
        else await this.repropose(out.height, out.round, out.value, out.validRound);
        return;
      case 'vote':
        return this.castVote(out.vote);
      case 'scheduleTimeout':
        return this.armTimeout(out.step, out.height, out.round);
      case 'decide':
        return this.decide(out.height, out.round, out.value);
      case 'equivocation':
        return; // onVote already kept the signed pair as evidence before the machine saw the second vote
      case 'roundSkip':
        this.deps.logger.info({ height: out.height, round: out.round }, 'round skipped ahead');
        return;
    }
  }

  private armTimeout(step: tm.TimeoutStep, height: number, round: number): void {
    let ms = tm.timeoutMs(step, round, {
      timeoutPropose: this.params.timeoutProposeMs,
      timeoutVote: this.params.timeoutVoteMs,
      timeoutDelta: this.params.timeoutDeltaMs,
    });
    // The proposer holds back an empty block; with nothing to order, others wait for it just as long.
    if (step === 'propose' && round === 0 && this.deps.mempool.size === 0) ms += this.params.emptyBlockIntervalMs;
    this.later(
      ms,
      () =>
        void this.enqueue(async () => {
          if (this.rs.height === height && this.rs.round === round) this.resendOwnNow();
          await this.feed({ kind: 'timeout', step, height, round });
        }),
    );
  }

  /** After a restart, re-arm the timer of the step we were in. */
  private armStepTimeout(): void {
    const step = this.rs.step === 'decided' ? 'precommit' : this.rs.step;
    this.armTimeout(step, this.rs.height, this.rs.round);
  }

  private resendOwnNow(): void {
    // The latest rounds are what a lagging peer needs; a votes message carries at most 64.
    const own = this.ctx.self === null ? [] : this.book.votesOf(this.ctx.self).filter((v) => v.round >= this.rs.round - 1);
    if (own.length > 0) this.deps.publishVotes(own.slice(-32));
    const proposal = this.proposals.own(this.rs.round);
    if (proposal) this.deps.publishProposal(proposal);
  }

  private async proposeNew(height: number, round: number): Promise<void> {
    if (!this.deps.self || this.rs.height !== height || this.rs.round !== round || this.rs.step !== 'propose') return;
    const idleFor = Date.now() - this.lastCommitAt;
    if (this.deps.mempool.size === 0 && round === 0 && idleFor < this.params.emptyBlockIntervalMs) {
      this.waitingToPropose = { height, round };
      this.later(this.params.emptyBlockIntervalMs - idleFor, () => this.onMempoolTx());
      return;
    }
    this.waitingToPropose = null;
    const started = performance.now();
    const { known, dropped } = await this.proposals.build(round, this.deps.self.signer);
    for (const { entry, error } of dropped) this.deps.dropped(entry, error);
    await this.wal.saveProposal(known.hashHex, known.proposal);
    known.persisted = true;
    this.deps.publishProposal(known.proposal);
    this.deps.logger.debug({ height, round, txs: known.executed!.txs.length, ms: Math.round(performance.now() - started) }, 'proposed block');
    await this.feed({ kind: 'proposal', height, round, value: known.hashHex, validRound: -1, valid: true });
  }

  private async repropose(height: number, round: number, value: string, validRound: number): Promise<void> {
    const known = this.proposals.get(value);
    if (!this.deps.self || !known) return;
    this.deps.publishProposal(this.proposals.repropose(known, round, validRound, this.deps.self.signer));
    await this.feed({ kind: 'proposal', height, round, value, validRound, valid: known.executed !== null });
  }

  private async castVote(vote: tm.Vote): Promise<void> {
    if (!this.deps.self) return;
    const signed = signVote(
      {
        type: vote.type,
        network: this.network,
        height: vote.height,
        round: vote.round,
        validator: vote.validator,
        block: vote.value ? fromHex(vote.value) : null,
      },
      this.deps.self.signer,
      this.deps.ledger.genesis.hash,
    );
    this.book.add(signed, this.rs.round);
    await this.persist();
    this.deps.publishVotes([signed]);
    this.deps.logger.debug({ height: vote.height, round: vote.round, type: vote.type, nil: vote.value === null }, 'voted');
    await this.feed({ kind: 'vote', vote });
  }

  private async decide(height: number, round: number, value: string): Promise<void> {
    const known = this.proposals.get(value);
    if (!known?.executed) throw new Error(`decided block ${value.slice(0, 12)} at height ${height} is not known as valid`);
    // A certificate is built only from signatures in hand and stored only with a quorum of valid ones:
    // after a crash the machine may count votes whose signatures were never persisted.
    let cert: Certificate;
    try {
      cert = certificateFromVotes(this.book.precommitsFor(round, value));
      verifyCertificate(cert, this.deps.ledger.genesis.validators, this.network, { height, block: known.hash });
    } catch (err) {
      this.deps.logger.warn(
        { height, round, reason: (err as Error).message },
        'decided, but without a full certificate in hand: fetching the block from peers',
      );
      this.deps.behind(height);
      return;
    }
    const started = performance.now();
    try {
      await this.deps.chain.commit({ executed: known.executed, cert, payloads: known.payloads });
    } catch (err) {
      // Stored, and what failed came after (moving on to the next height): not a failed commit.
      if (this.deps.ledger.height >= height) throw err;
      return this.halt(height, `commit of the decided block failed: ${(err as Error).message}`);
    }
    this.deps.logger.debug({ height, round, txs: known.executed.txs.length, ms: Math.round(performance.now() - started) }, 'committed block');
    this.stats.heights++;
    this.stats.extraRounds += round;
    if (round > 0) this.stats.heightsWithExtraRounds++;
  }

  /** After every commit (ours or sync's), under the chain writer's lock: the next height starts afresh. */
  private async enterNextHeight({ executed }: FinalizedBlock): Promise<void> {
    for (const tx of executed.txs) this.deps.mempool.remove(tx.idHex);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.proposals.clear();
    this.evidence.nextHeight();
    this.waitingToPropose = null;
    this.catchUpArmed = false;
    this.lastCommitAt = Date.now();
    this.rs = tm.initialState(this.deps.ledger.height + 1);
    this.book = new VoteBook(this.rs.height);
    await this.wal.clear();
    const replay = this.futureMessages.splice(0).filter((m) => m.height === this.rs.height);
    for (const m of replay) m.run();
    this.scheduleStart();
  }

  // ---- proposed blocks ---------------------------------------------------------------------

  /**
   * Executes a proposed block for the next height once per hash and remembers the verdict. Synchronous,
   * so gossip validation can reject an invalid block before it is forwarded. `hash`: the header hash, carried
   * from gossip validation.
   */
  assess(p: Proposal, hash: Uint8Array = headerHash(p.block.header)): 'valid' | 'invalid' | 'ignore' {
    const known = this.takeUp(p, hash);
    return known === null ? 'ignore' : known.executed ? 'valid' : 'invalid';
  }

  private takeUp(p: Proposal, hash: Uint8Array): KnownBlock | null {
    if (p.height !== this.rs.height || p.round > this.rs.round + MAX_ROUNDS_AHEAD) return null;
    const known = this.proposals.take(p, hash);
    if (known !== 'conflict') return known;
    // A second, different proposal from one proposer for one round is evidence too (it costs us only its signature check).
    void this.enqueue(() => this.noteConflictingProposal(p, hash));
    return null;
  }

  /** Executes (once) and persists a proposed block; null when it is not one this node takes up. */
  private async learnBlock(p: Proposal, hash: Uint8Array): Promise<KnownBlock | null> {
    const known = this.takeUp(p, hash);
    // Kept on disk while undecided: a restarted validator locked on this block can still re-propose it.
    if (known?.executed && !known.persisted) {
      await this.wal.saveProposal(known.hashHex, p);
      known.persisted = true;
    }
    return known;
  }

  private async noteConflictingProposal(p: Proposal, hash: Uint8Array): Promise<void> {
    const a = this.proposals.firstOf(p.round);
    const b = toHex(hash);
    if (p.height !== this.rs.height || a === undefined || a === b) return;
    await this.evidence.record({
      kind: 'proposal',
      validator: this.ctx.proposer(p.height, p.round),
      height: p.height,
      round: p.round,
      first: { block: a },
      second: { block: b },
      seenAt: Date.now(),
    });
  }

  /** Every signed vote of the height goes with the round state, so a certificate can be built after a restart. */
  private async persist(): Promise<void> {
    await this.wal.saveRoundState(this.rs, this.book.all());
  }

  /** Stops consensus for good and says why: a node that cannot store what it decided must not go on. */
  private halt(height: number, reason: string): void {
    this.haltedBy = { height, reason, since: Date.now() };
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // Nothing is committed after a block that could not be stored: sync stops committing too.
    this.deps.chain.halt(reason);
    this.deps.logger.fatal({ height, reason }, 'consensus halted');
  }

  /** `hash`: the block's header hash, carried from gossip validation. */
  checkProposal(p: Proposal, hash?: Uint8Array): string | null {
    return checkProposal(p, this.deps.ledger.genesis.validators, this.network, hash);
  }
}
