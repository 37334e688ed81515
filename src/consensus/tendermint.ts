/**
 * Pure core of the Tendermint BFT consensus algorithm (Buchman, Kwon, Milosevic 2018, "The latest gossip on
 * BFT consensus", Algorithm 1), one height at a time. No timers, I/O or crypto: the caller feeds inputs
 * (start of a height, proposals, signature-checked votes, fired timeouts) and carries out the outputs
 * (propose a block, persist + sign + gossip a vote, arm a timer, commit a block, keep evidence).
 * "line N" in comments refers to the line numbers of Algorithm 1 in the paper.
 *
 * The state is plain JSON-able data so the node can persist it (CBOR) before signing a vote and restore
 * it after a crash; since our own votes are recorded in it, a restored node never signs a second,
 * different vote for the same height, round and type.
 */

export type Step = 'propose' | 'prevote' | 'precommit' | 'decided';
export type VoteType = 'prevote' | 'precommit';
export type TimeoutStep = 'propose' | 'prevote' | 'precommit';

/** value = block hash hex, null = nil. */
export interface Vote {
  type: VoteType;
  height: number;
  round: number;
  validator: number;
  value: string | null;
}

/** The first proposal received for a round; `valid` is the caller's verdict after executing the block. */
export interface ProposalRecord {
  value: string;
  validRound: number;
  valid: boolean;
}

/** Validator index (decimal string key) → value(s). */
export type VoteTally<T> = { prevote: Record<string, T>; precommit: Record<string, T> };

/** Everything received for one round of the current height. */
export interface RoundRecord {
  proposal: ProposalRecord | null;
  /** The first vote of each validator. */
  votes: VoteTally<string | null>;
  /**
   * An equivocating validator's further votes, for values that can matter (see recordVote). As in the
   * paper, such a validator counts towards each value it voted for, never twice towards one: safe, since
   * quorums overlap in an honest validator, and needed for liveness, since honest nodes may have counted
   * different ones of its votes first and must still see the same polkas.
   */
  conflicting: VoteTally<(string | null)[]>;
  /** Validators already reported for equivocation in this round, per vote type. */
  equivocators: { prevote: number[]; precommit: number[] };
  /** Once-only upon-rules of Algorithm 1 that already fired in this round. */
  prevoteTimeoutScheduled: boolean; // line 34
  polkaHandled: boolean; // line 36
  precommitTimeoutScheduled: boolean; // line 47
}

export interface RoundState {
  height: number;
  round: number;
  step: Step;
  lockedRound: number;
  lockedValue: string | null;
  validRound: number;
  validValue: string | null;
  /** False until startHeight: messages for this height are recorded, but no rule fires yet. */
  started: boolean;
  decision: { round: number; value: string } | null;
  /** Round number (decimal string key) → what was received in that round. Only the current height. */
  rounds: Record<string, RoundRecord>;
}

export interface Context {
  /** Number of validators. */
  n: number;
  /** Our validator index, null for a non-validator observer. */
  self: number | null;
  proposer(height: number, round: number): number;
}

export type Input =
  | { kind: 'startHeight'; height: number }
  | { kind: 'proposal'; height: number; round: number; value: string; validRound: number; valid: boolean }
  | { kind: 'vote'; vote: Vote }
  | { kind: 'timeout'; step: TimeoutStep; height: number; round: number };

export type Output =
  | { kind: 'propose'; height: number; round: number; value: string | null; validRound: number }
  | { kind: 'vote'; vote: Vote }
  | { kind: 'scheduleTimeout'; step: TimeoutStep; height: number; round: number }
  | { kind: 'decide'; height: number; round: number; value: string; commit: Vote[] }
  | { kind: 'equivocation'; first: Vote; second: Vote }
  | { kind: 'roundSkip'; height: number; round: number };

/**
 * How many rounds above ours a validator's messages are kept for. A byzantine validator could otherwise
 * grow the (persisted) state without bound by signing messages for ever higher rounds; honest validators
 * only move up, so keeping each one's highest few rounds is enough to follow them (line 55).
 */
const FUTURE_ROUNDS_PER_VALIDATOR = 2;

export function maxFaulty(n: number): number {
  checkValidatorCount(n);
  return Math.floor((n - 1) / 3);
}

/**
 * Votes needed for a quorum: n - f, which is 2f+1 for n = 3f+1 (3 of 4, 5 of 7). For other n, 2f+1 alone
 * would let two quorums miss each other's honest members (n = 6: 3 + 3), so n - f keeps the overlap > f.
 */
