import { describe, expect, it } from 'vitest';
import {
  initialState,
  maxFaulty,
  proposerIndex,
  quorum,
  step,
  timeoutMs,
  type Context,
  type Input,
  type Output,
  type RoundState,
  type Vote,
} from '../../src/consensus/tendermint.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { simulate } from './sim.js';

// Height 1 with 4 validators: the proposer of round r is (1 + r) mod 4, so validator 1 proposes round 0,
// 2 round 1, 3 round 2 and 0 (usually "us") round 3.
const H = 1;

function context(self: number | null = 0, n = 4): Context {
  return { n, self, proposer: (h, r) => proposerIndex(n, h, r) };
}

function feed(state: RoundState, inputs: Input[], ctx: Context): { state: RoundState; outputs: Output[] } {
  const outputs: Output[] = [];
  for (const input of inputs) {
    const result = step(state, input, ctx);
    state = result.state;
    outputs.push(...result.outputs);
  }
  return { state, outputs };
}

const start = (height = H): Input => ({ kind: 'startHeight', height });
const proposal = (round: number, value: string, validRound = -1, valid = true): Input => ({
  kind: 'proposal',
  height: H,
  round,
  value,
  validRound,
  valid,
});
const vote = (type: Vote['type'], validator: number, round: number, value: string | null, height = H): Input => ({
  kind: 'vote',
  vote: { type, height, round, validator, value },
});
const prevote = (validator: number, round: number, value: string | null, height = H) => vote('prevote', validator, round, value, height);
const precommit = (validator: number, round: number, value: string | null, height = H) => vote('precommit', validator, round, value, height);
const timeout = (stepName: 'propose' | 'prevote' | 'precommit', round: number, height = H): Input => ({
  kind: 'timeout',
  step: stepName,
  height,
  round,
});

function votesIn(outputs: Output[]): Vote[] {
  return outputs.flatMap((o) => (o.kind === 'vote' ? [o.vote] : []));
}
function ofKind<K extends Output['kind']>(outputs: Output[], kind: K): Extract<Output, { kind: K }>[] {
  return outputs.filter((o): o is Extract<Output, { kind: K }> => o.kind === kind);
}
const ourVote = (type: Vote['type'], round: number, value: string | null, validator = 0): Vote => ({
  type,
  height: H,
  round,
  validator,
  value,
});

/** Validator 0, started at height 1, having prevoted and precommitted A in round 0 (locked on A at 0),
 * with the round's precommits short of a quorum for A, then moved to round 1 by the precommit timeout. */
function lockedOnAInRound1(): RoundState {
  const ctx = context(0);
  const { state } = feed(
    initialState(H),
    [start(), proposal(0, 'A'), prevote(1, 0, 'A'), prevote(2, 0, 'A'), precommit(1, 0, null), precommit(2, 0, null), timeout('precommit', 0)],
    ctx,
  );
  expect(state).toMatchObject({ round: 1, step: 'propose', lockedValue: 'A', lockedRound: 0, validValue: 'A', validRound: 0 });
  return state;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

describe('arithmetic', () => {
  it('quorum is 2f+1 of 3f+1 (3 of 4, 5 of 7) and any two quorums share an honest validator', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map(maxFaulty)).toEqual([0, 0, 0, 1, 1, 1, 2, 3]);
    expect(quorum(4)).toBe(3);
    expect(quorum(7)).toBe(5);
    expect(quorum(10)).toBe(7);
    expect(quorum(1)).toBe(1);
    for (let n = 1; n <= 100; n++) {
      const f = maxFaulty(n);
      if (n % 3 === 1) expect(quorum(n)).toBe(2 * f + 1);
      expect(2 * quorum(n) - n).toBeGreaterThan(f); // overlap of two quorums exceeds the faulty ones
      expect(quorum(n)).toBeLessThanOrEqual(n - f); // the honest validators alone form a quorum
    }
    expect(() => quorum(0)).toThrow(RangeError);
  });

  it('the proposer is (height + round) mod N and rotates through every validator', () => {
    expect([0, 1, 2, 3, 4, 5].map((r) => proposerIndex(4, 1, r))).toEqual([1, 2, 3, 0, 1, 2]);
    expect([0, 1, 2, 3].map((h) => proposerIndex(4, h, 0))).toEqual([0, 1, 2, 3]);
    expect(proposerIndex(4, 10, 3)).toBe(1);
    expect(new Set([...Array(7).keys()].map((h) => proposerIndex(7, h, 2))).size).toBe(7);
  });

  it('timeouts grow with the round', () => {
    const params = { timeoutPropose: 1000, timeoutVote: 500, timeoutDelta: 250 };
    expect(timeoutMs('propose', 0, params)).toBe(1000);
    expect(timeoutMs('propose', 2, params)).toBe(1500);
    expect(timeoutMs('prevote', 0, params)).toBe(500);
    expect(timeoutMs('precommit', 4, params)).toBe(1500);
  });
});

