/**
 * "Twins" testing of the Tendermint state machine (Bano, Sonnino, Chursin, Perelman, Li, Ching, Malkhi 2020,
 * "Twins: BFT Systems Made Robust"). A byzantine validator is not programmed to misbehave: it is run as two
 * instances ("twins") of the honest code with the same validator index, each with its own state. Partitioned
 * from each other, the twins propose different blocks and cast different votes in the same slot, so every kind
 * of equivocation the protocol must survive (double proposals, double prevotes, double precommits, conflicting
 * re-proposals with stale validRounds, conflicting commit certificates) arises by itself.
 *
 * A scenario (N = 4 with one byzantine validator, or N = 7 with two, each as twins; 3 heights by default) is
 * a random sequence of network phases. Each phase partitions the instances into groups (twins may sit in
 * different groups) and has its own message delay distribution, with late messages (asynchrony) and
 * duplicates; random delays also reorder deliveries. A phase lasts a drawn time, or ends right after
 * something happens (a lock, a decision, a new round: see Phase.trigger), and the next one may react to it
 * (isolate the deciders, move the validator that just locked: Phase.isolate), which is how an adversary that
 * controls the network hides a decision from validators that then go on without it. Then comes the final
 * phase, which starts at GST: every instance is connected to every other and every message, including the
 * ones sent earlier, arrives within DELTA. What happens to a message whose sender and receiver are not in the
 * same group when it is due (decided at delivery time) depends on the scenario's `crossPartition` policy:
 *
 *  - 'hold': the link buffers it and delivers it as soon as a later phase (at the latest GST) puts sender and
 *    receiver in one group again (partial synchrony in its textbook form: messages sent before GST arrive by
 *    GST + DELTA);
 *  - 'drop': it is lost (as in the Twins paper). When a phase change connects two instances that were apart
 *    (at the latest at GST), the gossip layer catches the new peer up: the sender re-sends what it sent or
 *    relayed for the height it is at (what CometBFT's vote gossip does for a peer that lacks votes).
 *
 * Honest instances relay the byzantine validators' votes they receive (the gossip assumption of the paper,
 * as in sim.ts), and a node behind by a height syncs the block with its commit certificate from an instance
 * it can reach, checking the certificate (as src/node/sync.ts does), either when it sees a message of a
 * higher height or at its periodic status poll.
 *
 * Checks: safety (the honest validators never decide, or sync, two different values at one height; every
 * commit certificate is a quorum of precommits), liveness (after GST every honest validator has decided or
 * synced every height within a bound of simulated time, see livenessBound), and that a run never exceeds its
 * event budget. The twins' own decisions are not checked, only counted (and how many of them differ from
 * the honest one: with a correct protocol no certificate for another value can exist, so that is expected 0).
 */
