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

/** Everything received for one round of the current height. Keys of vote maps are validator indices. */
export interface RoundRecord {
  proposal: ProposalRecord | null;
  /** Validator index (decimal string key) → the value of the first vote counted from it. */
  votes: { prevote: Record<string, string | null>; precommit: Record<string, string | null> };
  /** Validators already reported for equivocation in this round, per vote type (one report each). */
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

/** Validators in genesis order take turns: (height + round) mod N (SPEC §5). */
export function proposerIndex(validatorCount: number, height: number, round: number): number {
  checkValidatorCount(validatorCount);
  return (height + round) % validatorCount;
}

/** Timeouts grow linearly with the round, so after GST they eventually exceed the message delay. */
export function timeoutMs(
  step: TimeoutStep,
  round: number,
  params: { timeoutPropose: number; timeoutVote: number; timeoutDelta: number },
): number {
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
  let s = structuredClone(state);
  const out: Output[] = [];
  switch (input.kind) {
    case 'startHeight':
      s = startHeight(s, input.height, ctx, out);
      break;
    case 'proposal':
      recordProposal(s, input, ctx);
      break;
    case 'vote':
      recordVote(s, input.vote, ctx, out);
      break;
    case 'timeout':
      onTimeout(s, input, ctx, out);
      break;
  }
  // Upon-rules may enable each other (a vote completes a polka, which enables a decision…): run to a fixpoint.
  while (s.started && s.step !== 'decided' && fireOneRule(s, ctx, out)) {
    // each firing changes the step, the round or a once-only flag, so this terminates
  }
  (globalThis as any).__hook?.(out, s);
  return { state: s, outputs: out };
}

// ---- inputs ----

function startHeight(s: RoundState, height: number, ctx: Context, out: Output[]): RoundState {
  // Restarting the current height would forget our votes (and could double-sign): ignore repeats and the past.
  if (height < s.height || (height === s.height && s.started)) return s;
  const next = height === s.height ? s : initialState(height);
  next.started = true;
  startRound(next, 0, ctx, out);
  return next;
}

function recordProposal(s: RoundState, p: Extract<Input, { kind: 'proposal' }>, ctx: Context): void {
  if (p.height !== s.height || !isRound(p.round) || typeof p.value !== 'string') return;
  // validRound must be -1 or a round before this one: anything else cannot satisfy line 22 or 28.
  if (!Number.isInteger(p.validRound) || p.validRound < -1 || p.validRound >= p.round) return;
  if (s.rounds[p.round]?.proposal) return; // only the proposer's first proposal of a round counts
  if (!admitFutureMessage(s, ctx, ctx.proposer(s.height, p.round), p.round)) return;
  roundRecord(s, p.round).proposal = { value: p.value, validRound: p.validRound, valid: p.valid === true };
}

function recordVote(s: RoundState, vote: Vote, ctx: Context, out: Output[]): void {
  if (vote.height !== s.height || !isRound(vote.round)) return; // other heights: the caller syncs
  if (vote.type !== 'prevote' && vote.type !== 'precommit') return;
  if (!Number.isInteger(vote.validator) || vote.validator < 0 || vote.validator >= ctx.n) return;
  if (vote.value !== null && typeof vote.value !== 'string') return;
  const key = String(vote.validator);
  const existing = s.rounds[vote.round];
  if (existing && Object.hasOwn(existing.votes[vote.type], key)) {
    const firstValue = existing.votes[vote.type][key] ?? null;
    if (firstValue === vote.value) return; // a duplicate is counted once
    // A second, different vote is not counted. One (first, second) pair proves the equivocation, so each
    // validator is reported once per round and type; this also bounds what a byzantine validator can add.
    const reported = existing.equivocators[vote.type];
    if (reported.includes(vote.validator)) return;
    reported.push(vote.validator);
    const { type, height, round, validator } = vote;
    out.push({
      kind: 'equivocation',
      first: { type, height, round, validator, value: firstValue },
      second: { type, height, round, validator, value: vote.value },
    });
    return;
  }
  if (!admitFutureMessage(s, ctx, vote.validator, vote.round)) return;
  roundRecord(s, vote.round).votes[vote.type][key] = vote.value;
}

/** Lines 57-66: a timeout only acts if the height, round (and step) it was armed for are still current. */
function onTimeout(s: RoundState, t: Extract<Input, { kind: 'timeout' }>, ctx: Context, out: Output[]): void {
  if (!s.started || s.step === 'decided' || t.height !== s.height || t.round !== s.round) return;
  if (t.step === 'propose' && s.step === 'propose') {
    castVote(s, ctx, 'prevote', null, out);
    s.step = 'prevote';
  } else if (t.step === 'prevote' && s.step === 'prevote') {
    castVote(s, ctx, 'precommit', null, out);
    s.step = 'precommit';
  } else if (t.step === 'precommit') {
    startRound(s, s.round + 1, ctx, out);
  }
}

// ---- Algorithm 1 ----

/** Lines 10-21. */
function startRound(s: RoundState, round: number, ctx: Context, out: Output[]): void {
  s.round = round;
  s.step = 'propose';
  const alreadyProposed = s.rounds[round]?.proposal != null; // e.g. our own proposal, seen again after a restart
  if (ctx.self !== null && ctx.proposer(s.height, round) === ctx.self && !alreadyProposed) {
    if (s.validValue !== null) {
      // Re-propose the value a polka formed for; it was valid when we saw it, so record it right away.
      out.push({ kind: 'propose', height: s.height, round, value: s.validValue, validRound: s.validRound });
      roundRecord(s, round).proposal = { value: s.validValue, validRound: s.validRound, valid: true };
    } else {
      // The caller builds a fresh block and feeds it back as a 'proposal' input.
      out.push({ kind: 'propose', height: s.height, round, value: null, validRound: -1 });
    }
  }
  // Unlike the paper (but like CometBFT) the proposer arms this timeout too: if building its block fails
  // or is slow, it prevotes nil instead of holding up everyone else's quorum.
  out.push({ kind: 'scheduleTimeout', step: 'propose', height: s.height, round });
}

/** Fires the first applicable upon-rule; returns whether one fired. Order only matters among rules that
 * are enabled together, where any order is a valid execution of the algorithm. */
function fireOneRule(s: RoundState, ctx: Context, out: Output[]): boolean {
  return (
    decideIfCommitted(s, ctx, out) ||
    skipToHigherRound(s, ctx, out) ||
    prevoteOnProposal(s, ctx, out) ||
    lockOnPolka(s, ctx, out) ||
    precommitNilOnNilPolka(s, ctx, out) ||
    schedulePrevoteTimeout(s, ctx, out) ||
    schedulePrecommitTimeout(s, ctx, out)
  );
}

/** Line 49: a proposal and a quorum of precommits for it, in ANY round, decide the height. */
function decideIfCommitted(s: RoundState, ctx: Context, out: Output[]): boolean {
  const q = quorum(ctx.n);
  for (const round of roundsAscending(s)) {
    const rec = s.rounds[round]!;
    if (!rec.proposal?.valid) continue;
    const value = rec.proposal.value;
    if (countFor(rec.votes.precommit, value) < q) continue;
    s.step = 'decided';
    s.decision = { round, value };
    const commit = Object.entries(rec.votes.precommit)
      .filter(([, v]) => v === value)
      .map(([validator]): Vote => ({ type: 'precommit', height: s.height, round, validator: Number(validator), value }))
      .sort((a, b) => a.validator - b.validator);
    out.push({ kind: 'decide', height: s.height, round, value, commit });
    return true;
  }
  return false;
}

/** Line 55: f+1 validators (so at least one honest) already voted in a higher round: catch up to it. */
function skipToHigherRound(s: RoundState, ctx: Context, out: Output[]): boolean {
  const needed = maxFaulty(ctx.n) + 1;
  const higher = roundsAscending(s).filter((r) => r > s.round).reverse();
  for (const round of higher) {
    const votes = s.rounds[round]!.votes;
    const voters = new Set([...Object.keys(votes.prevote), ...Object.keys(votes.precommit)]);
    if (voters.size >= needed) {
      out.push({ kind: 'roundSkip', height: s.height, round });
      startRound(s, round, ctx, out);
      return true;
    }
  }
  return false;
}

/** Lines 22-33: prevote the current round's proposal, or nil if it is invalid or conflicts with our lock. */
function prevoteOnProposal(s: RoundState, ctx: Context, out: Output[]): boolean {
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
    if (!claimed || countFor(claimed.votes.prevote, value) < quorum(ctx.n)) return false;
    // a polka newer than (or equal to) our lock may unlock us
    acceptable = valid && (s.lockedRound <= validRound || s.lockedValue === value);
  }
  castVote(s, ctx, 'prevote', acceptable ? value : null, out);
  s.step = 'prevote';
  return true;
}