export function quorum(n: number): number {
  return n - maxFaulty(n);
}

/** Validators in genesis order take turns: (height + round) mod N (PROTOCOL.md §5.4). */
export function proposerIndex(validatorCount: number, height: number, round: number): number {
  checkValidatorCount(validatorCount);
  return (height + round) % validatorCount;
}

/** Timeouts grow linearly with the round, so after GST they eventually exceed the message delay. */
export function timeoutMs(step: TimeoutStep, round: number, params: { timeoutPropose: number; timeoutVote: number; timeoutDelta: number }): number {
  const base = step === 'propose' ? params.timeoutPropose : params.timeoutVote;
  return base + round * params.timeoutDelta;
}

export function initialState(height: number): RoundState {
  return {
    height,
    round: 0,
    step: 'propose',
    lockedRound: -1,
    lockedValue: null,
    validRound: -1,
    validValue: null,
    started: false,
    decision: null,
    rounds: {},
  };
}

/** Applies one input. Never mutates `state`; returns the next state and what the caller must do. */
export function step(state: RoundState, input: Input, ctx: Context): { state: RoundState; outputs: Output[] } {
  checkContext(ctx);
  const t = new Transition(state, ctx);
  t.apply(input);
  return { state: t.state, outputs: t.outputs };
}

/**
 * One call of step(). The state is copied on write: the top level and the round map at once, a round's
 * record only when it changes, so a step costs little however many rounds the height has seen.
 */
class Transition {
  state: RoundState;
  readonly outputs: Output[] = [];
  /** Round records that belong to this transition's state and may be modified in place. */
  private readonly owned = new Set<RoundRecord>();

  constructor(
    state: RoundState,
    private readonly ctx: Context,
  ) {
    this.state = { ...state, rounds: { ...state.rounds } };
  }

  apply(input: Input): void {
    switch (input.kind) {
      case 'startHeight':
        this.startHeight(input.height);
        break;
      case 'proposal':
        this.recordProposal(input);
        break;
      case 'vote':
        this.recordVote(input.vote);
        break;
      case 'timeout':
        this.onTimeout(input);
        break;
    }
    // Upon-rules may enable each other (a vote completes a polka, which enables a decision…): run to a fixpoint.
    while (this.state.started && this.state.step !== 'decided' && this.fireOneRule()) {
      // each firing changes the step, the round or a once-only flag, so this terminates
    }
  }

  // ---- inputs ----

  private startHeight(height: number): void {
    const s = this.state;
    // Restarting the current height would forget our votes (and could double-sign): ignore repeats and the past.
    if (height < s.height || (height === s.height && s.started)) return;
    if (height > s.height) this.state = initialState(height);
    this.state.started = true;
    this.startRound(0);
  }

  private recordProposal(p: Extract<Input, { kind: 'proposal' }>): void {
    const s = this.state;
    if (p.height !== s.height || !isRound(p.round) || typeof p.value !== 'string') return;
    // validRound must be -1 or a round before this one: anything else cannot satisfy line 22 or 28.
    if (!Number.isInteger(p.validRound) || p.validRound < -1 || p.validRound >= p.round) return;
    if (s.rounds[p.round]?.proposal) return; // only the proposer's first proposal of a round counts
    if (!this.admitFutureMessage(this.ctx.proposer(s.height, p.round), p.round)) return;
    this.edit(p.round).proposal = { value: p.value, validRound: p.validRound, valid: p.valid === true };
  }

