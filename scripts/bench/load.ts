/**
 * Throughput and latency of user-signed audit events on a running network (SPEC §9):
 *
 * - saturation: submits as fast as the nodes admit for a bounded time and count, and reports events/s final
 *   on ALL replicas and each node's CPU time per event over the measured window (/proc utime+stime);
 * - paced latency: offers a given rate for a bounded time and reports submit→final-on-all-replicas percentiles.
 *
 * Patients are spread over the hospitals and submit through their own hospital's node, as real clients do.
 * A node that sheds load (503) is asked again after a pause; a batch whose socket was dropped is sent again
 * (the node answers transactions it already holds as accepted), and every drop is recorded with how long the
 * request had been in flight and whether the node was still running: a drop is reported, never hidden.
 *
 * What the nodes count themselves (events committed, rounds beyond 0, load shed, refusals) is read from each
 * node's GET /metrics before and after a phase; what only the load generator can see (which of its events
 * are final on every replica, and when) is polled from the chain.
 */
import { auditedRead } from '../../test/support/load.js';
import { ApiClient, ApiError, droppedSocket } from '../../src/client/apiClient.js';
import { Session } from '../../src/client/session.js';
import { newUserKeys } from '../../src/cli/networkSetup.js';
import type { ChainBlock } from '../../src/api/contract.js';
import type { Tx } from '../../src/records/tx/types.js';
import { CpuTrace, percentile, RssPeaks, sleep } from './harness.js';
import type { RunningNetwork } from './network.js';
import { fetchMetrics, metricValue, type Sample } from './prometheus.js';

/** A socket dropped under a request of the load generator. */
export interface SocketDrop {
  node: string;
  phase: string;
  /** Seconds since the phase started. */
  atS: number;
  /** How long the request had been in flight when the socket went: ~0 is a stale keep-alive socket, more is a node dropping a request. */
  inFlightMs: number;
  nodeRunning: boolean;
  /** The innermost error (code and message), e.g. UND_ERR_SOCKET "other side closed". */
  cause: string;
  /**
   * Whether the node had admitted the batch's first transaction when asked right after the drop: true means it
   * dropped the socket of a request it had acted on (mid-request); false that the request never reached its
   * handler (e.g. a keep-alive socket the node closed as the request went out); null if it could not be asked.
   */
  processed: boolean | null;
}

/** The innermost cause of an error, as "code: message". */
function innermostCause(err: unknown): string {
  let e = err as { cause?: unknown; code?: unknown; message?: unknown };
  for (let depth = 0; e.cause && depth < 5; depth++) e = e.cause as typeof e;
  return `${typeof e.code === 'string' ? `${e.code}: ` : ''}${String(e.message ?? e)}`.slice(0, 200);
}

/** Whether a node holds (pending or committed) the transaction `id`; null if it does not answer. */
async function knowsTx(api: ApiClient, id: string): Promise<boolean | null> {
  try {
    await api.get(`/v1/tx/${id}`);
    return true;
  } catch (err) {
    return err instanceof ApiError && err.code === 'NOT_FOUND' ? false : null;
  }
}

export interface SubmitStats {
  batches: number;
  offered: number;
  accepted: number;
  /** Transactions refused UNAVAILABLE inside an answered batch (per-transaction shedding). */
  shedPerTx: number;
  otherRejects: number;
  /** Batches refused 503 even after the client's own retries, then sent again. */
  retried503: number;
  socketDrops: SocketDrop[];
  /** Batches given up (after repeated 503s or drops). */
  failedBatches: number;
}

/** What the nodes counted over a phase, from their GET /metrics (after minus before). */
export interface NodeCounts {
  /** Audit events each node committed (every outcome, decided or synced): each should reach the events final. */
  eventsCommitted: number[];
  /** Rounds each node's engine moved beyond round 0. */
  roundChanges: number[];
  /** API submissions the nodes shed (503), by reason, summed over the nodes. */
  shed: Record<string, number>;
  /** Transactions refused at admission (API and gossip), by reason, summed over the nodes; reasons seen only. */
  rejected: Record<string, number>;
}

/** Every node's metrics, in node order. */
export function scrapeMetrics(net: RunningNetwork): Promise<Sample[][]> {
  return Promise.all(net.layout.nodes.map((n) => fetchMetrics(n.apiUrl)));
}