describe('starting a height', () => {
  it('the proposer of round 0 asks for a fresh block; everyone arms the propose timeout', () => {
    const asProposer = step(initialState(H), start(), context(1));
    expect(asProposer.outputs).toEqual([
      { kind: 'propose', height: H, round: 0, value: null, validRound: -1 },
      { kind: 'scheduleTimeout', step: 'propose', height: H, round: 0 },
    ]);
    const asOther = step(initialState(H), start(), context(0));
    expect(asOther.outputs).toEqual([{ kind: 'scheduleTimeout', step: 'propose', height: H, round: 0 }]);
    expect(asOther.state).toMatchObject({ height: H, round: 0, step: 'propose', started: true });
  });

  it('the proposer prevotes its own block once the caller feeds it back', () => {
    const ctx = context(1);
    const { outputs } = feed(initialState(H), [start(), proposal(0, 'B1')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'B1', 1)]);
  });

  it('the turn to propose rotates with the round', () => {
    const ctx = context(0);
    let { state, outputs } = feed(initialState(H), [start()], ctx);
    const proposedIn: number[] = [];
    for (let round = 0; round < 8; round++) {
      if (ofKind(outputs, 'propose').length > 0) proposedIn.push(round);
      // everyone is silent: prevote nil, precommit nil, next round
      ({ state, outputs } = feed(
        state,
        [
          timeout('propose', round),
          prevote(1, round, null),
          prevote(2, round, null),
          precommit(1, round, null),
          precommit(2, round, null),
          timeout('precommit', round),
        ],
        ctx,
      ));
      expect(state.round).toBe(round + 1);
    }
    expect(proposedIn).toEqual([3, 7]);
  });

  it('messages that arrive before the start are kept and acted on at the start', () => {
    const ctx = context(0);
    const early = feed(initialState(H), [proposal(0, 'A'), prevote(1, 0, 'A')], ctx);
    expect(early.outputs).toEqual([]);
    expect(early.state.started).toBe(false);
    const { outputs } = feed(early.state, [start(), prevote(2, 0, 'A')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A'), ourVote('precommit', 0, 'A')]);
  });

  it('starting the same height again, or a past one, changes nothing; a new height starts clean', () => {
    const ctx = context(0);
    const locked = lockedOnAInRound1();
    expect(step(locked, start(H), ctx)).toEqual({ state: locked, outputs: [] });
    expect(step(locked, start(H - 1), ctx)).toEqual({ state: locked, outputs: [] });
    const next = step(locked, start(H + 1), ctx);
    expect(next.state).toMatchObject({ height: H + 1, round: 0, step: 'propose', lockedRound: -1, lockedValue: null });
    expect(next.state.rounds).toEqual({});
  });
});

describe('prevote', () => {
  it('a valid proposal gets a prevote for it, an invalid one a nil prevote', () => {
    const ctx = context(0);
    const valid = feed(initialState(H), [start(), proposal(0, 'A')], ctx);
    expect(votesIn(valid.outputs)).toEqual([ourVote('prevote', 0, 'A')]);
    expect(valid.state.step).toBe('prevote');
    const invalid = feed(initialState(H), [start(), proposal(0, 'BAD', -1, false)], ctx);
    expect(votesIn(invalid.outputs)).toEqual([ourVote('prevote', 0, null)]);
  });

  it('no proposal before the propose timeout: prevote nil; stale timeouts do nothing', () => {
    const ctx = context(0);
    const { state } = step(initialState(H), start(), ctx);
    for (const stale of [timeout('propose', 1), timeout('propose', 0, H + 1), timeout('prevote', 0)]) {
      expect(step(state, stale, ctx).outputs).toEqual([]);
    }
    const fired = step(state, timeout('propose', 0), ctx);
    expect(votesIn(fired.outputs)).toEqual([ourVote('prevote', 0, null)]);
    expect(fired.state.step).toBe('prevote');
    expect(step(fired.state, timeout('propose', 0), ctx).outputs).toEqual([]); // step moved on
    expect(step(fired.state, proposal(0, 'A'), ctx).outputs).toEqual([]); // too late to prevote again
  });

  it('a proposal claiming a validRound that is not before its round is ignored', () => {
    const ctx = context(0);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A', 0)], ctx);
    expect(outputs).toEqual([{ kind: 'scheduleTimeout', step: 'propose', height: H, round: 0 }]);
    expect(state.rounds['0']).toBeUndefined();
  });

  it('a re-proposal waits for the polka it claims, then gets a prevote', () => {
    const ctx = context(0);
    // Round 0 passes without us seeing the prevotes for C; round 1 (proposer 2) re-proposes C from round 0.
    let { state } = feed(initialState(H), [start(), timeout('propose', 0), precommit(1, 0, null), precommit(2, 0, null), timeout('precommit', 0)], ctx);
    expect(state.round).toBe(1);
    let outputs: Output[];
    ({ state, outputs } = feed(state, [proposal(1, 'C', 0), prevote(1, 0, 'C'), prevote(2, 0, 'C')], ctx));
    expect(votesIn(outputs)).toEqual([]);
    ({ state, outputs } = feed(state, [prevote(3, 0, 'C')], ctx));
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 1, 'C')]);
  });
});