  private recordVote(vote: Vote): void {
    const s = this.state;
    if (vote.height !== s.height || !isRound(vote.round)) return; // other heights: the caller syncs
    if (vote.type !== 'prevote' && vote.type !== 'precommit') return;
    if (!Number.isInteger(vote.validator) || vote.validator < 0 || vote.validator >= this.ctx.n) return;
    if (vote.value !== null && typeof vote.value !== 'string') return;
    const { type, height, round, validator, value } = vote;
    const key = String(validator);
    const existing = s.rounds[round];
    if (existing && Object.hasOwn(existing.votes[type], key)) {
      const firstValue = existing.votes[type][key] ?? null;
      const kept = existing.conflicting[type][key] ?? [];
      if (firstValue === value || kept.includes(value)) return; // a duplicate is counted once
      // Keep (and count) a conflicting vote only for nil or a value someone proposed or voted for: the rules
      // need a proposal of the value (or nil), and this bounds what a byzantine validator can make us store.
      const worthKeeping = this.couldMatter(round, value);
      // Each kept pair is reported once; the others only if this validator was not reported here before.
      if (!worthKeeping && existing.equivocators[type].includes(validator)) return;
      const rec = this.edit(round);
      if (worthKeeping) rec.conflicting[type][key] = [...kept, value];
      if (!rec.equivocators[type].includes(validator)) rec.equivocators[type].push(validator);
      this.outputs.push({
        kind: 'equivocation',
        first: { type, height, round, validator, value: firstValue },
        second: { type, height, round, validator, value },
      });
      return;
    }
    if (!this.admitFutureMessage(validator, round)) return;
    this.edit(round).votes[type][key] = value;
  }

  /** Lines 57-66: a timeout only acts if the height, round (and step) it was armed for are still current. */
  private onTimeout(t: Extract<Input, { kind: 'timeout' }>): void {
    const s = this.state;
    if (!s.started || s.step === 'decided' || t.height !== s.height || t.round !== s.round) return;
    if (t.step === 'propose' && s.step === 'propose') {
      this.castVote('prevote', null);
      s.step = 'prevote';
    } else if (t.step === 'prevote' && s.step === 'prevote') {
      this.castVote('precommit', null);
      s.step = 'precommit';
    } else if (t.step === 'precommit') {
      this.startRound(s.round + 1);
    }
  }

  // ---- Algorithm 1 ----

  /** Lines 10-21. */
  private startRound(round: number): void {
    const s = this.state;
    const self = this.ctx.self;
    s.round = round;
    s.step = 'propose';
    const alreadyProposed = s.rounds[round]?.proposal != null; // e.g. our own proposal, seen again after a restart
    if (self !== null && this.ctx.proposer(s.height, round) === self && !alreadyProposed) {
      if (s.validValue !== null) {
        // Re-propose the value a polka formed for; it was valid when we saw it, so record it right away.
        this.outputs.push({ kind: 'propose', height: s.height, round, value: s.validValue, validRound: s.validRound });
        this.edit(round).proposal = { value: s.validValue, validRound: s.validRound, valid: true };
      } else {
        // The caller builds a fresh block and feeds it back as a 'proposal' input.
        this.outputs.push({ kind: 'propose', height: s.height, round, value: null, validRound: -1 });
      }
    }
    // Unlike the paper (but like CometBFT) the proposer arms this timeout too: if building its block fails
    // or is slow, it prevotes nil instead of holding up everyone else's quorum.
    this.outputs.push({ kind: 'scheduleTimeout', step: 'propose', height: s.height, round });
  }

  /** Fires the first applicable upon-rule; returns whether one fired. Order only matters among rules that
   * are enabled together, where any order is a valid execution of the algorithm. */
  private fireOneRule(): boolean {
    return (
      this.decideIfCommitted() ||
      this.skipToHigherRound() ||
      this.prevoteOnProposal() ||
      this.lockOnPolka() ||
      this.precommitNilOnNilPolka() ||
      this.schedulePrevoteTimeout() ||
      this.schedulePrecommitTimeout()
    );
  }

  /** Line 49: a proposal and a quorum of precommits for it, in ANY round, decide the height. */
  private decideIfCommitted(): boolean {
    const s = this.state;
    for (const round of roundsAscending(s)) {
      const rec = s.rounds[round]!;
      if (!rec.proposal?.valid) continue;
      const value = rec.proposal.value;
      if (votersFor(rec, 'precommit', value).length < quorum(this.ctx.n)) continue;
      s.step = 'decided';
      s.decision = { round, value };
      const commit = votersFor(rec, 'precommit', value).map((validator): Vote => ({ type: 'precommit', height: s.height, round, validator, value }));
      this.outputs.push({ kind: 'decide', height: s.height, round, value, commit });
      return true;
    }
    return false;
  }

  /** Line 55: f+1 validators (so at least one honest) already voted in a higher round: catch up to it. */
  private skipToHigherRound(): boolean {
    const s = this.state;
    const needed = maxFaulty(this.ctx.n) + 1;
    const higher = roundsAscending(s)
      .filter((r) => r > s.round)
      .reverse();
    for (const round of higher) {
      const votes = s.rounds[round]!.votes;
      const voters = new Set([...Object.keys(votes.prevote), ...Object.keys(votes.precommit)]);
      if (voters.size >= needed) {
        this.outputs.push({ kind: 'roundSkip', height: s.height, round });
        this.startRound(round);
        return true;
      }
    }
    return false;
  }

