import type { Logger } from 'pino';
import { fromHex, toHex } from '../records/crypto/bytes.js';
import type { Signer } from '../records/crypto/signature.js';
import { isMedLedgerError, type MedLedgerError } from '../records/errors.js';
import { headerHash } from '../consensus/block.js';
import { buildBlock, type ExecutedBlock } from '../consensus/blockExecution.js';
import { checkProposal, signProposal, type Proposal } from '../consensus/proposal.js';
import * as tm from '../consensus/tendermint.js';
import { MAX_ROUNDS_AHEAD, VoteBook } from '../consensus/voteBook.js';
import { certificateFromVotes, signVote, verifyCertificate, type Certificate, type SignedVote } from '../consensus/votes.js';
import type { Ledger } from './ledger.js';
import type { Mempool, PendingTx } from './mempool.js';
import { checkBlockPayloads } from './payloads.js';
import { StoreDamage, type EvidenceRef, type SavedRoundState } from './store/ledgerStore.js';

/**
 * Evidence kept on disk: at most one record per (kind, validator, height), and at most this many in all;
 * beyond it the oldest records are pruned, except each validator's first (which already proves it
 * equivocated). ~1 KB each, so at most ~10 MB.
 */
export const MAX_EVIDENCE_RECORDS = 10_000;

/** Equivocation evidence: two signed, conflicting messages of one validator (SPEC §5). */
export interface Evidence {
  kind: 'vote' | 'proposal';
  validator: number;
  height: number;
  round: number;
  first: SignedVote | { block: string };
  second: SignedVote | { block: string };
  seenAt: number;
}

export interface EngineDeps {
  ledger: Ledger;
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
}

interface KnownBlock {
  proposal: Proposal;
  executed: ExecutedBlock | null;
  error?: string;
  persisted?: boolean;
}

/**
 * The imperative shell around the pure Tendermint state machine: it signs and gossips what the machine
 * decides, arms its timers, validates proposed blocks against the ledger, persists the round state
 * before every vote (so a restart never double-signs), and commits decided blocks with their certificate.
 * Every input goes through one queue, so the machine sees one input at a time.
 */