export function countsBetween(before: Sample[][], after: Sample[][]): NodeCounts {
  const delta = (i: number, name: string, labels: Record<string, string> = {}) => metricValue(after[i]!, name, labels) - metricValue(before[i]!, name, labels);
  const byLabel = (name: string, label: string) => {
    const out: Record<string, number> = {};
    for (const [i, samples] of after.entries()) {
      for (const s of samples) {
        const value = s.labels[label];
        if (s.name !== name || value === undefined) continue;
        out[value] = (out[value] ?? 0) + delta(i, name, s.labels);
      }
    }
    return out;
  };
  const nonzero = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== 0));
  return {
    eventsCommitted: after.map((_, i) => delta(i, 'medledger_audit_events_committed_total')),
    roundChanges: after.map((_, i) => delta(i, 'medledger_consensus_round_changes_total')),
    shed: byLabel('medledger_load_shed_total', 'reason'),
    rejected: nonzero(byLabel('medledger_tx_rejected_total', 'reason')),
  };
}

const newStats = (): SubmitStats => ({ batches: 0, offered: 0, accepted: 0, shedPerTx: 0, otherRejects: 0, retried503: 0, socketDrops: [], failedBatches: 0 });

/**
 * The patients of a benchmark in lanes: each lane belongs to one node and owns patients no other lane has, and
 * sends one batch at a time. So one patient's transactions never travel in two batches at once: a proposer that
 * received a later batch before an earlier one (requests interleave in admission, gossip follows) would
 * include the later nonces first and make the earlier, already accepted, ones stale.
 */
export class Patients {
  private readonly lanes: { node: number; patients: Session[]; cursor: number; tail: Promise<void> }[];

  private constructor(byNode: Session[][], lanesPerNode: number) {
    this.lanes = [];
    for (let k = 0; k < lanesPerNode; k++) {
      for (const [node, list] of byNode.entries())
        this.lanes.push({ node, patients: list.filter((_, i) => i % lanesPerNode === k), cursor: 0, tail: Promise.resolve() });
    }
  }

  /** Registers `perLane` patients for each of `lanesPerNode` lanes of every node, each through its own hospital's node. */
  static async register(net: RunningNetwork, perLane: number, lanesPerNode: number): Promise<Patients> {
    const byNode: Session[][] = net.layout.nodes.map(() => []);
    for (let i = 0; i < perLane * lanesPerNode * net.size; i++) {
      const n = net.layout.nodes[i % net.size]!;
      byNode[i % net.size]!.push(new Session(new ApiClient(n.apiUrl), newUserKeys(`pat-${i}`, 'patient', n.hospital), n.hospital));
    }
    const all = byNode.flat();
    for (let i = 0; i < all.length; i += 50) await Promise.all(all.slice(i, i + 50).map((p) => p.registerPatient()));
    return new Patients(byNode, lanesPerNode);
  }

  get laneCount(): number {
    return this.lanes.length;
  }

  /** The node lane `lane` sends to (lanes go round the nodes: lane k is node k mod n). */
  nodeOf(lane: number): number {
    return this.lanes[lane]!.node;
  }

  /** A batch of signed listRecords of the lane's patients on their own data (cheap, valid, always audited). */
  batch(lane: number, size: number): { tx: Tx }[] {
    const l = this.lanes[lane]!;
    return Array.from({ length: size }, () => {
      const p = l.patients[(l.cursor = (l.cursor + 1) % l.patients.length)]!;
      return { tx: auditedRead(p) };
    });
  }

  /** Runs `job` after the lane's previous job (one batch in flight per lane). */
  enqueue(lane: number, job: () => Promise<void>): Promise<void> {
    const l = this.lanes[lane]!;
    const next = l.tail.then(job);
    l.tail = next.catch(() => undefined);
    return next;
  }
}