  /** Lines 22-33: prevote the current round's proposal, or nil if it is invalid or conflicts with our lock. */
  private prevoteOnProposal(): boolean {
    const s = this.state;
    const proposal = s.rounds[s.round]?.proposal;
    if (s.step !== 'propose' || !proposal) return false;
    const { value, validRound, valid } = proposal;
    let acceptable: boolean;
    if (validRound === -1) {
      // line 22: a fresh value is fine unless we are locked on another one
      acceptable = valid && (s.lockedRound === -1 || s.lockedValue === value);
    } else {
      // line 28: a re-proposal claims a polka at validRound; wait until we have seen that polka ourselves
      const claimed = s.rounds[validRound];
      if (!claimed || votersFor(claimed, 'prevote', value).length < quorum(this.ctx.n)) return false;
      // a polka newer than (or as old as) our lock may unlock us
      acceptable = valid && (s.lockedRound <= validRound || s.lockedValue === value);
    }
    this.castVote('prevote', acceptable ? value : null);
    s.step = 'prevote';
    return true;
  }

  /** Line 36: a polka for this round's valid proposal: lock and precommit it (if still prevoting), and
   * remember it as the value to re-propose. */
  private lockOnPolka(): boolean {
    const s = this.state;
    const rec = s.rounds[s.round];
    if (!rec || rec.polkaHandled || !rec.proposal?.valid) return false;
    if (s.step !== 'prevote' && s.step !== 'precommit') return false;
    const value = rec.proposal.value;
    if (votersFor(rec, 'prevote', value).length < quorum(this.ctx.n)) return false;
    this.edit(s.round).polkaHandled = true;
    if (s.step === 'prevote') {
      s.lockedValue = value;
      s.lockedRound = s.round;
      this.castVote('precommit', value);
      s.step = 'precommit';
    }
    s.validValue = value;
    s.validRound = s.round;
    return true;
  }

  /** Line 44: a quorum prevoted nil. */
  private precommitNilOnNilPolka(): boolean {
    const s = this.state;
    const rec = s.rounds[s.round];
    if (s.step !== 'prevote' || !rec || votersFor(rec, 'prevote', null).length < quorum(this.ctx.n)) return false;
    this.castVote('precommit', null);
    s.step = 'precommit';
    return true;
  }

  /** Line 34: a quorum of prevotes that agree on nothing yet; give the rest a bounded time to arrive. */
  private schedulePrevoteTimeout(): boolean {
    const s = this.state;
    const rec = s.rounds[s.round];
    if (s.step !== 'prevote' || !rec || rec.prevoteTimeoutScheduled) return false;
    if (Object.keys(rec.votes.prevote).length < quorum(this.ctx.n)) return false;
    this.edit(s.round).prevoteTimeoutScheduled = true;
    this.outputs.push({ kind: 'scheduleTimeout', step: 'prevote', height: s.height, round: s.round });
    return true;
  }

  /** Line 47: a quorum of precommits that decide nothing yet; move on to the next round after a while. */
  private schedulePrecommitTimeout(): boolean {
    const s = this.state;
    const rec = s.rounds[s.round];
    if (!rec || rec.precommitTimeoutScheduled) return false;
    if (Object.keys(rec.votes.precommit).length < quorum(this.ctx.n)) return false;
    this.edit(s.round).precommitTimeoutScheduled = true;
    this.outputs.push({ kind: 'scheduleTimeout', step: 'precommit', height: s.height, round: s.round });
    return true;
  }

  // ---- helpers ----

  /**
   * Emits our vote for the current round and counts it at once (the returned state, persisted by the caller
   * before signing, thus remembers it). If we already voted in this slot, e.g. before a crash, nothing is
   * emitted: a validator never signs two votes for one height, round and type.
   */
  private castVote(type: VoteType, value: string | null): void {
    const self = this.ctx.self;
    if (self === null) return; // observers only follow
    const s = this.state;
    const key = String(self);
    if (s.rounds[s.round] && Object.hasOwn(s.rounds[s.round]!.votes[type], key)) return;
    this.edit(s.round).votes[type][key] = value;
    this.outputs.push({ kind: 'vote', vote: { type, height: s.height, round: s.round, validator: self, value } });
  }