/** Line 36: a polka for the valid proposal of this round: lock and precommit (if still prevoting), and
 * remember it as the value to re-propose. */
function lockOnPolka(s: RoundState, ctx: Context, out: Output[]): boolean {
  const rec = s.rounds[s.round];
  if (!rec || rec.polkaHandled || !rec.proposal?.valid) return false;
  if (s.step !== 'prevote' && s.step !== 'precommit') return false;
  const value = rec.proposal.value;
  if (countFor(rec.votes.prevote, value) < quorum(ctx.n)) return false;
  rec.polkaHandled = true;
  if (s.step === 'prevote') {
    s.lockedValue = value;
    s.lockedRound = s.round;
    castVote(s, ctx, 'precommit', value, out);
    s.step = 'precommit';
  }
  s.validValue = value;
  s.validRound = s.round;
  return true;
}

/** Line 44: a quorum prevoted nil. */
function precommitNilOnNilPolka(s: RoundState, ctx: Context, out: Output[]): boolean {
  const rec = s.rounds[s.round];
  if (s.step !== 'prevote' || !rec || countFor(rec.votes.prevote, null) < quorum(ctx.n)) return false;
  castVote(s, ctx, 'precommit', null, out);
  s.step = 'precommit';
  return true;
}

/** Line 34: a quorum of prevotes that agree on nothing yet; give the rest a bounded time to arrive. */
function schedulePrevoteTimeout(s: RoundState, ctx: Context, out: Output[]): boolean {
  const rec = s.rounds[s.round];
  if (s.step !== 'prevote' || !rec || rec.prevoteTimeoutScheduled) return false;
  if (Object.keys(rec.votes.prevote).length < quorum(ctx.n)) return false;
  rec.prevoteTimeoutScheduled = true;
  out.push({ kind: 'scheduleTimeout', step: 'prevote', height: s.height, round: s.round });
  return true;
}

