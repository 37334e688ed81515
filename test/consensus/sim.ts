/**
 * Deterministic discrete-event simulation of N Tendermint state machines over an in-memory message bus.
 * Logical time only: each message gets a random delay from a seeded PRNG, so one seed is one reproducible
 * delivery order. A node plays the caller's part: it builds blocks, gossips its votes, arms timers, and
 * holds back messages for heights it has not reached yet (the real caller's sync job).
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
} from '../../src/consensus/tendermint.js';

/** mulberry32: a tiny seeded PRNG, good enough to shuffle schedules reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimOptions {
  n: number;
  seed: number;
  /** Heights to decide, starting at 1. */
  heights: number;
  /** Validators that never send nor receive anything. */
  dead?: number[];
  /** A validator that equivocates: conflicting proposals and votes to different nodes. */
  byzantine?: number | null;
  /** Usual message delay is uniform in [1, maxDelay] ms. */
  maxDelay: number;
  /** With this probability a message is instead delayed up to lateDelay ms (asynchrony). */
  lateProbability?: number;
  lateDelay?: number;
  maxEvents?: number;
}

export interface SimResult {
  /** Honest node → height → value it decided itself. */
  decisions: Map<number, Map<number, string>>;
  /** Honest node → height → value it took over from another node by sync instead. */
  synced: Map<number, Map<number, string>>;
  /** Honest nodes (neither dead nor byzantine). */
  honest: number[];
  /** Highest round any decision was taken in. */
  maxDecisionRound: number;
  equivocationsReported: number;
  events: number;
}

const TIMEOUTS = { timeoutPropose: 40, timeoutVote: 40, timeoutDelta: 20 };
const BLOCK_PERIOD = 5;

interface Event {
  time: number;
  seq: number;
  to: number;
  input: Input;
}

function inputHeight(input: Input): number {
  return input.kind === 'vote' ? input.vote.height : input.height;
}

export function simulate(opts: SimOptions): SimResult {
  const { n, heights } = opts;
  const rng = seededRandom(opts.seed);
  const dead = new Set(opts.dead ?? []);
  const byzantine = opts.byzantine ?? null;
  const honest = [...Array(n).keys()].filter((i) => !dead.has(i) && i !== byzantine);
  const proposer = (h: number, r: number) => proposerIndex(n, h, r);
  const maxEvents = opts.maxEvents ?? 20_000;

  const states = new Map<number, RoundState>(honest.map((i) => [i, initialState(1)]));
  const heldBack = new Map<number, Input[]>(honest.map((i) => [i, []]));
  const decisions = new Map<number, Map<number, string>>(honest.map((i) => [i, new Map()]));
  const synced = new Map<number, Map<number, string>>(honest.map((i) => [i, new Map()]));
  const contexts = new Map<number, Context>(honest.map((i) => [i, { n, self: i, proposer }]));
  let maxDecisionRound = 0;
  let equivocationsReported = 0;

  const queue = new EventQueue();
  let now = 0;
  let seq = 0;
  const enqueue = (to: number, input: Input, delay: number) => {
    if (dead.has(to) || to === byzantine) return;
    queue.push({ time: now + delay, seq: seq++, to, input });
  };
  const networkDelay = () =>
    rng() < (opts.lateProbability ?? 0) ? 1 + Math.floor(rng() * (opts.lateDelay ?? opts.maxDelay)) : 1 + Math.floor(rng() * opts.maxDelay);
  const broadcast = (from: number, input: Input) => {
    for (let to = 0; to < n; to++) if (to !== from) enqueue(to, input, networkDelay());
  };
  const adversary = byzantine === null ? null : new Equivocator(byzantine, honest, rng, proposer, enqueue, networkDelay);

  const handleOutput = (node: number, o: Output) => {
    switch (o.kind) {
      case 'propose': {
        const value = o.value ?? `blk:${o.height}:${o.round}:${node}`;
        const proposal: Input = { kind: 'proposal', height: o.height, round: o.round, value, validRound: o.validRound, valid: true };
        enqueue(node, proposal, 0); // the caller feeds its block back in
        broadcast(node, proposal);
        adversary?.observe(o.height, o.round, value);
        break;
      }
      case 'vote':
        enqueue(node, { kind: 'vote', vote: o.vote }, 0); // fed back in: must be a no-op
        broadcast(node, { kind: 'vote', vote: o.vote });
        adversary?.observe(o.vote.height, o.vote.round, o.vote.value);
        break;
      case 'scheduleTimeout':
        enqueue(node, { kind: 'timeout', step: o.step, height: o.height, round: o.round }, timeoutMs(o.step, o.round, TIMEOUTS));
        break;
      case 'decide': {
        const votes = o.commit.filter((v) => v.type === 'precommit' && v.value === o.value && v.round === o.round);
        if (new Set(votes.map((v) => v.validator)).size < quorum(n)) throw new Error(`node ${node}: commit below quorum`);
        decisions.get(node)!.set(o.height, o.value);
        maxDecisionRound = Math.max(maxDecisionRound, o.round);
        moveToNextHeight(node, o.height);
        break;
      }
      case 'equivocation':
        equivocationsReported++;
        break;
      case 'roundSkip':
        break;
    }
  };

  function moveToNextHeight(node: number, height: number): void {
    // Wait the block period before the next height, but collect its messages meanwhile.
    states.set(node, initialState(height + 1));
    enqueue(node, { kind: 'startHeight', height: height + 1 }, BLOCK_PERIOD);
    const held = heldBack.get(node)!;
    heldBack.set(
      node,
      held.filter((input) => inputHeight(input) > height + 1),
    );
    for (const input of held) if (inputHeight(input) === height + 1) enqueue(node, input, 0);
  }

  /** The caller's sync: a node that hears of a higher height fetches the block another node committed. */
  function syncIfBehind(node: number): void {
    const height = states.get(node)!.height;
    const source = honest.find((i) => decisions.get(i)!.has(height));
    if (source === undefined) return;
    synced.get(node)!.set(height, decisions.get(source)!.get(height)!);
    moveToNextHeight(node, height);
  }

  /**
   * Gossip relays what it receives, so every honest node eventually gets every vote some honest node got,
   * including each of a byzantine validator's conflicting votes (the paper's gossip assumption).
   * Honest votes are already sent to everyone directly.
   */
  const relayed = honest.map(() => new Set<string>());
  function relayByzantineVote(node: number, input: Input): void {
    if (input.kind !== 'vote' || input.vote.validator !== byzantine) return;
    const seen = relayed[honest.indexOf(node)]!;
    const { type, height, round, value } = input.vote;
    const id = `${type}/${height}/${round}/${value}`;
    if (seen.has(id)) return;
    seen.add(id);
    broadcast(node, input);
  }

  for (const node of honest) enqueue(node, { kind: 'startHeight', height: 1 }, Math.floor(rng() * 3));

  const finished = (i: number) => decisions.get(i)!.size + synced.get(i)!.size >= heights;
  const done = () => honest.every(finished);
  let events = 0;
  while (!done() && events < maxEvents) {
    const event = queue.pop();
    if (!event) {
      // Nothing in flight, yet someone is behind: the caller's periodic status poll would notice and sync.
      const behind = honest.filter((i) => !finished(i) && honest.some((j) => decisions.get(j)!.has(states.get(i)!.height)));
      if (behind.length === 0) break;
      behind.forEach(syncIfBehind);
      continue;
    }
    events++;
    now = event.time;
    const node = event.to;
    const before = states.get(node)!;
    if (inputHeight(event.input) > before.height && event.input.kind !== 'startHeight') {
      heldBack.get(node)!.push(event.input);
      if (!finished(node)) syncIfBehind(node);
      continue;
    }
    if (inputHeight(event.input) > heights) continue; // past the end of the run
    relayByzantineVote(node, event.input);
    const { state, outputs } = step(before, event.input, contexts.get(node)!);
    states.set(node, state);
    if (state.started && (state.round !== before.round || !before.started)) adversary?.observe(state.height, state.round);
    for (const o of outputs) handleOutput(node, o);
  }
  return { decisions, synced, honest, maxDecisionRound, equivocationsReported, events };
}