/** Sends a batch to a node: 503s and dropped sockets are retried (bounded), everything is counted. */
export async function submitBatch(
  net: RunningNetwork,
  node: number,
  batch: { tx: Tx }[],
  stats: SubmitStats,
  phase: string,
  phaseStart: number,
): Promise<string[]> {
  stats.batches++;
  stats.offered += batch.length;
  const api = net.apis[node]!;
  for (let attempt = 0; attempt < 5; attempt++) {
    const sent = performance.now();
    try {
      const r = await api.submitBatch(batch);
      const busy = r.rejected.filter((x) => x.code === 'UNAVAILABLE').length;
      stats.accepted += r.accepted.length;
      stats.shedPerTx += busy;
      stats.otherRejects += r.rejected.length - busy;
      if (busy > 0) await sleep(50);
      return r.accepted;
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) {
        stats.retried503++;
        await sleep(200 * 2 ** attempt);
      } else if (droppedSocket(err)) {
        const inFlightMs = Math.round(performance.now() - sent);
        const nodeRunning = net.procs[node]!.running;
        stats.socketDrops.push({
          node: net.layout.nodes[node]!.name,
          phase,
          atS: Number(((sent - phaseStart) / 1000).toFixed(2)),
          inFlightMs,
          nodeRunning,
          cause: innermostCause(err),
          processed: nodeRunning ? await knowsTx(api, batch[0]!.tx.idHex) : null,
        });
        if (!nodeRunning) break;
        await sleep(100 * 2 ** attempt);
      } else throw err;
    }
  }
  stats.failedBatches++;
  return [];
}

interface SeenBlock {
  height: number;
  time: number;
  round: number;
  txs: number;
}

