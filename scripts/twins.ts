/**
 * The full Twins run (Bano et al. 2020) against the pure Tendermint state machine: each byzantine validator
 * runs as two honest instances with the same key, under random partitions, delays, reordering and
 * duplication, then GST. Model and checks: test/consensus/twins.ts; a slice runs in test/consensus/twins.test.ts.
 *
 *   npx tsx scripts/twins.ts [--scenarios 10000] [--seed S] [--n7-fraction 0.2] [--heights 3]
 *   npx tsx scripts/twins.ts --seed S --only K [--trace]      # replay scenario K of run S
 *   npx tsx scripts/twins.ts --mutation ignoreLocks            # a broken rule, to see a violation found
 *
 * Without --seed a random one is drawn and printed. Prints the number of scenarios, of distinct schedules
 * (hash of each scenario's partition schedule and delivery order) and of distinct partition schedules.
 * Bounded: a fixed number of scenarios, each with a simulated-time deadline and an event budget. Exits 1 on
 * the first safety, certificate, liveness or budget violation, printing the seed and scenario to replay it.
 */
import { parseArgs } from 'node:util';
import {
  describeScenario,
  generateScenario,
  livenessBound,
  mutations,
  runScenario,
  runTwins,
  type ScenarioResult,
  type StepFn,
} from '../test/consensus/twins.js';

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    'n7-fraction': { type: 'string', default: '0.2' },
    heights: { type: 'string', default: '3' },
    only: { type: 'string' },
    trace: { type: 'boolean', default: false },
    mutation: { type: 'string' },
    'keep-going': { type: 'boolean', default: false },
  },
});

function integer(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    console.error(`--${name} must be an integer ≥ ${min}, got ${text}`);
    process.exit(2);
  }
  return value;
}

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : integer('seed', values.seed, 0);
const scenarios = integer('scenarios', values.scenarios, 1);
const heights = integer('heights', values.heights, 1);
const n7Fraction = Number(values['n7-fraction']);
if (!(n7Fraction >= 0 && n7Fraction <= 1)) {
  console.error(`--n7-fraction must be in [0, 1], got ${values['n7-fraction']}`);
  process.exit(2);
}
let stepFn: StepFn | undefined;
if (values.mutation !== undefined) {
  if (!Object.hasOwn(mutations, values.mutation)) {
    console.error(`--mutation must be one of ${Object.keys(mutations).join(', ')}`);
    process.exit(2);
  }
  stepFn = mutations[values.mutation as keyof typeof mutations];
}
const generate = { n7Fraction, heights };
const replay = (index: number) =>
  `npx tsx scripts/twins.ts --seed ${seed} --only ${index} --n7-fraction ${n7Fraction} --heights ${heights}` +
  `${values.mutation ? ` --mutation ${values.mutation}` : ''} --trace`;

function printViolation(result: ScenarioResult): void {
  console.log(`\nVIOLATION in scenario ${result.scenario.index} of seed ${seed}`);
  console.log(result.violation!.message);
  console.log(describeScenario(result.scenario, result));
  console.log(`replay: ${replay(result.scenario.index)}`);
}

if (values.only !== undefined) {
  const index = integer('only', values.only, 0);
  const scenario = generateScenario(seed, index, generate);
  const result = runScenario(scenario, { stepFn, trace: values.trace ? (line) => console.log(line) : undefined });
  console.log(JSON.stringify({ ...result.stats, honestDecisions: Object.fromEntries(result.honestDecisions) }));
  if (result.violation) {
    printViolation(result);
    process.exit(1);
  }
  console.log(describeScenario(scenario, result));
  console.log('no violation');
  process.exit(0);
}

console.log(
  `Twins: ${scenarios} scenarios, seed ${seed}, N=4 (1 byzantine validator as twins) and N=7 (2 as twins) in ` +
    `${Math.round(n7Fraction * 100)}% of them, ${heights} heights each${values.mutation ? `, MUTATION ${values.mutation}` : ''}`,
);
const started = performance.now();
const progressEvery = Math.max(1, Math.floor(scenarios / 10));
const summary = runTwins({
  seed,
  scenarios,
  ...generate,
  stepFn,
  stopOnViolation: !values['keep-going'],
  onScenario: (result, done) => {
    if (result.violation) printViolation(result);
    if (done % progressEvery === 0) {
      console.error(`  ${done}/${scenarios} scenarios, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  },
});
const seconds = (performance.now() - started) / 1000;
const t = summary.totals;
console.log(`scenarios run:                 ${summary.scenarios} (${summary.n7Scenarios} with N=7) in ${seconds.toFixed(1)} s`);
console.log(`distinct schedules:            ${summary.distinctSchedules} (partitions + delivery order)`);
console.log(`distinct partition schedules:  ${summary.distinctPartitions}`);
console.log(
  `honest decisions / syncs:      ${t.decisions} / ${t.syncs} (decided after round 0 in ${summary.decidedAfterRound0} scenarios, highest round ${summary.maxDecisionRound})`,
);
console.log(`round skips:                   ${t.roundSkips}`);
console.log(`equivocations seen (honest):   ${t.equivocations}`);
console.log(`invalid blocks proposed:       ${t.invalidProposals}`);
console.log(`twin decisions:                ${t.twinDecisions} (${t.twinConflicts} conflicting with the honest one)`);
console.log(`messages dropped / held:       ${t.dropped} / ${t.held} (cut by partitions)`);
console.log(`events:                        ${t.events}`);
console.log(
  `liveness after GST:            slowest ${summary.maxTimeAfterGst} ms of simulated time; smallest slack under ` +
    `the bound ${summary.minSlack === Infinity ? '-' : `${summary.minSlack} ms`} (highest round at GST ${summary.maxRoundAtGst}; ` +
    `bound for N=4 from round 0: ${livenessBound(generateScenario(seed, 0, { ...generate, n7Fraction: 0 }), 0)} ms)`,
);
if (summary.violations.length > 0) {
  console.log(`\n${summary.violations.length} violation(s); first: scenario ${summary.violations[0]!.scenario.index}, seed ${seed}`);
  console.log(`replay: ${replay(summary.violations[0]!.scenario.index)}`);
  process.exit(1);
}
console.log('no violation');