import {
  initialState,
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
import { seededRandom } from './sim.js';

/** The pure transition function, or a mutated wrapper of it (see `mutations`). */
export type StepFn = (state: RoundState, input: Input, ctx: Context) => { state: RoundState; outputs: Output[] };

export const TIMEOUTS = { timeoutPropose: 40, timeoutVote: 40, timeoutDelta: 20 };
/** Bound on message delay from GST on (ms of simulated time). */
export const DELTA = 10;
const BLOCK_PERIOD = 5;
/** Interval of each instance's status poll (sync when behind). */
const POLL_INTERVAL = 25;

export interface Instance {
  /** Position in the scenario's instance list. */
  id: number;
  /** Validator index (the key it signs with): the same for both twins. */
  validator: number;
  /** "2" for an honest validator, "3a" and "3b" for the twins of validator 3. */
  name: string;
  twin: boolean;
}

export interface Phase {
  /** Group number of each instance (by instance id). */
  groups: number[];
  /** The phase ends after this long (Infinity for the final one) … */
  duration: number;
  /**
   * … or, if sooner, `lag` ms after the first time this happens during it: an honest instance precommits a
   * value ('lock'), an instance decides ('decide'), an honest instance enters a new round ('newRound'). A
   * network adversary that reacts to what it sees cuts the links right where it hurts most, e.g. after a
   * validator locked but before its precommit reached everyone.
   */
  trigger: { on: 'lock' | 'decide' | 'newRound'; lag: number } | null;
  /**
   * Reacting to the previous phase: the instance whose action fired its trigger changes sides: it joins
   * another group (its own if there is no other) ('triggering': e.g. a validator that just locked carries its
   * lock, its precommit still in flight, to validators that did not see the polka); or the instances that
   * decided during it form one group and all the others another ('deciders', replacing `groups` if anyone
   * decided): the rest hear of that decision only when they meet the deciders again, and meanwhile go on
   * without it.
   */
  isolate: 'triggering' | 'deciders' | null;
  /** Delays are uniform in [1, maxDelay] … */
  maxDelay: number;
  /** … except that with this probability a message is late, up to lateDelay. */
  lateProbability: number;
  lateDelay: number;
  /** Probability that a message is delivered twice (at two independent delays). */
  duplicateProbability: number;
}

export interface Scenario {
  /** Master seed of the run and the index of this scenario in it: together they reproduce it. */
  runSeed: number;
  index: number;
  /** Seed of this scenario's PRNG (derived from runSeed and index). */
  seed: number;
  n: number;
  byzantine: number[];
  heights: number;
  instances: Instance[];
  /** The partition phases, then the final healed one (which starts at GST). */
  phases: Phase[];
  crossPartition: 'hold' | 'drop';
  /** Probability that a twin builds an invalid block when it proposes a fresh one. */
  invalidProposalProbability: number;
}

export interface GenerateOptions {
  /** Fraction of scenarios with N = 7 and two byzantine validators (each run as twins); the rest N = 4, f = 1. */
  n7Fraction?: number;
  heights?: number;
}

/** A scenario's seed from the run's seed and its index (splitmix-like mixing). */
export function scenarioSeed(runSeed: number, index: number): number {
  let x = (Math.imul(runSeed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Draws a scenario's network schedule from its seed (the message delays are drawn while it runs). */
export function generateScenario(runSeed: number, index: number, opts: GenerateOptions = {}): Scenario {
  const seed = scenarioSeed(runSeed, index);
  const rng = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

  const big = rng() < (opts.n7Fraction ?? 0.2);
  const n = big ? 7 : 4;
  const f = big ? 2 : 1;
  const validators = [...Array(n).keys()];
  const byzantine: number[] = [];
  while (byzantine.length < f) {
    const v = pick(validators);
    if (!byzantine.includes(v)) byzantine.push(v);
  }
  byzantine.sort((a, b) => a - b);
  const instances: Instance[] = [];
  for (const v of validators) {
    if (byzantine.includes(v)) {
      instances.push({ id: instances.length, validator: v, name: `${v}a`, twin: true });
      instances.push({ id: instances.length, validator: v, name: `${v}b`, twin: true });
    } else {
      instances.push({ id: instances.length, validator: v, name: `${v}`, twin: false });
    }
  }

  const phases: Phase[] = [];
  // Either a few long phases, or many short ones that flap the partition in the middle of rounds.
  const flapping = rng() < 0.5;
  const partitionPhases = flapping ? int(4, 16) : int(1, 6);
  for (let p = 0; p < partitionPhases; p++) {
    // Short phases cut rounds in the middle; long ones let one side run several rounds alone.
    const duration = flapping ? int(5, 60) : rng() < 0.5 ? int(20, 120) : int(120, 500);
    const trigger = rng() < 0.75 ? { on: pick(['lock', 'decide', 'decide', 'newRound'] as const), lag: pick([0, 0, 0, 0, 1, 2, 5, 10]) } : null;
    // A new partition, or the last one with one or two instances moved to another group: a validator that
    // changes sides carries its lock (or its missing view) into a group that decided differently.
    const previous = phases.at(-1)?.groups;
    // The first phase is where the first decision is contested: mostly a quorum split (see drawPartition).
    const groups = !previous
      ? drawPartition(instances, n, rng, [0.6, 0.25])
      : rng() < 0.6
        ? moveInstances(previous, int(1, 2), rng)
        : drawPartition(instances, n, rng, [0.4, 0.3]);
    // React to the previous phase's trigger, if it had one, more often than not.
    const reactTo = phases.at(-1)?.trigger?.on;
    const isolate = reactTo && rng() < 0.7 ? (reactTo === 'decide' && rng() < 0.8 ? 'deciders' : 'triggering') : null;
    phases.push({
      groups,
      duration,
      trigger,
      isolate,
      maxDelay: pick([3, 10, 25, 60]),
      lateProbability: pick([0, 0, 0.1, 0.3]),
      lateDelay: pick([100, 300]),
      duplicateProbability: pick([0, 0.05, 0.2]),
    });
  }
  phases.push({
    groups: instances.map(() => 0),
    duration: Infinity,
    trigger: null,
    isolate: null,
    maxDelay: DELTA,
    lateProbability: 0,
    lateDelay: DELTA,
    duplicateProbability: pick([0, 0.05, 0.2]),
  });
  return {
    runSeed,
    index,
    seed,
    n,
    byzantine,
    heights: opts.heights ?? 3,
    instances,
    phases,
    crossPartition: rng() < 0.6 ? 'hold' : 'drop',
    invalidProposalProbability: rng() < 0.25 ? 0.3 : 0,
  };
}

/**
 * A random partition, drawn one of three ways (with the probabilities `odds` of the first two):
 *  - a quorum split, the sharpest Twins partition: one twin of every byzantine validator with just enough
 *    honest validators for a quorum (2 + 1 twin of 4, 3 + 2 twins of 7) on one side, the other twins with
 *    the remaining honest validators on the other;
 *  - the twins of each byzantine validator in different groups (2 or 3), the honest ones at random;
 *  - 1 to 3 groups drawn at random (1 group = connected but asynchronous).
 */
function drawPartition(instances: Instance[], n: number, rng: () => number, odds: [number, number]): number[] {
  const mode = rng();
  if (mode < odds[0]) {
    const groups = instances.map(() => 1);
    const honest = instances.filter((i) => !i.twin);
    const twins = instances.length - honest.length;
    // the quorum side: a twin of each byzantine validator and quorum(n) - f honest validators
    let wanted = quorum(n) - twins / 2;
    for (const inst of honest) {
      const left = honest.length - honest.indexOf(inst);
      if (rng() < wanted / left) {
        groups[inst.id] = 0;
        wanted--;
      }
    }
    for (const inst of instances) {
      if (!inst.twin || !inst.name.endsWith('a')) continue;
      const other = instances.find((o) => o.validator === inst.validator && o !== inst)!;
      const side = rng() < 0.5 ? 0 : 1;
      groups[inst.id] = side;
      groups[other.id] = 1 - side;
    }
    return groups;
  }
  if (mode < odds[0] + odds[1]) {
    const groups = instances.map(() => 0);
    const sides = rng() < 0.7 ? 2 : 3;
    for (const inst of instances) groups[inst.id] = Math.floor(rng() * sides);
    for (const inst of instances) {
      if (inst.twin && inst.name.endsWith('a')) {
        const other = instances.find((o) => o.validator === inst.validator && o !== inst)!;
        const side = Math.floor(rng() * sides);
        groups[inst.id] = side;
        groups[other.id] = (side + 1 + Math.floor(rng() * (sides - 1))) % sides;
      }
    }
    return groups;
  }
  const count = 1 + Math.floor(rng() * 3);
  return instances.map(() => Math.floor(rng() * count));
}

function moveInstances(previous: number[], moves: number, rng: () => number): number[] {
  const groups = [...previous];
  const count = Math.max(...groups) + 1;
  for (let m = 0; m < moves; m++) {
    const i = Math.floor(rng() * groups.length);
    // to another existing group, or a new one of its own
    const target = Math.floor(rng() * (count + 1));
    groups[i] = target === groups[i] ? count : target;
  }
  return groups;
}

/** The scenario; with its result also when each phase actually began and its groups after any reaction. */
export function describeScenario(sc: Scenario, run?: Pick<ScenarioResult, 'phaseStarts' | 'phaseGroups'>): string {
  const phaseStarts = run?.phaseStarts ?? [];
  const lines = [
    `scenario ${sc.index} of run seed ${sc.runSeed} (scenario seed ${sc.seed}): N=${sc.n}, byzantine ${sc.byzantine.join(', ')} ` +
      `run as twins, ${sc.heights} heights, cross-partition messages: ${sc.crossPartition}, ` +
      `invalid twin blocks: ${sc.invalidProposalProbability}`,
  ];
  sc.phases.forEach((p, i) => {
    const groups = new Map<number, string[]>();
    const actual = run?.phaseGroups[i] ?? p.groups;
    sc.instances.forEach((inst) => groups.set(actual[inst.id]!, [...(groups.get(actual[inst.id]!) ?? []), inst.name]));
    const label = i === sc.phases.length - 1 ? 'GST, healed' : `phase ${i + 1}`;
    const start = i < phaseStarts.length ? ` from t=${phaseStarts[i]}` : i > 0 ? ' (not reached)' : '';
    const ends = p.duration === Infinity ? '' : `, ends after ${p.duration} ms${p.trigger ? ` or ${p.trigger.lag} ms after the first ${p.trigger.on}` : ''}`;
    const reached = run?.phaseGroups[i] !== undefined;
    const reacted = reached && actual.some((g, k) => g !== p.groups[k]);
    const isolate = !p.isolate
      ? ''
      : reached && !reacted
        ? ' (nothing to react to)'
        : p.isolate === 'deciders'
          ? reacted
            ? ' (reacting: the deciders of the previous phase | the rest)'
            : ' (if anyone decided in the previous phase: those | the rest)'
          : reacted
            ? ' (reacting: the instance that fired the previous trigger moved)'
            : ', the instance that fired the previous trigger moved to another group';
    lines.push(
      `  ${label}${start}${ends}: ${[...groups.values()].map((g) => `{${g.join(' ')}}`).join(' | ')}${isolate}; ` +
        `delay 1-${p.maxDelay}, late ${p.lateProbability}@${p.lateDelay}, dup ${p.duplicateProbability}`,
    );
  });
  return lines.join('\n');
}

export interface Violation {
  kind: 'safety' | 'certificate' | 'liveness' | 'budget';
  message: string;
}

export interface ScenarioStats {
  /** Decisions taken by honest instances themselves (decide outputs), and heights they synced instead. */
  decisions: number;
  syncs: number;
  roundSkips: number;
  /** Equivocation outputs at honest instances. */
  equivocations: number;
  /** Fresh blocks the twins built invalid on purpose. */
  invalidProposals: number;
  /** Decisions of twins, and how many of them differ from the honest decision of that height. */
  twinDecisions: number;
  twinConflicts: number;
  maxDecisionRound: number;
  /** Highest round an honest instance was in at GST. */
  maxRoundAtGst: number;
  /** Simulated time from GST until the last honest instance had every height (0 if before GST). */
  timeAfterGst: number;
  events: number;
  /** Deliveries lost under the 'drop' policy and held back until GST under 'hold'. */
  dropped: number;
  held: number;
}

export interface ScenarioResult {
  scenario: Scenario;
  violation: Violation | null;
  stats: ScenarioStats;
  /** When each phase began (simulated ms); the last one reached is GST unless the run ended before. */
  phaseStarts: number[];
  /** The groups of each phase reached, after any reaction (`isolate`). */
  phaseGroups: number[][];
  gst: number | null;
  /** Hash of the partition schedule (phases with their start times, groups, policy, who is byzantine). */
  partitionHash: string;
  /** Hash of the partition schedule and of the order of every delivery (recipient, message). */
  scheduleHash: string;
  /** Height → value decided (or synced) by the honest instances; the first one if they disagree. */
  honestDecisions: Map<number, string>;
}

export interface RunOptions {
  /** Replaces `step` for every instance: a deliberately broken rule, to show the test can fail. */
  stepFn?: StepFn;
  maxEvents?: number;
  /** Called with a line per step, phase change and sync: what happened, to reproduce a violation. */
  trace?: (line: string) => void;
}

/**
 * The bound on simulated time after GST within which every honest validator must have every height. The
 * first height after GST resumes at the highest round anyone reached (timeouts grow with the round); at each
 * height rounds may fail until the proposer is honest and holds the newest polka (the liveness argument of
 * the paper), which takes at most one turn of the n proposers, plus the rounds it takes the honest validators
 * to gather in one round (round skips). So: n + 2 rounds per height, each at most its three timeouts plus a
 * few message delays at the round reached by then, plus the block period and a status poll.
 */
export function livenessBound(sc: Scenario, maxRoundAtGst: number): number {
  const roundsPerHeight = sc.n + 2;
  const roundTime = (r: number) => timeoutMs('propose', r, TIMEOUTS) + timeoutMs('prevote', r, TIMEOUTS) + timeoutMs('precommit', r, TIMEOUTS) + 6 * DELTA;
  let bound = 0;
  for (let h = 0; h < sc.heights; h++) {
    const from = h === 0 ? maxRoundAtGst : 0;
    for (let r = from; r < from + roundsPerHeight; r++) bound += roundTime(r) + BLOCK_PERIOD;
  }
  return bound + 2 * POLL_INTERVAL;
}

/** 64-bit FNV-1a-like hash over small integers, as two 32-bit lanes. */
class Hash {
  private a = 0x811c9dc5;
  private b = 0x01000193;
  add(x: number): void {
    this.a = Math.imul(this.a ^ (x & 0xffff), 16777619);
    this.a = Math.imul(this.a ^ (x >>> 16), 16777619);
    this.b = Math.imul(this.b ^ x, 0x5bd1e995);
    this.b ^= this.b >>> 13;
  }
  copy(): Hash {
    const h = new Hash();
    h.a = this.a;
    h.b = this.b;
    return h;
  }
  hex(): string {
    return (this.a >>> 0).toString(16).padStart(8, '0') + (this.b >>> 0).toString(16).padStart(8, '0');
  }
}

interface NodeRun {
  inst: Instance;
  ctx: Context;
  state: RoundState;
  /** Messages of heights above ours, fed in once we get there. */
  heldBack: Input[];
  /** Height → decision with its certificate (own decision or synced). */
  certified: Map<number, { value: string; round: number; commit: Vote[] }>;
  decidedHeights: number;
  /** Height → messages this instance broadcast (own or relayed), for the gossip catch-up at GST. */
  log: Map<number, Input[]>;
  /** Byzantine votes already relayed. */
  relayed: Set<string>;
}

type Event =
  | { kind: 'deliver'; time: number; seq: number; to: number; from: number; input: Input; msg: number }
  | { kind: 'local'; time: number; seq: number; to: number; input: Input }
  | { kind: 'poll'; time: number; seq: number; to: number }
  | { kind: 'phase'; time: number; seq: number; phase: number };

function inputHeight(input: Input): number {
  return input.kind === 'vote' ? input.vote.height : input.height;
}

function messageKey(input: Input): string {
  if (input.kind === 'vote') {
    const v = input.vote;
    return `v/${v.type}/${v.height}/${v.round}/${v.validator}/${v.value}`;
  }
  if (input.kind === 'proposal') return `p/${input.height}/${input.round}/${input.value}/${input.validRound}`;
  return input.kind;
}

function describeInput(input: Input): string {
  switch (input.kind) {
    case 'vote': {
      const v = input.vote;
      return `${v.type} ${v.validator} r${v.round} ${v.value ?? 'nil'}${v.height !== undefined ? ` h${v.height}` : ''}`;
    }
    case 'proposal':
      return `proposal r${input.round} ${input.value} vr${input.validRound}${input.valid ? '' : ' (invalid)'} h${input.height}`;
    case 'timeout':
      return `timeout ${input.step} r${input.round} h${input.height}`;
    case 'startHeight':
      return `start h${input.height}`;
  }
}

function describeOutput(o: Output): string {
  switch (o.kind) {
    case 'propose':
      return `propose r${o.round} ${o.value ?? '(new block)'}`;
    case 'vote':
      return `${o.vote.type} ${o.vote.value ?? 'nil'}`;
    case 'decide':
      return `DECIDE ${o.value} (round ${o.round})`;
    case 'equivocation':
      return `equivocation of ${o.second.validator}`;
    case 'roundSkip':
      return `skip to r${o.round}`;
    case 'scheduleTimeout':
      return `timeout ${o.step}`;
  }
}

const isValidBlock = (value: string) => !value.startsWith('bad:');

export function runScenario(sc: Scenario, opts: RunOptions = {}): ScenarioResult {
  const stepFn = opts.stepFn ?? step;
  const maxEvents = opts.maxEvents ?? 200_000;
  const rng = seededRandom(sc.seed ^ 0x5eed);
  const proposer = (h: number, r: number) => proposerIndex(sc.n, h, r);
  const byzantine = new Set(sc.byzantine);
  const nodes: NodeRun[] = sc.instances.map((inst) => ({
    inst,
    ctx: { n: sc.n, self: inst.validator, proposer },
    state: initialState(1),
    heldBack: [],
    certified: new Map(),
    decidedHeights: 0,
    log: new Map(),
    relayed: new Set(),
  }));
  const honest = nodes.filter((x) => !x.inst.twin);
  const stats: ScenarioStats = {
    decisions: 0,
    syncs: 0,
    roundSkips: 0,
    equivocations: 0,
    invalidProposals: 0,
    twinDecisions: 0,
    twinConflicts: 0,
    maxDecisionRound: 0,
    maxRoundAtGst: 0,
    timeAfterGst: 0,
    events: 0,
    dropped: 0,
    held: 0,
  };
  const honestDecisions = new Map<number, string>();
  const twinDecided: { height: number; value: string }[] = [];
  let violation: Violation | null = null;

  const partition = new Hash();
  partition.add(sc.n);
  for (const b of sc.byzantine) partition.add(b);
  partition.add(sc.crossPartition === 'hold' ? 1 : 2);
  let groups = sc.phases[0]!.groups;
  for (const g of groups) partition.add(g);
  const schedule = partition.copy();
  const messageIds = new Map<string, number>();
  const messageId = (input: Input) => {
    const key = messageKey(input);
    let id = messageIds.get(key);
    if (id === undefined) messageIds.set(key, (id = messageIds.size));
    return id;
  };

  const queue = new EventQueue<Event>();
  let now = 0;
  let seq = 0;
  let phaseIndex = 0;
  const phaseStarts = [0];
  const phaseGroups = [sc.phases[0]!.groups];
  let triggered = false;
  /** Who fired the current phase's trigger, and who decided during it. */
  let triggering: number | null = null;
  let deciders = new Set<number>();
  let gst = Infinity;
  const held: Extract<Event, { kind: 'deliver' }>[] = [];
  const afterGst = () => phaseIndex === sc.phases.length - 1;
  const connected = (a: number, b: number) => groups[a] === groups[b];

  const local = (to: number, input: Input, delay: number) => queue.push({ kind: 'local', time: now + delay, seq: seq++, to, input });

  /** Sends one message on the link from → to, delayed (and maybe duplicated) as the current phase says. */
  const send = (from: number, to: number, input: Input) => {
    const phase = sc.phases[phaseIndex]!;
    const copies = rng() < phase.duplicateProbability ? 2 : 1;
    const msg = messageId(input);
    for (let c = 0; c < copies; c++) {
      let delay = rng() < phase.lateProbability ? 1 + Math.floor(rng() * phase.lateDelay) : 1 + Math.floor(rng() * phase.maxDelay);
      // partial synchrony: whatever is sent before GST arrives by GST + DELTA at the latest
      // (before GST that is unknown: see the GST adjustment of the messages in flight)
      if (now + delay > gst + DELTA) delay = Math.max(1, gst + 1 + Math.floor(rng() * DELTA) - now);
      queue.push({ kind: 'deliver', time: now + delay, seq: seq++, to, from, input, msg });
    }
  };
  const broadcast = (node: NodeRun, input: Input) => {
    const h = inputHeight(input);
    const log = node.log.get(h) ?? [];
    node.log.set(h, log);
    log.push(input);
    for (const other of nodes) if (other !== node) send(node.inst.id, other.inst.id, input);
  };

  /** Ends the current phase early if its trigger fires. */
  const trigger = (on: 'lock' | 'decide' | 'newRound', by: NodeRun) => {
    const t = sc.phases[phaseIndex]!.trigger;
    if (triggered || t?.on !== on) return;
    triggered = true;
    triggering = by.inst.id;
    queue.push({ kind: 'phase', time: now + t.lag, seq: seq++, phase: phaseIndex + 1 });
  };

  const fail = (kind: Violation['kind'], message: string) => {
    violation ??= { kind, message: `${kind} violation at t=${now}: ${message}` };
  };

  /** Records a decision (own or synced) and checks it against the honest ones. */
  const settle = (node: NodeRun, height: number, value: string, how: string) => {
    if (node.inst.twin) {
      stats.twinDecisions++;
      twinDecided.push({ height, value });
      return;
    }
    const earlier = honestDecisions.get(height);
    if (earlier === undefined) honestDecisions.set(height, value);
    else if (earlier !== value) {
      const others = honest
        .filter((x) => x.certified.has(height))
        .map((x) => `${x.inst.name}: ${x.certified.get(height)!.value} (round ${x.certified.get(height)!.round})`);
      fail('safety', `height ${height}: ${node.inst.name} ${how} ${value}, but honest ${others.join('; ')}`);
    }
  };

  const checkCertificate = (height: number, value: string, round: number, commit: Vote[]): boolean => {
    const signers = new Set(
      commit.filter((v) => v.type === 'precommit' && v.height === height && v.round === round && v.value === value).map((v) => v.validator),
    );
    return signers.size >= quorum(sc.n) && [...signers].every((v) => Number.isInteger(v) && v >= 0 && v < sc.n);
  };

  const moveToNextHeight = (node: NodeRun, height: number) => {
    node.decidedHeights = height;
    if (height >= sc.heights) return; // done: the run ends at the last height
    node.state = initialState(height + 1);
    local(node.inst.id, { kind: 'startHeight', height: height + 1 }, BLOCK_PERIOD);
    const waiting = node.heldBack;
    node.heldBack = waiting.filter((input) => inputHeight(input) > height + 1);
    for (const input of waiting) if (inputHeight(input) === height + 1) local(node.inst.id, input, 0);
  };
  const finished = (node: NodeRun) => node.decidedHeights >= sc.heights;

  /** The sync job: fetch the block of our height, with its certificate, from an instance we can reach. */
  const syncIfBehind = (node: NodeRun) => {
    if (finished(node)) return;
    const height = node.state.height;
    if (node.certified.has(height)) return;
    for (const source of nodes) {
      if (source === node || !connected(node.inst.id, source.inst.id)) continue;
      const cert = source.certified.get(height);
      if (!cert) continue;
      if (!checkCertificate(height, cert.value, cert.round, cert.commit)) {
        fail('certificate', `${source.inst.name} serves height ${height} with a certificate below quorum`);
        return;
      }
      node.certified.set(height, cert);
      opts.trace?.(`t=${now} ${node.inst.name} syncs height ${height} = ${cert.value} from ${source.inst.name}`);
      if (!node.inst.twin) stats.syncs++;
      settle(node, height, cert.value, `synced from ${source.inst.name}`);
      moveToNextHeight(node, height);
      return;
    }
  };

  const handleOutput = (node: NodeRun, o: Output) => {
    switch (o.kind) {
      case 'propose': {
        if (o.value !== null) {
          // a re-proposal of validValue: the state machine has recorded it already
          broadcast(node, { kind: 'proposal', height: o.height, round: o.round, value: o.value, validRound: o.validRound, valid: true });
          break;
        }
        const invalid = node.inst.twin && rng() < sc.invalidProposalProbability;
        if (invalid) stats.invalidProposals++;
        const value = `${invalid ? 'bad:' : ''}${o.height}/${o.round}/${node.inst.name}`;
        const proposal: Input = { kind: 'proposal', height: o.height, round: o.round, value, validRound: -1, valid: isValidBlock(value) };
        local(node.inst.id, proposal, 0); // the caller feeds its block back in
        broadcast(node, proposal);
        break;
      }
      case 'vote':
        broadcast(node, { kind: 'vote', vote: o.vote });
        if (!node.inst.twin && o.vote.type === 'precommit' && o.vote.value !== null) trigger('lock', node);
        break;
      case 'scheduleTimeout':
        local(node.inst.id, { kind: 'timeout', step: o.step, height: o.height, round: o.round }, timeoutMs(o.step, o.round, TIMEOUTS));
        break;
      case 'decide': {
        if (!checkCertificate(o.height, o.value, o.round, o.commit)) {
          fail('certificate', `${node.inst.name} decided ${o.value} at height ${o.height} with a commit below quorum`);
          break;
        }
        node.certified.set(o.height, { value: o.value, round: o.round, commit: o.commit });
        if (!node.inst.twin) {
          stats.decisions++;
          stats.maxDecisionRound = Math.max(stats.maxDecisionRound, o.round);
        }
        settle(node, o.height, o.value, `decided in round ${o.round}`);
        deciders.add(node.inst.id);
        if (!node.inst.twin) trigger('decide', node);
        moveToNextHeight(node, o.height);
        break;
      }
      case 'equivocation':
        if (!node.inst.twin) stats.equivocations++;
        break;
      case 'roundSkip':
        if (!node.inst.twin) stats.roundSkips++;
        break;
    }
  };

  const input = (node: NodeRun, inp: Input) => {
    if (finished(node)) return;
    const height = inputHeight(inp);
    if (height > node.state.height && inp.kind !== 'startHeight') {
      node.heldBack.push(inp);
      syncIfBehind(node);
      return;
    }
    if (height < node.state.height) return; // a past height: nothing to do
    // gossip: relay each byzantine vote once, so that honest nodes see the same votes
    if (!node.inst.twin && inp.kind === 'vote' && byzantine.has(inp.vote.validator)) {
      const key = messageKey(inp);
      if (!node.relayed.has(key)) {
        node.relayed.add(key);
        broadcast(node, inp);
      }
    }
    const round = node.state.round;
    const { state, outputs } = stepFn(node.state, inp, node.ctx);
    node.state = state;
    if (!node.inst.twin && state.height === height && state.round !== round) trigger('newRound', node);
    if (opts.trace) {
      const out = outputs.filter((o) => o.kind !== 'scheduleTimeout').map(describeOutput);
      opts.trace(
        `t=${now} ${node.inst.name} h${state.height} r${state.round} ${state.step}` +
          `${state.lockedRound >= 0 ? ` locked ${state.lockedValue}@${state.lockedRound}` : ''} <- ${describeInput(inp)}` +
          (out.length > 0 ? ` => ${out.join(', ')}` : ''),
      );
    }
    for (const o of outputs) handleOutput(node, o);
  };

  queue.push({ kind: 'phase', time: sc.phases[0]!.duration, seq: seq++, phase: 1 });
  for (const node of nodes) {
    local(node.inst.id, { kind: 'startHeight', height: 1 }, Math.floor(rng() * 3));
    queue.push({ kind: 'poll', time: 1 + Math.floor(rng() * POLL_INTERVAL), seq: seq++, to: node.inst.id });
  }

  let deadline = Infinity;
  for (;;) {
    if (violation) break;
    if (honest.every(finished)) break;
    const event = queue.pop();
    if (!event || event.time > deadline) break;
    if (++stats.events > maxEvents) {
      fail('budget', `more than ${maxEvents} events`);
      break;
    }
    now = event.time;
    switch (event.kind) {
      case 'phase': {
        if (event.phase !== phaseIndex + 1) break; // its other end (duration or trigger) came first
        const before = groups;
        phaseIndex = event.phase;
        phaseStarts.push(now);
        opts.trace?.(`t=${now} phase ${phaseIndex + 1}${afterGst() ? ' (GST)' : ''}`);
        const isolate = sc.phases[phaseIndex]!.isolate;
        const moved = isolate === 'deciders' ? [...deciders] : isolate === 'triggering' && triggering !== null ? [triggering] : [];
        // 'deciders': they form one group, all the others another; 'triggering': that instance changes sides
        groups = isolate === 'deciders' && moved.length > 0 ? groups.map(() => 0) : [...sc.phases[phaseIndex]!.groups];
        const own = Math.max(...groups) + 1;
        for (const i of moved) {
          const others = [...new Set(groups)].filter((g) => g !== groups[i]);
          groups[i] = isolate === 'deciders' || others.length === 0 ? own : others[Math.floor(rng() * others.length)]!;
        }
        phaseGroups.push(groups);
        triggered = false;
        triggering = null;
        deciders = new Set();
        for (const h of [partition, schedule]) {
          h.add(now);
          for (const g of groups) h.add(g);
        }
        if (afterGst()) {
          // GST: everything is connected from now on, and what is in flight arrives within DELTA
          gst = now;
          queue.adjust((e) => (e.kind === 'deliver' && e.time > gst + DELTA ? gst + 1 + Math.floor(rng() * DELTA) : e.time));
          stats.maxRoundAtGst = Math.max(...honest.filter((x) => !finished(x)).map((x) => x.state.round), 0);
          deadline = gst + livenessBound(sc, stats.maxRoundAtGst);
        } else {
          queue.push({ kind: 'phase', time: now + sc.phases[phaseIndex]!.duration, seq: seq++, phase: phaseIndex + 1 });
        }
        const phase = sc.phases[phaseIndex]!;
        const linkDelay = () => 1 + Math.floor(rng() * Math.min(phase.maxDelay, DELTA));
        if (sc.crossPartition === 'hold') {
          // links that are up again deliver what they buffered
          const still: typeof held = [];
          for (const e of held) {
            if (connected(e.from, e.to)) queue.push({ ...e, time: now + linkDelay(), seq: seq++ });
            else still.push(e);
          }
          held.length = 0;
          held.push(...still);
        } else {
          // gossip catches new peers up on the height the sender is at
          for (const node of nodes) {
            const log = node.log.get(node.state.height) ?? [];
            for (const other of nodes) {
              const a = node.inst.id;
              const b = other.inst.id;
              if (other === node || before[a] === before[b] || groups[a] !== groups[b]) continue;
              for (const inp of log) send(a, b, inp);
            }
          }
        }
        break;
      }
      case 'poll':
        syncIfBehind(nodes[event.to]!);
        if (!finished(nodes[event.to]!)) queue.push({ kind: 'poll', time: now + POLL_INTERVAL, seq: seq++, to: event.to });
        break;
      case 'local':
        input(nodes[event.to]!, event.input);
        break;
      case 'deliver':
        if (!connected(event.from, event.to)) {
          if (sc.crossPartition === 'hold') {
            held.push(event);
            stats.held++;
          } else stats.dropped++;
          break;
        }
        schedule.add(event.to);
        schedule.add(event.msg);
        input(nodes[event.to]!, event.input);
        break;
    }
  }

  if (!violation) {
    const behind = honest.filter((x) => !finished(x));
    if (behind.length > 0) {
      const what = behind.map((x) => `${x.inst.name} at height ${x.state.height} round ${x.state.round} step ${x.state.step}`);
      const limit = deadline === Infinity ? 'with nothing left to deliver' : `by GST + ${deadline - gst} ms`;
      fail('liveness', `not every honest validator decided ${sc.heights} heights ${limit}: ${what.join('; ')}`);
    }
  }
  stats.timeAfterGst = gst === Infinity ? 0 : Math.max(0, now - gst);
  for (const { height, value } of twinDecided) {
    const h = honestDecisions.get(height);
    if (h !== undefined && h !== value) stats.twinConflicts++;
  }
  return {
    scenario: sc,
    violation,
    stats,
    phaseStarts,
    phaseGroups,
    gst: gst === Infinity ? null : gst,
    partitionHash: partition.hex(),
    scheduleHash: schedule.hex(),
    honestDecisions,
  };
}

export interface TwinsSummary {
  scenarios: number;
  /** Distinct partition schedules, and distinct partition + delivery-order schedules. */
  distinctPartitions: number;
  distinctSchedules: number;
  n7Scenarios: number;
  totals: Omit<ScenarioStats, 'maxDecisionRound' | 'maxRoundAtGst' | 'timeAfterGst'>;
  maxDecisionRound: number;
  maxRoundAtGst: number;
  /** Longest time from GST to the last honest decision, and the smallest slack left under the bound. */
  maxTimeAfterGst: number;
  minSlack: number;
  /** Scenarios in which some honest validator decided in a round > 0. */
  decidedAfterRound0: number;
  violations: ScenarioResult[];
}

export interface TwinsOptions extends GenerateOptions, RunOptions {
  seed: number;
  scenarios: number;
  /** Index of the first scenario (to run a slice of a larger run). */
  first?: number;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Called after each scenario. */
  onScenario?: (result: ScenarioResult, done: number) => void;
}

export function runTwins(opts: TwinsOptions): TwinsSummary {
  const partitions = new Set<string>();
  const schedules = new Set<string>();
  const summary: TwinsSummary = {
    scenarios: 0,
    distinctPartitions: 0,
    distinctSchedules: 0,
    n7Scenarios: 0,
    totals: {
      decisions: 0,
      syncs: 0,
      roundSkips: 0,
      equivocations: 0,
      invalidProposals: 0,
      twinDecisions: 0,
      twinConflicts: 0,
      events: 0,
      dropped: 0,
      held: 0,
    },
    maxDecisionRound: 0,
    maxRoundAtGst: 0,
    maxTimeAfterGst: 0,
    minSlack: Infinity,
    decidedAfterRound0: 0,
    violations: [],
  };
  const first = opts.first ?? 0;
  for (let index = first; index < first + opts.scenarios; index++) {
    const sc = generateScenario(opts.seed, index, opts);
    const result = runScenario(sc, opts);
    summary.scenarios++;
    if (sc.n === 7) summary.n7Scenarios++;
    partitions.add(result.partitionHash);
    schedules.add(result.scheduleHash);
    const s = result.stats;
    for (const key of Object.keys(summary.totals) as (keyof TwinsSummary['totals'])[]) summary.totals[key] += s[key];
    summary.maxDecisionRound = Math.max(summary.maxDecisionRound, s.maxDecisionRound);
    summary.maxRoundAtGst = Math.max(summary.maxRoundAtGst, s.maxRoundAtGst);
    summary.maxTimeAfterGst = Math.max(summary.maxTimeAfterGst, s.timeAfterGst);
    if (!result.violation) summary.minSlack = Math.min(summary.minSlack, livenessBound(sc, s.maxRoundAtGst) - s.timeAfterGst);
    if (s.maxDecisionRound > 0) summary.decidedAfterRound0++;
    opts.onScenario?.(result, summary.scenarios);
    if (result.violation) {
      summary.violations.push(result);
      if (opts.stopOnViolation ?? true) break;
    }
  }
  summary.distinctPartitions = partitions.size;
  summary.distinctSchedules = schedules.size;
  return summary;
}

/**
 * Deliberately broken versions of the state machine, to show that the twins run catches broken rules.
 * Each wraps the real `step`.
 */
export const mutations: Record<'ignoreLocks' | 'doubleCountVotes', StepFn> = {
  /**
   * Amnesia: the validator ignores its lock and its valid value (each step starts from a state without them),
   * so it prevotes any valid fresh proposal and never re-proposes the value a polka formed for.
   */
  ignoreLocks(state, input, ctx) {
    return step({ ...state, lockedRound: -1, lockedValue: null, validRound: -1, validValue: null }, input, ctx);
  },
  /**
   * A quorum of 2 of 4: every vote received also counts as a vote of the next validator, so two
   * validators' votes (ours and one more, or one twin's and one more) already make the 3 the code asks for.
   */
  doubleCountVotes(state, input, ctx) {
    const first = step(state, input, ctx);
    if (input.kind !== 'vote') return first;
    let validator = (input.vote.validator + 1) % ctx.n;
    if (validator === ctx.self) validator = (validator + 1) % ctx.n; // never in our own slot: we must still vote
    const ghost: Input = { kind: 'vote', vote: { ...input.vote, validator } };
    const second = step(first.state, ghost, ctx);
    return { state: second.state, outputs: [...first.outputs, ...second.outputs] };
  },
};

/** Binary min-heap by (time, seq): the earliest first, ties in scheduling order. */
class EventQueue<E extends { time: number; seq: number }> {
  private readonly heap: E[] = [];

  push(e: E): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!earlier(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  /** Changes the time of queued events (`time` returns the new one) and restores the heap order. */
  adjust(time: (e: E) => number): void {
    const h = this.heap;
    for (const e of h) e.time = time(e);
    for (let i = (h.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  pop(): E | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && earlier(h[l]!, h[min]!)) min = l;
      if (r < h.length && earlier(h[r]!, h[min]!)) min = r;
      if (min === i) break;
      [h[i], h[min]] = [h[min]!, h[i]!];
      i = min;
    }
  }
}

function earlier(a: { time: number; seq: number }, b: { time: number; seq: number }): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