/** Watches every node's chain and records when each block first appears there (polling, until stop()). */
export class FinalityWatcher {
  private readonly seen: Map<number, number>[];
  readonly txBlock = new Map<string, number>();
  /** Blocks as node 0 lists them (header time, round, size). */
  readonly blocks = new Map<number, SeenBlock>();
  private readonly next: number[];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly apis: ApiClient[]) {
    this.seen = apis.map(() => new Map());
    this.next = apis.map(() => 1);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Promise.all(
        this.apis.map(async (api, i) => {
          try {
            const { blocks } = await api.get<{ blocks: ChainBlock[] }>(`/v1/chain/blocks?from=${this.next[i]}&to=${this.next[i]! + 499}`);
            const now = performance.now();
            for (const b of blocks) {
              this.seen[i]!.set(b.height, now);
              if (i === 0) {
                for (const id of b.txs) this.txBlock.set(id, b.height);
                this.blocks.set(b.height, { height: b.height, time: b.time, round: b.round, txs: b.txs.length });
              }
              this.next[i] = b.height + 1;
            }
          } catch {
            // a busy node that did not answer this time: asked again on the next poll
          }
        }),
      );
      await sleep(20);
    }
  }

  /** When the block holding `id` was final on every node (undefined if not yet). */
  finalAll(id: string): number | undefined {
    const h = this.txBlock.get(id);
    if (h === undefined) return undefined;
    let latest = 0;
    for (const m of this.seen) {
      const t = m.get(h);
      if (t === undefined) return undefined;
      latest = Math.max(latest, t);
    }
    return latest;
  }

  minHeight(): number {
    return Math.min(...this.next) - 1;
  }

  /** The highest block node 0 has listed. */
  headHeight(): number {
    return this.next[0]! - 1;
  }

  /**
   * Waits until every id is final everywhere, at most `timeoutMs`, and no longer than `idleMs` once every node's
   * mempool is empty and nothing more became final (an accepted transaction can still be dropped: evicted from
   * a full mempool, or made stale); returns how many are final.
   */
  async drain(ids: string[], timeoutMs: number, idleMs = 5_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    let pending = ids;
    let lastProgress = performance.now();
    let lastCheck = 0;
    while (performance.now() < deadline) {
      const before = pending.length;
      pending = pending.filter((id) => this.finalAll(id) === undefined);
      if (pending.length === 0) break;
      const now = performance.now();
      if (pending.length < before) lastProgress = now;
      else if (now - lastProgress > idleMs && now - lastCheck > 1_000) {
        lastCheck = now;
        const statuses = await Promise.all(this.apis.map((a) => a.status().catch(() => null)));
        if (statuses.every((st) => st !== null && st.mempool === 0 && st.finalizedHeight <= this.minHeight())) break;
      }
      await sleep(100);
    }
    return ids.length - pending.length;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

export interface SaturationResult {
  nodes: number;
  seconds: number;
  submitted: number;
  final: number;
  /** Accepted by a node but never final within the drain (evicted from a full mempool, or made stale). */
  notFinal: number;
  eventsPerSecond: number;
  blocks: number;
  eventsPerBlock: number;
  /** CPU time of each node over the window (from the first submission until the last event was final everywhere, ±0.2 s). */
  cpuSecondsPerNode: number[];
  cpuMicrosPerEventPerNode: number[];
  cpuMicrosPerEventMean: number;
  loadGeneratorCpuSeconds: number;
  rssPeakMB: number[];
  /** Rounds beyond round 0 during the window, most over the nodes (from /metrics). */
  extraRounds: number;
  /** Load the nodes shed (503 by reason), summed over nodes, during the window (from /metrics). */
  shed: Record<string, number>;
  /** What the nodes counted over the window (GET /metrics). */
  nodeCounts: NodeCounts;
  submit: SubmitStats;
  /** Heights decided while load was offered (every mempool full): heightTimes() reads these. */
  loadedHeights: { from: number; to: number };
}

/** Offers transactions as fast as the nodes admit for `seconds` (at most `maxEvents`), then drains (bounded). */
export async function saturation(
  net: RunningNetwork,
  patients: Patients,
  watcher: FinalityWatcher,
  opts: { seconds: number; maxEvents: number; batch: number; drainMs: number; phase?: string },
): Promise<SaturationResult> {
  const n = net.size;
  const stats = newStats();
  const phase = opts.phase ?? `saturation ${n} nodes`;
  const before = await scrapeMetrics(net);
  const rss = new RssPeaks(() => net.pids());
  const cpuTrace = new CpuTrace(() => net.pids());
  const self0 = process.cpuUsage();
  const startHeight = watcher.minHeight();
  const submitted: string[] = [];
  const t0 = performance.now();
  // One worker per lane, one batch in flight each: the nodes, not the generator, set the pace.
  const worker = async (lane: number) => {
    while (performance.now() - t0 < opts.seconds * 1000 && stats.offered < opts.maxEvents) {
      submitted.push(...(await submitBatch(net, patients.nodeOf(lane), patients.batch(lane, opts.batch), stats, phase, t0)));
    }
  };
  await Promise.all(Array.from({ length: patients.laneCount }, (_, lane) => worker(lane)));
  const loadedHeights = { from: startHeight + 1, to: watcher.headHeight() };
  const final = await watcher.drain(submitted, opts.drainMs);
  const finals = submitted.map((id) => watcher.finalAll(id)).filter((t): t is number => t !== undefined);
  const lastFinal = finals.length > 0 ? finals.reduce((a, b) => Math.max(a, b)) : performance.now();
  cpuTrace.stop();
  // The window: from the first submission until the last event was final everywhere (not the drain's idle tail).
  const cpu = cpuTrace.between(t0, lastFinal);
  const self = process.cpuUsage(self0);
  const nodeCounts = countsBetween(before, await scrapeMetrics(net));
  const blocks = watcher.minHeight() - startHeight;
  const perEvent = cpu.map((c) => (final > 0 ? (1e6 * c) / final : NaN));
  return {
    nodes: n,
    seconds: (lastFinal - t0) / 1000,
    submitted: submitted.length,
    final,
    notFinal: submitted.length - final,
    eventsPerSecond: final / ((lastFinal - t0) / 1000),
    blocks,
    eventsPerBlock: final / Math.max(1, blocks),
    cpuSecondsPerNode: cpu,
    cpuMicrosPerEventPerNode: perEvent,
    cpuMicrosPerEventMean: perEvent.reduce((a, b) => a + b, 0) / n,
    loadGeneratorCpuSeconds: (self.user + self.system) / 1e6,
    rssPeakMB: rss.stop(),
    extraRounds: Math.max(...nodeCounts.roundChanges),
    shed: nodeCounts.shed,
    nodeCounts,
    submit: stats,
    loadedHeights,
  };
}

export interface LatencyResult {
  nodes: number;
  offeredPerSecond: number;
  /** Events accepted per second over the phase (what the nodes took of the offer). */
  acceptedPerSecond: number;
  events: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  notFinal: number;
  /** Rounds beyond round 0 during the phase, most over the nodes (from /metrics). */
  extraRounds: number;
  /** What the nodes counted over the phase (GET /metrics). */
  nodeCounts: NodeCounts;
  submit: SubmitStats;
  /** Heights decided while the rate was offered. */
  loadedHeights: { from: number; to: number };
}

/** Offers `rate` events/s in 50 ms ticks for `seconds` (at most `maxEvents`), then waits (bounded) for finality. */
export async function pacedLatency(
  net: RunningNetwork,
  patients: Patients,
  watcher: FinalityWatcher,
  opts: { rate: number; seconds: number; maxEvents: number; drainMs: number; phase?: string },
): Promise<LatencyResult> {
  const n = net.size;
  const stats = newStats();
  const phase = opts.phase ?? `latency ${opts.rate}/s ${n} nodes`;
  const before = await scrapeMetrics(net);
  const startHeight = watcher.headHeight();
  const paced: { id: string; at: number }[] = [];
  const tick = 50;
  const perTick = Math.max(1, Math.round((opts.rate * tick) / 1000));
  const t1 = performance.now();
  let due = t1;
  let j = 0;
  const jobs: Promise<void>[] = [];
  while (performance.now() - t1 < opts.seconds * 1000 && stats.offered < opts.maxEvents) {
    due += tick;
    // Round the nodes, and round each node's lanes; a lane still busy with its previous batch queues this one
    // (its latency counts from now, when it was offered).
    const lane = j++ % patients.laneCount;
    const at = performance.now();
    jobs.push(
      patients.enqueue(lane, async () => {
        const ids = await submitBatch(net, patients.nodeOf(lane), patients.batch(lane, perTick), stats, phase, t1);
        for (const id of ids) paced.push({ id, at });
      }),
    );
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  // Every submission must have been answered before the drain can tell what is still missing.
  await Promise.all(jobs);
  const offeredS = (performance.now() - t1) / 1000;
  const loadedHeights = { from: startHeight + 1, to: watcher.headHeight() };
  await watcher.drain(
    paced.map((p) => p.id),
    opts.drainMs,
  );
  const lat = paced
    .map((s) => (watcher.finalAll(s.id) ?? NaN) - s.at)
    .filter((x) => Number.isFinite(x))
    .sort((a, b) => a - b);
  const nodeCounts = countsBetween(before, await scrapeMetrics(net));
  return {
    nodes: n,
    offeredPerSecond: opts.rate,
    acceptedPerSecond: paced.length / offeredS,
    events: paced.length,
    p50Ms: percentile(lat, 50),
    p95Ms: percentile(lat, 95),
    p99Ms: percentile(lat, 99),
    maxMs: lat.at(-1) ?? NaN,
    notFinal: paced.length - lat.length,
    extraRounds: Math.max(...nodeCounts.roundChanges),
    nodeCounts,
    submit: stats,
    loadedHeights,
  };
}

/**
 * How long a height takes beyond the block period: differences of consecutive block times (the proposer's
 * clock) minus the period, over round-0 blocks decided while load was offered (windows of saturation() and
 * pacedLatency(); the first block of each window is only the reference of the second, its proposer may have
 * waited for transactions): propose, prevote, precommit, commit, and the CPU they queue for. Under the WAN
 * proxies this is what the consensus timeouts must leave room for.
 */
export function heightTimes(
  watcher: FinalityWatcher,
  windows: { from: number; to: number }[],
  periodMs: number,
): { samples: number; p50Ms: number; p95Ms: number; p99Ms: number; maxMs: number } {
  const xs: number[] = [];
  for (const w of windows) {
    for (let h = w.from + 1; h <= w.to; h++) {
      const b = watcher.blocks.get(h);
      const prev = watcher.blocks.get(h - 1);
      if (!b || !prev || b.round !== 0) continue;
      xs.push(Math.max(0, b.time - prev.time - periodMs));
    }
  }
  xs.sort((a, b) => a - b);
  return { samples: xs.length, p50Ms: percentile(xs, 50), p95Ms: percentile(xs, 95), p99Ms: percentile(xs, 99), maxMs: xs.at(-1) ?? NaN };
}