/** Line 47: a quorum of precommits that decide nothing yet; move on to the next round after a while. */
function schedulePrecommitTimeout(s: RoundState, ctx: Context, out: Output[]): boolean {
  const rec = s.rounds[s.round];
  if (!rec || rec.precommitTimeoutScheduled) return false;
  if (Object.keys(rec.votes.precommit).length < quorum(ctx.n)) return false;
  rec.precommitTimeoutScheduled = true;
  out.push({ kind: 'scheduleTimeout', step: 'precommit', height: s.height, round: s.round });
  return true;
}

// ---- helpers ----

/**
 * Emits our vote for the current round and counts it at once (the returned state, persisted by the caller
 * before signing, thus remembers it). If we already voted in this slot, e.g. before a crash, nothing is
 * emitted: a validator never signs two votes for one height, round and type.
 */
function castVote(s: RoundState, ctx: Context, type: VoteType, value: string | null, out: Output[]): void {
  if (ctx.self === null) return; // observers only follow
  const tally = roundRecord(s, s.round).votes[type];
  const key = String(ctx.self);
  if (Object.hasOwn(tally, key)) return;
  tally[key] = value;
  out.push({ kind: 'vote', vote: { type, height: s.height, round: s.round, validator: ctx.self, value } });
}

/**
 * Bounds what one validator can store above our round (see FUTURE_ROUNDS_PER_VALIDATOR): a message for a
 * new, higher round evicts that validator's messages from its lowest such round; one lower than all of them
 * is dropped. Our own messages are never evicted (we must remember our votes).
 */
function admitFutureMessage(s: RoundState, ctx: Context, validator: number, round: number): boolean {
  if (round <= s.round || validator === ctx.self) return true;
  const key = String(validator);
  const futureRounds = roundsAscending(s).filter((r) => {
    if (r <= s.round) return false;
    const rec = s.rounds[r]!;
    return (
      Object.hasOwn(rec.votes.prevote, key) ||
      Object.hasOwn(rec.votes.precommit, key) ||
      (rec.proposal !== null && ctx.proposer(s.height, r) === validator)
    );
  });
  if (futureRounds.includes(round) || futureRounds.length < FUTURE_ROUNDS_PER_VALIDATOR) return true;
  const lowest = futureRounds[0]!;
  if (round < lowest) return false;
  const rec = s.rounds[lowest]!;
  delete rec.votes.prevote[key];
  delete rec.votes.precommit[key];
  if (ctx.proposer(s.height, lowest) === validator) rec.proposal = null;
  rec.equivocators.prevote = rec.equivocators.prevote.filter((v) => v !== validator);
  rec.equivocators.precommit = rec.equivocators.precommit.filter((v) => v !== validator);
  const empty =
    rec.proposal === null &&
    Object.keys(rec.votes.prevote).length === 0 &&
    Object.keys(rec.votes.precommit).length === 0;
  if (empty) delete s.rounds[lowest];
  return true;
}

function roundRecord(s: RoundState, round: number): RoundRecord {
  let rec = s.rounds[round];
  if (!rec) {
    rec = {
      proposal: null,
      votes: { prevote: {}, precommit: {} },
      equivocators: { prevote: [], precommit: [] },
      prevoteTimeoutScheduled: false,
      polkaHandled: false,
      precommitTimeoutScheduled: false,
    };
    s.rounds[round] = rec;
  }
  return rec;
}

function roundsAscending(s: RoundState): number[] {
  return Object.keys(s.rounds)
    .map(Number)
    .sort((a, b) => a - b);
}

function countFor(tally: Record<string, string | null>, value: string | null): number {
  let count = 0;
  for (const v of Object.values(tally)) if (v === value) count++;
  return count;
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