describe('vote counting', () => {
  it('3 of 4 prevotes are a polka, 2 of 4 are not', () => {
    const ctx = context(3); // validator 3 never proposes round 0 and votes last here
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(1, 0, 'A')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A', 3)]); // 2 of 4 with ours
    expect(state.step).toBe('prevote');
    const more = step(state, prevote(2, 0, 'A'), ctx);
    expect(votesIn(more.outputs)).toEqual([ourVote('precommit', 0, 'A', 3)]);
    expect(more.state).toMatchObject({ step: 'precommit', lockedValue: 'A', lockedRound: 0 });
  });

  it('5 of 7 prevotes are a polka, 4 of 7 are not', () => {
    const ctx = context(0, 7);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(1, 0, 'A'), prevote(2, 0, 'A'), prevote(3, 0, 'A')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A')]);
    expect(votesIn(step(state, prevote(4, 0, 'A'), ctx).outputs)).toEqual([ourVote('precommit', 0, 'A')]);
  });

  it('a validator sending the same vote twice is counted once', () => {
    const ctx = context(0);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(1, 0, 'A'), prevote(1, 0, 'A'), prevote(1, 0, 'A')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A')]);
    expect(ofKind(outputs, 'equivocation')).toEqual([]);
    expect(votesIn(step(state, prevote(2, 0, 'A'), ctx).outputs)).toEqual([ourVote('precommit', 0, 'A')]);
  });

  it('votes from unknown validators or for other heights are ignored', () => {
    const ctx = context(0);
    const { state } = feed(initialState(H), [start(), proposal(0, 'A')], ctx);
    const ignored = feed(state, [prevote(4, 0, 'A'), prevote(-1, 0, 'A'), prevote(1, 0, 'A', H + 1), prevote(2, 0, 'A', H - 1)], ctx);
    expect(ignored.outputs).toEqual([]);
    expect(ignored.state).toEqual(state);
  });

  it('a quorum of mixed prevotes arms the prevote timeout once; when it fires we precommit nil', () => {
    const ctx = context(0);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(1, 0, null), prevote(2, 0, 'B'), prevote(3, 0, null)], ctx);
    expect(ofKind(outputs, 'scheduleTimeout').filter((o) => o.step === 'prevote')).toEqual([{ kind: 'scheduleTimeout', step: 'prevote', height: H, round: 0 }]);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A')]);
    const fired = step(state, timeout('prevote', 0), ctx);
    expect(votesIn(fired.outputs)).toEqual([ourVote('precommit', 0, null)]);
    expect(fired.state.step).toBe('precommit');
  });

  it('a quorum of nil prevotes means precommit nil at once', () => {
    const ctx = context(0);
    const { outputs } = feed(initialState(H), [start(), timeout('propose', 0), prevote(1, 0, null), prevote(2, 0, null)], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, null), ourVote('precommit', 0, null)]);
  });

  it('a quorum of mixed precommits arms the precommit timeout once, in any step', () => {
    const ctx = context(0);
    const { state, outputs } = feed(initialState(H), [start(), precommit(1, 0, 'A'), precommit(2, 0, null), precommit(3, 0, 'B')], ctx);
    expect(state.step).toBe('propose');
    expect(ofKind(outputs, 'scheduleTimeout').filter((o) => o.step === 'precommit')).toHaveLength(1);
    const fired = step(state, timeout('precommit', 0), ctx);
    expect(fired.state).toMatchObject({ round: 1, step: 'propose' });
    expect(fired.outputs).toContainEqual({ kind: 'scheduleTimeout', step: 'propose', height: H, round: 1 });
  });

  it('a silent proposer: propose timeout, nil prevote, nil precommit, next round', () => {
    const ctx = context(0);
    const { state, outputs } = feed(
      initialState(H),
      [start(), timeout('propose', 0), prevote(2, 0, null), prevote(3, 0, null), precommit(2, 0, null), precommit(3, 0, null), timeout('precommit', 0)],
      ctx,
    );
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, null), ourVote('precommit', 0, null)]);
    expect(state).toMatchObject({ round: 1, step: 'propose', lockedRound: -1 });
    // round 1 proposal from validator 2 goes through
    const next = feed(state, [proposal(1, 'B'), prevote(2, 1, 'B'), prevote(3, 1, 'B'), precommit(2, 1, 'B'), precommit(3, 1, 'B')], ctx);
    expect(ofKind(next.outputs, 'decide')).toHaveLength(1);
  });
});