  /**
   * Bounds what one validator can store above our round (see FUTURE_ROUNDS_PER_VALIDATOR): a message for a
   * new, higher round evicts that validator's messages from its lowest such round; one lower than all of
   * them is dropped. Our own messages are never evicted (we must remember our votes).
   */
  private admitFutureMessage(validator: number, round: number): boolean {
    const s = this.state;
    if (round <= s.round || validator === this.ctx.self) return true;
    const key = String(validator);
    const isFrom = (r: number) => {
      const rec = s.rounds[r]!;
      return (
        Object.hasOwn(rec.votes.prevote, key) ||
        Object.hasOwn(rec.votes.precommit, key) ||
        (rec.proposal !== null && this.ctx.proposer(s.height, r) === validator)
      );
    };
    const futureRounds = roundsAscending(s).filter((r) => r > s.round && isFrom(r));
    if (futureRounds.includes(round) || futureRounds.length < FUTURE_ROUNDS_PER_VALIDATOR) return true;
    const lowest = futureRounds[0]!;
    if (round < lowest) return false;
    const rec = this.edit(lowest);
    delete rec.votes.prevote[key];
    delete rec.votes.precommit[key];
    delete rec.conflicting.prevote[key];
    delete rec.conflicting.precommit[key];
    if (this.ctx.proposer(s.height, lowest) === validator) rec.proposal = null;
    rec.equivocators.prevote = rec.equivocators.prevote.filter((v) => v !== validator);
    rec.equivocators.precommit = rec.equivocators.precommit.filter((v) => v !== validator);
    const empty = rec.proposal === null && Object.keys(rec.votes.prevote).length === 0 && Object.keys(rec.votes.precommit).length === 0;
    if (empty) delete s.rounds[lowest];
    return true;
  }

  /** Nil, the value of a proposal of this height, or a value another validator voted for in this round. */
  private couldMatter(round: number, value: string | null): boolean {
    if (value === null) return true;
    const rounds = Object.values(this.state.rounds);
    if (rounds.some((rec) => rec.proposal?.value === value)) return true;
    const rec = this.state.rounds[round];
    return rec !== undefined && (Object.values(rec.votes.prevote).includes(value) || Object.values(rec.votes.precommit).includes(value));
  }

  /** The record of a round, writable: created if absent, copied first if it still belongs to the input. */
  private edit(round: number): RoundRecord {
    const current = this.state.rounds[round];
    if (current && this.owned.has(current)) return current;
    const rec: RoundRecord = current
      ? {
          ...current,
          proposal: current.proposal && { ...current.proposal },
          votes: { prevote: { ...current.votes.prevote }, precommit: { ...current.votes.precommit } },
          conflicting: { prevote: { ...current.conflicting.prevote }, precommit: { ...current.conflicting.precommit } },
          equivocators: { prevote: [...current.equivocators.prevote], precommit: [...current.equivocators.precommit] },
        }
      : {
          proposal: null,
          votes: { prevote: {}, precommit: {} },
          conflicting: { prevote: {}, precommit: {} },
          equivocators: { prevote: [], precommit: [] },
          prevoteTimeoutScheduled: false,
          polkaHandled: false,
          precommitTimeoutScheduled: false,
        };
    this.owned.add(rec);
    this.state.rounds[round] = rec;
    return rec;
  }
}

function roundsAscending(s: RoundState): number[] {
  return Object.keys(s.rounds)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Validators (ascending) with a vote of this type for this value in this round, each counted once. */
function votersFor(rec: RoundRecord, type: VoteType, value: string | null): number[] {
  const voters: number[] = [];
  for (const [key, first] of Object.entries(rec.votes[type])) {
    if (first === value || rec.conflicting[type][key]?.includes(value)) voters.push(Number(key));
  }
  return voters.sort((a, b) => a - b);
}

function isRound(round: number): boolean {
  return Number.isSafeInteger(round) && round >= 0;
}

function checkValidatorCount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`validator count must be a positive integer, got ${n}`);
}

function checkContext(ctx: Context): void {
  checkValidatorCount(ctx.n);
  if (ctx.self !== null && (!Number.isInteger(ctx.self) || ctx.self < 0 || ctx.self >= ctx.n)) {
    throw new RangeError(`self must be a validator index below ${ctx.n} or null, got ${ctx.self}`);
  }
}