export class ConsensusEngine {
  private rs: tm.RoundState;
  private readonly ctx: tm.Context;
  private readonly known = new Map<string, KnownBlock>();
  /** First proposal hash seen for each round of this height: a second one is evidence, never executed. */
  private readonly proposalOfRound = new Map<number, string>();
  private book: VoteBook;
  /** (kind, validator) pairs already reported for equivocation at this height. */
  private readonly reported = new Set<string>();
  private evidenceKeys: EvidenceRef[] | null = null;
  /** Set when a decided block cannot be committed (e.g. the disk failed): consensus stops, loudly. */
  private haltedBy: { height: number; reason: string; since: number } | null = null;
  private readonly ownProposals = new Map<number, Proposal>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly futureMessages: { height: number; run: () => void }[] = [];
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
    const saved = await this.restore(() => this.deps.ledger.store.loadRoundState(), 'stored consensus state is damaged: starting the height afresh');
    if (saved && saved.rs.height === this.deps.ledger.height + 1) {
      this.rs = saved.rs;
      this.book = new VoteBook(this.rs.height);
      for (const v of saved.votes) this.book.add(v, Number.MAX_SAFE_INTEGER - MAX_ROUNDS_AHEAD);
      const proposals = await this.restore(() => this.deps.ledger.store.loadProposals(), 'stored proposals are damaged: none restored');
      for (const proposal of proposals ?? []) {
        if (proposal.height === this.rs.height) await this.learnBlock(proposal);
      }
      this.deps.logger.info({ height: this.rs.height, round: this.rs.round, step: this.rs.step }, 'consensus state restored');
      if (this.rs.started) this.armStepTimeout();
      else this.scheduleStart();
    } else {
      this.scheduleStart();
    }
  }

  /** What the write-ahead log holds, or undefined (logged) when the disk damaged it. */
  private async restore<T>(read: () => Promise<T | undefined>, damaged: string): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if (!(err instanceof StoreDamage)) throw err;
      this.deps.logger.error({ err }, damaged);
      return undefined;
    }
  }

  /** Stops timers and waits for the step in progress, so nothing touches the store after it closes. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.queue;
  }

  /** Serialises all work on the machine; errors are logged, never thrown into gossip or timers. */
  private enqueue(work: () => Promise<void> | void): Promise<void> {
    this.queue = this.queue.then(async () => {
      if (this.stopped) return;
      try {
        await work();
      } catch (err) {
        this.deps.logger.error({ err }, 'consensus step failed');
      }
    });
    return this.queue;
  }

  private later(ms: number, fn: () => void): void {
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

  /** A proposal whose signature was checked by gossip validation. */
  onProposal(p: Proposal, peer?: string): void {
    this.deps.logger.trace({ height: p.height, round: p.round }, 'proposal received');
    void this.enqueue(async () => {
      if (p.height < this.rs.height) return;
      if (p.height > this.rs.height) return this.future(p.height, peer, () => this.onProposal(p, peer));
      const known = await this.learnBlock(p);
      if (!known) return;
      const hash = toHex(sha256Header(p));
      await this.feed({ kind: 'proposal', height: p.height, round: p.round, value: hash, validRound: p.validRound, valid: known.executed !== null });
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
        await this.recordEvidence({ kind: 'vote', validator: v.validator, height: v.height, round: v.round, first: added.conflictsWith, second: v, seenAt: Date.now() });
      }
      // Conflicting votes still go to the machine: it counts each validator at most once per value, which
      // keeps honest nodes that saw the two votes in different orders able to reach the same polka.
      await this.feed({ kind: 'vote', vote: { type: v.type, height: v.height, round: v.round, validator: v.validator, value: v.block ? toHex(v.block) : null } });
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

  /**
   * Runs sync work inside the engine's queue, so sync never races a consensus commit. `commit` stores a
   * block whose certificate the caller verified, and moves the engine to the next height.
   */
  withLedger<T>(
    fn: (commit: (executed: ExecutedBlock, cert: Certificate, payloads: ReadonlyMap<string, Uint8Array>, redacted: ReadonlySet<string>) => Promise<void>) => Promise<T> | T,
  ): Promise<T> {
    let result!: T;
    const commit = async (executed: ExecutedBlock, cert: Certificate, payloads: ReadonlyMap<string, Uint8Array>, redacted: ReadonlySet<string>) => {
      await this.deps.ledger.commit(executed, cert, payloads, redacted);
      await this.enterNextHeight(executed);
    };
    let failure: unknown = null;
    return this.enqueue(async () => {
      try {
        result = await fn(commit);
      } catch (err) {
        failure = err;
      }
    }).then(() => {
      if (failure) throw failure;
      return result;
    });
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
    let ms = tm.timeoutMs(step, round, { timeoutPropose: this.params.timeoutProposeMs, timeoutVote: this.params.timeoutVoteMs, timeoutDelta: this.params.timeoutDeltaMs });
    // The proposer holds back an empty block; with nothing to order, others wait for it just as long.
    if (step === 'propose' && round === 0 && this.deps.mempool.size === 0) ms += this.params.emptyBlockIntervalMs;
    this.later(ms, () =>
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
    const proposal = this.ownProposals.get(this.rs.round);
    if (proposal) this.deps.publishProposal(proposal);
  }

  private async proposeNew(height: number, round: number): Promise<void> {
    if (!this.deps.self || this.rs.height !== height || this.rs.round !== round || this.rs.step !== 'propose') return;
    const { ledger, mempool } = this.deps;
    const idleFor = Date.now() - this.lastCommitAt;
    if (mempool.size === 0 && round === 0 && idleFor < this.params.emptyBlockIntervalMs) {
      this.waitingToPropose = { height, round };
      this.later(this.params.emptyBlockIntervalMs - idleFor, () => this.onMempoolTx());
      return;
    }
    this.waitingToPropose = null;
    const started = performance.now();
    const pending = mempool.candidates(this.params.maxBlockTxs * 2);
    const payloadOf = new Map(pending.map((p) => [p.tx.idHex, p.payload]));
    const { executed, dropped } = buildBlock({
      genesis: ledger.genesis,
      parent: ledger.headRef,
      lastCommit: await ledger.headCertificate(),
      state: ledger.state,
      candidates: pending.map((p) => p.tx),
      sizeOf: (tx) => tx.bytes.length + (payloadOf.get(tx.idHex)?.length ?? 0),
      round,
      time: Date.now(),
      signer: this.deps.self.signer,
    });
    for (const { tx, error } of dropped) {
      const entry = mempool.remove(tx.idHex);
      if (entry) this.deps.dropped(entry, error);
    }
    const proposal = signProposal(
      this.network,
      { height, round, validRound: -1, block: executed.block, payloads: executed.txs.map((t) => payloadOf.get(t.idHex) ?? null) },
      this.deps.self.signer,
      this.deps.ledger.genesis.hash,
    );
    this.known.set(executed.hashHex, { proposal, executed, persisted: true });
    this.proposalOfRound.set(round, executed.hashHex);
    await this.persistBlock(executed.hashHex, proposal);
    this.ownProposals.set(round, proposal);
    this.deps.publishProposal(proposal);
    this.deps.logger.debug({ height, round, txs: executed.txs.length, ms: Math.round(performance.now() - started) }, 'proposed block');
    await this.feed({ kind: 'proposal', height, round, value: executed.hashHex, validRound: -1, valid: true });
  }

  private async repropose(height: number, round: number, value: string, validRound: number): Promise<void> {
    const known = this.known.get(value);
    if (!this.deps.self || !known) return;
    const { block, payloads } = known.proposal;
    const proposal = signProposal(this.network, { height, round, validRound, block, payloads }, this.deps.self.signer, this.deps.ledger.genesis.hash);
    this.ownProposals.set(round, proposal);
    this.deps.publishProposal(proposal);
    await this.feed({ kind: 'proposal', height, round, value, validRound, valid: known.executed !== null });
  }

  private async castVote(vote: tm.Vote): Promise<void> {
    if (!this.deps.self) return;
    const signed = signVote(
      { type: vote.type, network: this.network, height: vote.height, round: vote.round, validator: vote.validator, block: vote.value ? fromHex(vote.value) : null },
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
    const known = this.known.get(value);
    if (!known?.executed) throw new Error(`decided block ${value.slice(0, 12)} at height ${height} is not known as valid`);
    // A certificate is built only from signatures in hand and stored only with a quorum of valid ones:
    // after a crash the machine may count votes whose signatures were never persisted.
    let cert: Certificate;
    try {
      cert = certificateFromVotes(this.book.precommitsFor(round, value));
      verifyCertificate(cert, this.deps.ledger.genesis.validators, this.network, { height, block: fromHex(value) });
    } catch (err) {
      this.deps.logger.warn({ height, round, reason: (err as Error).message }, 'decided, but without a full certificate in hand: fetching the block from peers');
      this.deps.behind(height);
      return;
    }
    const payloads = new Map<string, Uint8Array>();
    known.executed.txs.forEach((tx, i) => {
      const p = known.proposal.payloads[i];
      if (p) payloads.set(tx.idHex, p);
    });
    const started = performance.now();
    try {
      await this.deps.ledger.commit(known.executed, cert, payloads);
    } catch (err) {
      return this.halt(height, `commit of the decided block failed: ${(err as Error).message}`);
    }
    this.deps.logger.debug({ height, round, txs: known.executed.txs.length, ms: Math.round(performance.now() - started) }, 'committed block');
    this.stats.heights++;
    this.stats.extraRounds += round;
    if (round > 0) this.stats.heightsWithExtraRounds++;
    await this.enterNextHeight(known.executed);
  }

  private async enterNextHeight(executed: ExecutedBlock): Promise<void> {
    for (const tx of executed.txs) this.deps.mempool.remove(tx.idHex);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.known.clear();
    this.proposalOfRound.clear();
    this.reported.clear();
    this.ownProposals.clear();
    this.waitingToPropose = null;
    this.catchUpArmed = false;
    this.lastCommitAt = Date.now();
    this.rs = tm.initialState(this.deps.ledger.height + 1);
    this.book = new VoteBook(this.rs.height);
    await this.deps.ledger.store.clearRoundState();
    // A deleted record's ciphertext also sat in the proposals kept while undecided (and its wrapped keys in
    // LevelDB): compacting those ranges now drops the old values from the table files and the log.
    const deleted = executed.txs.flatMap((tx, i) => (tx.tx.type === 'deleteRecord' && executed.events[i]?.outcome === 'success' && tx.tx.record ? [tx.tx.record] : []));
    if (deleted.length > 0) await this.deps.ledger.store.compactPurged(deleted);
    const replay = this.futureMessages.splice(0).filter((m) => m.height === this.rs.height);
    for (const m of replay) m.run();
    this.scheduleStart();
  }

  // ---- blocks and persistence --------------------------------------------------------------

  /**
   * Executes a proposed block for the next height once per hash and remembers the verdict. Synchronous,
   * so gossip validation can reject an invalid block before it is forwarded.
   */
  assess(p: Proposal): 'valid' | 'invalid' | 'ignore' {
    if (p.height !== this.rs.height || p.round > this.rs.round + MAX_ROUNDS_AHEAD) return 'ignore';
    const hash = toHex(sha256Header(p));
    // One proposal per round is executed (a re-proposal of a known block costs nothing); a second, different
    // one for the same round is evidence against its proposer and costs us only its signature check.
    const first = this.proposalOfRound.get(p.round);
    if (first !== undefined && first !== hash) {
      void this.enqueue(() => this.noteConflictingProposal(p));
      return 'ignore';
    }
    this.proposalOfRound.set(p.round, hash);
    let known = this.known.get(hash);
    if (!known) {
      try {
        const started = performance.now();
        const executed = this.deps.ledger.validateNext(p.block, Date.now());
        // Everything the commit path needs is checked here, by the code admission uses: a block we vote
        // for can always be committed.
        checkBlockPayloads(executed.txs, p.payloads);
        known = { proposal: p, executed };
        this.deps.logger.debug({ height: p.height, round: p.round, txs: executed.txs.length, ms: Math.round(performance.now() - started) }, 'validated proposal');
      } catch (err) {
        if (!isMedLedgerError(err)) {
          // Our own bug, not the proposer's fault: do not vote on it, do not penalise the peer.
          this.deps.logger.error({ height: p.height, round: p.round, err }, 'proposal could not be checked');
          this.proposalOfRound.delete(p.round);
          return 'ignore';
        }
        known = { proposal: p, executed: null, error: err.message };
        this.deps.logger.warn({ height: p.height, round: p.round, reason: err.message }, 'invalid proposal');
      }
      this.known.set(hash, known);
    }
    return known.executed ? 'valid' : 'invalid';
  }

  /** Executes (once) and persists a proposed block; null when it is not one this node takes up. */
  private async learnBlock(p: Proposal): Promise<KnownBlock | null> {
    if (this.assess(p) === 'ignore') return null;
    const hash = toHex(sha256Header(p));
    const known = this.known.get(hash)!;
    // Kept on disk while undecided: a restarted validator locked on this block can still re-propose it.
    if (known.executed && !known.persisted) {
      await this.persistBlock(hash, p);
      known.persisted = true;
    }
    return known;
  }

  private async persist(): Promise<void> {
    // Every signed vote of the height goes with the round state: after a restart the machine's tally and
    // the signatures in hand agree, so a certificate can be built from them.
    await this.deps.ledger.store.saveRoundState({ rs: this.rs, votes: this.book.all() } satisfies SavedRoundState);
  }

  private async persistBlock(hashHex: string, p: Proposal): Promise<void> {
    await this.deps.ledger.store.saveProposal(hashHex, p);
  }

  /** Keeps the first proof of each validator's equivocation per height; bounded in all (MAX_EVIDENCE_RECORDS). */
  private async recordEvidence(e: Evidence): Promise<void> {
    const id = `${e.kind}-${e.validator}`;
    if (this.reported.has(id)) return;
    this.reported.add(id);
    this.deps.logger.warn({ validator: e.validator, height: e.height, round: e.round, kind: e.kind }, 'equivocation evidence');
    const ref: EvidenceRef = { height: e.height, id };
    this.evidenceKeys ??= await this.deps.ledger.store.evidenceRefs();
    this.evidenceKeys.push(ref);
    let prune: EvidenceRef[] = [];
    if (this.evidenceKeys.length > MAX_EVIDENCE_RECORDS) {
      const firstOfValidator = new Map<string, EvidenceRef>();
      for (const k of this.evidenceKeys) {
        const who = k.id.slice(k.id.lastIndexOf('-') + 1);
        if (!firstOfValidator.has(who)) firstOfValidator.set(who, k);
      }
      const keep = new Set(firstOfValidator.values());
      const excess = this.evidenceKeys.length - MAX_EVIDENCE_RECORDS;
      prune = this.evidenceKeys.filter((k) => !keep.has(k)).slice(0, excess);
      const gone = new Set(prune);
      this.evidenceKeys = this.evidenceKeys.filter((k) => !gone.has(k));
    }
    await this.deps.ledger.store.addEvidence(ref, e, prune);
  }

  /** Stops consensus for good and says why: a node that cannot store what it decided must not go on. */
  private halt(height: number, reason: string): void {
    this.haltedBy = { height, reason, since: Date.now() };
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.deps.logger.fatal({ height, reason }, 'consensus halted');
  }

  /** A second, different proposal from one proposer for one round is evidence too. */
  async noteConflictingProposal(p: Proposal): Promise<void> {
    const a = this.proposalOfRound.get(p.round);
    if (p.height !== this.rs.height || a === undefined) return;
    const b = toHex(sha256Header(p));
    if (a === b) return;
    await this.recordEvidence({ kind: 'proposal', validator: this.ctx.proposer(p.height, p.round), height: p.height, round: p.round, first: { block: a }, second: { block: b }, seenAt: Date.now() });
  }

  checkProposal(p: Proposal): string | null {
    return checkProposal(p, this.deps.ledger.genesis.validators, this.network);
  }
}

function sha256Header(p: Proposal): Uint8Array {
  return headerHash(p.block.header);
}
