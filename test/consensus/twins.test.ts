/**
 * Twins (Bano et al. 2020) against the Tendermint state machine: a bounded slice of the randomized run of
 * scripts/twins.ts (see test/consensus/twins.ts for the model), and proof that the run can fail: the same
 * slice with a deliberately broken rule finds a safety violation.
 */
import { describe, expect, it } from 'vitest';
import { describeScenario, generateScenario, livenessBound, mutations, runScenario, runTwins, type Phase, type Scenario, type TwinsSummary } from './twins.js';

const SEED = 20_200_401;
const SLICE = 1000;

function report(summary: TwinsSummary): string {
  return summary.violations.map((v) => `${v.violation!.message}\n${describeScenario(v.scenario, v)}`).join('\n\n');
}

describe('Twins: byzantine validators run as two honest instances with one key', () => {
  it(`${SLICE} random scenarios (N = 4, and N = 7 with 2 pairs of twins): safe, live after GST, not trivial`, () => {
    const summary = runTwins({ seed: SEED, scenarios: SLICE, stopOnViolation: false });
    expect(summary.violations, report(summary)).toEqual([]);
    expect(summary.scenarios).toBe(SLICE);
    // every scenario had its own delivery order, and nearly all their own partition schedule
    expect(summary.distinctSchedules).toBe(SLICE);
    expect(summary.distinctPartitions).toBeGreaterThan(SLICE * 0.95);
    expect(summary.n7Scenarios).toBeGreaterThan(SLICE * 0.1);
    const t = summary.totals;
    expect(t.decisions).toBeGreaterThan(SLICE * 5); // of up to 3 heights × 3 or 5 honest validators
    expect(t.syncs).toBeGreaterThan(0);
    expect(t.equivocations).toBeGreaterThan(SLICE); // twins equivocate by themselves
    expect(t.roundSkips).toBeGreaterThan(0);
    expect(t.twinDecisions).toBeGreaterThan(0);
    expect(t.twinConflicts).toBe(0); // no quorum certificate for another value exists, even at a twin
    expect(t.dropped).toBeGreaterThan(0);
    expect(t.held).toBeGreaterThan(0);
    expect(summary.decidedAfterRound0).toBeGreaterThan(SLICE / 4);
    expect(summary.maxDecisionRound).toBeGreaterThan(2);
    expect(summary.minSlack).toBeGreaterThan(0);
  });

  it('a scenario is reproducible from the run seed and its index', () => {
    for (const index of [0, 17, 4242]) {
      const a = runScenario(generateScenario(SEED, index));
      const b = runScenario(generateScenario(SEED, index));
      expect(b.scheduleHash).toBe(a.scheduleHash);
      expect(b.stats).toEqual(a.stats);
      expect([...b.honestDecisions]).toEqual([...a.honestDecisions]);
    }
  });

  it('the run can fail: with a quorum of 2 of 4 (every vote also counted for the next validator) it finds conflicting decisions', () => {
    const summary = runTwins({ seed: SEED, scenarios: SLICE, stepFn: mutations.doubleCountVotes });
    expect(summary.violations).toHaveLength(1);
    expect(summary.violations[0]!.violation).toMatchObject({ kind: 'safety' });
    expect(summary.scenarios).toBeLessThan(SLICE / 10);
  });

  it('the run can fail: a validator that ignores its lock lets the twins get two values decided', () => {
    const summary = runTwins({ seed: SEED, scenarios: SLICE, stepFn: mutations.ignoreLocks });
    expect(summary.violations, `no violation in ${summary.scenarios} scenarios`).toHaveLength(1);
    expect(summary.violations[0]!.violation).toMatchObject({ kind: 'safety' });
  });

  /**
   * The textbook Twins attack on locking, written out: validator 3 runs as twins 3a and 3b. Phase 1
   * {1 2 3a} | {0 3b}: validator 1 proposes X in round 0, 1, 2 and 3a prevote and precommit it, and 1
   * decides X. At that moment (the 'decide' trigger) the network cuts 1 and 3a off: {0 2 3b} | {1 3a}.
   * Validator 2 is locked on X without having decided; 0 and 3b never saw X's polka. With locks, 2 prevotes
   * only X, so no other value gets a polka; without them, 0, 2 and 3b move on and decide another value.
   */
  it('the classic split: locks keep it safe, ignoring them decides two values', () => {
    const phase = (groups: number[], duration: number, trigger: Phase['trigger'] = null): Phase => ({
      groups,
      duration,
      trigger,
      isolate: null,
      maxDelay: 10,
      lateProbability: 0,
      lateDelay: 10,
      duplicateProbability: 0,
    });
    const scenario = (seed: number): Scenario => ({
      runSeed: 0,
      index: 0,
      seed,
      n: 4,
      byzantine: [3],
      heights: 1,
      instances: [
        { id: 0, validator: 0, name: '0', twin: false },
        { id: 1, validator: 1, name: '1', twin: false },
        { id: 2, validator: 2, name: '2', twin: false },
        { id: 3, validator: 3, name: '3a', twin: true },
        { id: 4, validator: 3, name: '3b', twin: true },
      ],
      phases: [phase([1, 0, 0, 0, 1], 500, { on: 'decide', lag: 0 }), phase([1, 0, 1, 0, 1], 500), phase([0, 0, 0, 0, 0], Infinity)],
      crossPartition: 'hold',
      invalidProposalProbability: 0,
    });
    let broken = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const sound = runScenario(scenario(seed));
      expect(sound.violation, describeScenario(sound.scenario, sound)).toBeNull();
      expect(sound.stats.timeAfterGst).toBeLessThanOrEqual(livenessBound(sound.scenario, sound.stats.maxRoundAtGst));
      const mutated = runScenario(scenario(seed), { stepFn: mutations.ignoreLocks });
      if (mutated.violation) {
        expect(mutated.violation.kind).toBe('safety');
        broken++;
      }
    }
    expect(broken).toBeGreaterThan(5);
  });
});