describe('locking', () => {
  it('a locked validator prevotes nil for a different value later, and re-proposes its value when it proposes', () => {
    const ctx = context(0);
    let state = lockedOnAInRound1();
    let outputs: Output[];
    // round 1: validator 2 proposes a fresh B
    ({ state, outputs } = feed(state, [proposal(1, 'B')], ctx));
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 1, null)]);
    // round 2 passes in silence
    ({ state } = feed(state, [precommit(1, 1, null), precommit(2, 1, null), timeout('precommit', 1)], ctx));
    ({ state } = feed(state, [timeout('propose', 2), precommit(1, 2, null), precommit(2, 2, null)], ctx));
    ({ state, outputs } = step(state, timeout('precommit', 2), ctx));
    // round 3: our turn; we propose A again, claiming its polka of round 0, and prevote it
    expect(state.round).toBe(3);
    expect(ofKind(outputs, 'propose')).toEqual([{ kind: 'propose', height: H, round: 3, value: 'A', validRound: 0 }]);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 3, 'A')]);
    expect(state).toMatchObject({ lockedValue: 'A', lockedRound: 0 });
  });

  it('a locked validator prevotes its locked value when it is proposed afresh', () => {
    const { outputs } = step(lockedOnAInRound1(), proposal(1, 'A'), context(0));
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 1, 'A')]);
  });

  it('a polka for another value in a later round relocks', () => {
    const ctx = context(0);
    const { state, outputs } = feed(lockedOnAInRound1(), [proposal(1, 'B'), prevote(1, 1, 'B'), prevote(2, 1, 'B'), prevote(3, 1, 'B')], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 1, null), ourVote('precommit', 1, 'B')]);
    expect(state).toMatchObject({ lockedValue: 'B', lockedRound: 1, validValue: 'B', validRound: 1 });
  });

  it('a re-proposal whose polka is newer than the lock unlocks', () => {
    const ctx = context(0);
    // Round 1: we prevote nil for B and precommit nil on the timeout; B's polka reaches us only later.
    let { state } = feed(
      lockedOnAInRound1(),
      [proposal(1, 'B'), prevote(2, 1, 'B'), prevote(3, 1, 'B'), timeout('prevote', 1), precommit(2, 1, null), precommit(3, 1, null), timeout('precommit', 1)],
      ctx,
    );
    expect(state).toMatchObject({ round: 2, lockedValue: 'A', lockedRound: 0 });
    let outputs: Output[];
    ({ state, outputs } = step(state, proposal(2, 'B', 1), ctx)); // round 2 (proposer 3) re-proposes B from round 1
    expect(votesIn(outputs)).toEqual([]); // we have not seen 2f+1 prevotes for B in round 1 yet
    ({ state, outputs } = step(state, prevote(1, 1, 'B'), ctx));
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 2, 'B')]);
    ({ state, outputs } = feed(state, [prevote(2, 2, 'B'), prevote(3, 2, 'B')], ctx));
    expect(votesIn(outputs)).toEqual([ourVote('precommit', 2, 'B')]);
    expect(state).toMatchObject({ lockedValue: 'B', lockedRound: 2 });
  });

  it('a re-proposal whose polka is older than the lock does not unlock', () => {
    const ctx = context(0);
    // Round 0: B has a polka we see, but we prevoted nil (the proposal came late) and precommitted nil.
    let { state } = feed(
      initialState(H),
      [
        start(),
        timeout('propose', 0),
        prevote(1, 0, 'B'),
        prevote(2, 0, 'B'),
        prevote(3, 0, 'B'),
        precommit(1, 0, null),
        precommit(2, 0, null),
        timeout('precommit', 0),
      ],
      ctx,
    );
    expect(state).toMatchObject({ round: 1, lockedRound: -1 });
    // Round 1: lock on A.
    ({ state } = feed(
      state,
      [proposal(1, 'A'), prevote(1, 1, 'A'), prevote(2, 1, 'A'), precommit(1, 1, null), precommit(2, 1, null), timeout('precommit', 1)],
      ctx,
    ));
    expect(state).toMatchObject({ round: 2, lockedValue: 'A', lockedRound: 1 });
    // Round 2: B re-proposed with its round-0 polka: older than our lock, so nil.
    const { outputs } = step(state, proposal(2, 'B', 0), ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 2, null)]);
  });

  it('a polka seen after precommitting nil updates validValue but not the lock', () => {
    const ctx = context(0);
    const { state, outputs } = feed(
      initialState(H),
      [start(), proposal(0, 'A'), prevote(1, 0, null), prevote(2, 0, 'A'), timeout('prevote', 0), prevote(3, 0, 'A')],
      ctx,
    );
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A'), ourVote('precommit', 0, null)]);
    expect(state).toMatchObject({ lockedRound: -1, lockedValue: null, validValue: 'A', validRound: 0 });
  });
});