/** Binary min-heap of events by (time, seq): the earliest first, ties in sending order. */
class EventQueue {
  private readonly heap: Event[] = [];

  push(e: Event): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!earlier(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ;) {
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
    return top;
  }
}

function earlier(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/**
 * A byzantine validator that sees every honest message as it is sent and answers each with conflicting
 * votes (a random known value or nil, chosen separately for every recipient), and when it is the proposer
 * sends different proposals, with random validRound claims, to different nodes.
 */
class Equivocator {
  private readonly known = new Map<number, string[]>();
  private readonly bursts = new Map<string, number>();
  private readonly proposed = new Set<string>();

  constructor(
    private readonly index: number,
    private readonly honest: number[],
    private readonly rng: () => number,
    private readonly proposer: (h: number, r: number) => number,
    private readonly send: (to: number, input: Input, delay: number) => void,
    private readonly delay: () => number,
  ) {}

  observe(height: number, round: number, value?: string | null): void {
    const values = this.known.get(height) ?? [];
    this.known.set(height, values);
    if (typeof value === 'string' && !values.includes(value)) values.push(value);
    const slot = `${height}/${round}`;
    if (this.proposer(height, round) === this.index && !this.proposed.has(slot)) {
      this.proposed.add(slot);
      const options = [`byz:${height}:${round}:a`, `byz:${height}:${round}:b`, ...values];
      for (const to of this.honest) {
        const v = this.pick(options)!;
        const validRound = Math.floor(this.rng() * (round + 1)) - 1;
        this.send(to, { kind: 'proposal', height, round, value: v, validRound, valid: true }, this.delay());
        if (!values.includes(v)) values.push(v);
      }
    }
    const burst = this.bursts.get(slot) ?? 0;
    if (burst >= 4) return; // enough conflicting votes for one round
    this.bursts.set(slot, burst + 1);
    for (const to of this.honest) {
      for (const type of ['prevote', 'precommit'] as const) {
        const v = this.rng() < 0.25 ? null : (this.pick(values) ?? null);
        this.send(to, { kind: 'vote', vote: { type, height, round, validator: this.index, value: v } }, this.delay());
      }
    }
  }

  private pick<T>(items: T[]): T | undefined {
    return items[Math.floor(this.rng() * items.length)];
  }
}