describe('deciding', () => {
  it('a proposal and 2f+1 precommits for it decide, with those precommits as the commit', () => {
    const ctx = context(0);
    const { state, outputs } = feed(
      initialState(H),
      [start(), proposal(0, 'A'), prevote(1, 0, 'A'), prevote(2, 0, 'A'), precommit(2, 0, 'A'), precommit(1, 0, 'A')],
      ctx,
    );
    expect(ofKind(outputs, 'decide')).toEqual([
      {
        kind: 'decide',
        height: H,
        round: 0,
        value: 'A',
        commit: [ourVote('precommit', 0, 'A', 0), ourVote('precommit', 0, 'A', 1), ourVote('precommit', 0, 'A', 2)],
      },
    ]);
    expect(state).toMatchObject({ step: 'decided', decision: { round: 0, value: 'A' } });
    // Decided: late messages and timeouts cause nothing.
    const after = feed(state, [precommit(3, 0, 'A'), timeout('precommit', 0), proposal(1, 'B'), timeout('propose', 1)], ctx);
    expect(after.outputs).toEqual([]);
  });

  it('2f+1 precommits for a past round decide', () => {
    const ctx = context(0);
    // We fall behind: two validators already vote in round 2, so we skip there; round 0 ends up committed.
    const { state } = feed(initialState(H), [start(), timeout('propose', 0), prevote(2, 2, null), prevote(3, 2, null)], ctx);
    expect(state.round).toBe(2);
    const { outputs } = feed(state, [proposal(0, 'A'), precommit(1, 0, 'A'), precommit(2, 0, 'A'), precommit(3, 0, 'A')], ctx);
    expect(ofKind(outputs, 'decide')).toMatchObject([{ round: 0, value: 'A' }]);
  });

  it('waits for the proposal, and never decides an invalid one', () => {
    const ctx = context(0);
    const noProposal = feed(initialState(H), [start(), precommit(1, 0, 'A'), precommit(2, 0, 'A'), precommit(3, 0, 'A')], ctx);
    expect(ofKind(noProposal.outputs, 'decide')).toEqual([]);
    expect(ofKind(step(noProposal.state, proposal(0, 'A'), ctx).outputs, 'decide')).toHaveLength(1);
    const invalid = step(noProposal.state, proposal(0, 'A', -1, false), ctx);
    expect(ofKind(invalid.outputs, 'decide')).toEqual([]);
  });

  it('with 7 validators 4 precommits do not decide and 5 do', () => {
    const ctx = context(0, 7);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), ...[1, 2, 3, 4].map((v) => precommit(v, 0, 'A'))], ctx);
    expect(ofKind(outputs, 'decide')).toEqual([]);
    expect(ofKind(step(state, precommit(5, 0, 'A'), ctx).outputs, 'decide')).toHaveLength(1);
  });
});

describe('round skip', () => {
  it('votes from f+1 distinct validators in a higher round move us there', () => {
    const ctx = context(0);
    const { state } = step(initialState(H), start(), ctx);
    // one validator (f), even with both vote types, is not enough
    const one = feed(state, [prevote(1, 3, null), precommit(1, 3, null)], ctx);
    expect(one.outputs).toEqual([]);
    const two = step(one.state, prevote(2, 3, null), ctx);
    expect(two.state).toMatchObject({ round: 3, step: 'propose' });
    expect(two.outputs).toEqual([
      { kind: 'roundSkip', height: H, round: 3 },
      { kind: 'propose', height: H, round: 3, value: null, validRound: -1 }, // our turn in round 3
      { kind: 'scheduleTimeout', step: 'propose', height: H, round: 3 },
    ]);
  });

  it('a proposal received for a future round is used on entering that round', () => {
    const ctx = context(0);
    const { outputs, state } = feed(initialState(H), [start(), proposal(2, 'F'), prevote(3, 2, 'F'), prevote(2, 2, 'F')], ctx);
    expect(state.round).toBe(2);
    // entering round 2 prevotes F, which with the two buffered prevotes is a polka
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 2, 'F'), ourVote('precommit', 2, 'F')]);
  });

  it("keeps only a validator's two highest rounds above ours (the state stays bounded)", () => {
    const ctx = context(0);
    let { state } = step(initialState(H), start(), ctx);
    ({ state } = feed(state, [prevote(1, 5, null), prevote(1, 6, null)], ctx));
    ({ state } = feed(state, [prevote(1, 4, null)], ctx)); // lower than both: dropped
    expect(Object.keys(state.rounds).sort()).toEqual(['5', '6']);
    ({ state } = feed(state, [precommit(1, 9, null)], ctx)); // higher: evicts round 5
    expect(Object.keys(state.rounds).sort()).toEqual(['6', '9']);
    for (let r = 10; r < 1000; r++) ({ state } = step(state, prevote(1, r, null), ctx));
    expect(Object.keys(state.rounds)).toEqual(['998', '999']);
  });
});

describe('never two different votes in one slot', () => {
  it('feeding the same inputs twice emits each vote once', () => {
    const ctx = context(0);
    const inputs = [start(), proposal(0, 'A'), prevote(1, 0, 'A'), prevote(2, 0, 'A'), timeout('propose', 0), timeout('prevote', 0)];
    const { outputs } = feed(initialState(H), [...inputs, ...inputs], ctx);
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A'), ourVote('precommit', 0, 'A')]);
    // our own votes fed back (as the caller does) are no-ops too
    const echoed = feed(initialState(H), [start(), proposal(0, 'A'), prevote(0, 0, 'A'), prevote(1, 0, 'A'), prevote(2, 0, 'A'), precommit(0, 0, 'A')], ctx);
    expect(votesIn(echoed.outputs)).toEqual([ourVote('prevote', 0, 'A'), ourVote('precommit', 0, 'A')]);
    expect(ofKind(echoed.outputs, 'equivocation')).toEqual([]);
  });

  it('a state restored from JSON or canonical CBOR remembers its votes', () => {
    const ctx = context(0);
    const { state } = feed(initialState(H), [start(), proposal(0, 'A')], ctx);
    const restoredJson = JSON.parse(JSON.stringify(state)) as RoundState;
    const restoredCbor = decodeCanonical(encodeCanonical(state)) as RoundState;
    for (const restored of [restoredJson, restoredCbor]) {
      expect(restored).toEqual(state);
      const again = feed(restored, [start(), proposal(0, 'A'), timeout('propose', 0), prevote(1, 0, null), prevote(2, 0, null), prevote(3, 0, null)], ctx);
      // only the nil precommit is new; no second prevote of any value
      expect(votesIn(again.outputs)).toEqual([ourVote('precommit', 0, null)]);
    }
  });

  it('restored from an older snapshot, it does not contradict its own vote seen again on the network', () => {
    const ctx = context(0);
    const older = step(initialState(H), start(), ctx).state; // before we prevoted A
    const { state, outputs } = feed(older, [prevote(0, 0, 'A'), timeout('propose', 0)], ctx);
    expect(votesIn(outputs)).toEqual([]);
    expect(state.step).toBe('prevote');
  });

  it('step never modifies its input state', () => {
    const ctx = context(0);
    const { state } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(1, 0, 'B')], ctx);
    const frozen = deepFreeze(structuredClone(state));
    const snapshot = structuredClone(frozen);
    const { state: after } = feed(
      frozen,
      [prevote(1, 0, 'A'), prevote(2, 0, 'A'), prevote(3, 0, 'A'), precommit(1, 0, 'A'), precommit(2, 0, 'A'), proposal(1, 'Z'), prevote(3, 7, null)],
      ctx,
    );
    expect(frozen).toEqual(snapshot);
    expect(after.step).toBe('decided');
  });
});

describe('equivocation', () => {
  it('two different votes from one validator in one slot are reported once per pair', () => {
    const ctx = context(0);
    const { outputs } = feed(
      initialState(H),
      [start(), proposal(0, 'A'), prevote(2, 0, 'A'), prevote(2, 0, null), prevote(2, 0, null), prevote(2, 0, 'A')],
      ctx,
    );
    expect(ofKind(outputs, 'equivocation')).toEqual([{ kind: 'equivocation', first: ourVote('prevote', 0, 'A', 2), second: ourVote('prevote', 0, null, 2) }]);
  });

  it('an equivocator counts at most once towards each value', () => {
    const ctx = context(0);
    // 2 votes A then nil; with 1 and 3 voting nil that is a nil polka (1, 2, 3) but A only has 0 and 2
    const { state, outputs } = feed(
      initialState(H),
      [start(), proposal(0, 'A'), prevote(2, 0, 'A'), prevote(2, 0, null), prevote(2, 0, 'A'), prevote(1, 0, null)],
      ctx,
    );
    expect(votesIn(outputs)).toEqual([ourVote('prevote', 0, 'A')]);
    expect(state.step).toBe('prevote');
    const more = step(state, prevote(3, 0, null), ctx);
    expect(votesIn(more.outputs)).toEqual([ourVote('precommit', 0, null)]);
  });

  it('votes for a value nobody proposed or voted for are reported but not kept', () => {
    const ctx = context(0);
    const { state, outputs } = feed(initialState(H), [start(), proposal(0, 'A'), prevote(2, 0, 'A'), prevote(2, 0, 'junk1'), prevote(2, 0, 'junk2')], ctx);
    expect(ofKind(outputs, 'equivocation')).toHaveLength(1); // once for the slot; junk2 adds nothing
    expect(state.rounds['0']!.conflicting.prevote).toEqual({});
  });

  it('nodes that counted different first votes of an equivocator still see the same polka', () => {
    // Nodes 0 and 1 prevote B, node 2 nil. Byzantine 3 sends B to node 0 and nil to node 1 first; gossip
    // brings each node the other one too. B's polka (0, 1, 3) needs 3's vote for B at both nodes.
    const node0 = feed(
      initialState(H),
      [start(), prevote(3, 0, 'B'), proposal(0, 'B'), prevote(2, 0, null), prevote(1, 0, 'B'), prevote(3, 0, null)],
      context(0),
    );
    const node1 = feed(
      initialState(H),
      [start(), prevote(3, 0, null), proposal(0, 'B'), prevote(2, 0, null), prevote(0, 0, 'B'), prevote(3, 0, 'B')],
      context(1),
    );
    for (const node of [node0, node1]) expect(node.state).toMatchObject({ step: 'precommit', lockedValue: 'B' });
  });
});

describe('observer', () => {
  it('a non-validator never votes or proposes, but follows and decides', () => {
    const ctx = context(null);
    const { state, outputs } = feed(
      initialState(H),
      [
        start(),
        timeout('propose', 0),
        prevote(0, 0, null),
        prevote(2, 0, null),
        prevote(3, 0, null),
        precommit(0, 0, null),
        precommit(2, 0, null),
        precommit(3, 0, null),
        timeout('precommit', 0),
        proposal(1, 'B'),
        prevote(1, 1, 'B'),
        prevote(2, 1, 'B'),
        prevote(3, 1, 'B'),
        precommit(1, 1, 'B'),
        precommit(2, 1, 'B'),
        precommit(3, 1, 'B'),
      ],
      ctx,
    );
    expect(votesIn(outputs)).toEqual([]);
    expect(ofKind(outputs, 'propose')).toEqual([]);
    expect(ofKind(outputs, 'decide')).toMatchObject([{ round: 1, value: 'B' }]);
    expect(state.step).toBe('decided');
  });
});

describe('simulation', () => {
  it('4 nodes, one of them dead, random delivery order: all honest nodes decide the same values', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const dead = seed % 4;
      const run = simulate({ n: 4, seed, heights: 3, dead: [dead], maxDelay: 10 });
      for (let height = 1; height <= 3; height++) {
        const values = run.honest.map((i) => run.decisions.get(i)!.get(height) ?? run.synced.get(i)!.get(height));
        expect(
          values.every((v) => v !== undefined && v === values[0]),
          `seed ${seed} height ${height}`,
        ).toBe(true);
      }
      // the dead validator's turn (round 0 of some height) is skipped by the round timeouts
      expect(run.maxDecisionRound).toBeLessThanOrEqual(2);
    }
  });

  it('one byzantine validator sending conflicting votes and proposals never gets two values decided', () => {
    let decided = 0;
    let decidedAfterRound0 = 0;
    let equivocations = 0;
    const schedules = [
      { lateProbability: 0.3, lateDelay: 100 },
      { lateProbability: 0.2, lateDelay: 300 },
    ];
    for (let seed = 1; seed <= 200; seed++) {
      const run = simulate({ n: 4, seed, heights: 3, byzantine: seed % 4, maxDelay: 10, ...schedules[seed % 2]! });
      for (let height = 1; height <= 3; height++) {
        const own = run.honest.flatMap((i) => run.decisions.get(i)!.get(height) ?? []);
        expect(new Set(own).size, `seed ${seed} height ${height}: ${own.join(', ')}`).toBeLessThanOrEqual(1);
        const synced = run.honest.flatMap((i) => run.synced.get(i)!.get(height) ?? []);
        expect(synced.every((v) => v === own[0])).toBe(true);
        decided += own.length;
      }
      // and, with gossip relaying every vote, the honest nodes keep going
      for (const i of run.honest) expect(run.decisions.get(i)!.size + run.synced.get(i)!.size, `seed ${seed}`).toBe(3);
      if (run.maxDecisionRound > 0) decidedAfterRound0++;
      equivocations += run.equivocationsReported;
    }
    // the runs were not trivial: many decisions, some after failed rounds, plenty of equivocation
    expect(decided).toBeGreaterThan(1000);
    expect(decidedAfterRound0).toBeGreaterThan(50);
    expect(equivocations).toBeGreaterThan(1000);
  });
});
