/**
 * The result file of `npm run bench` and its one table: every figure beside its ceiling measured in the same
 * run (Ed25519 verifications per second per core × cores, ÷ nodes where every node verifies every event),
 * the figure as a share of that ceiling, and what bounds it. Figures without a signature ceiling (query
 * latency, memory) are set against their SPEC §9 target instead, and say so.
 */
import type { Ed25519Ceiling } from './ceiling.js';
import { networkCeiling } from './ceiling.js';
import type { LatencyResult, SaturationResult, SocketDrop } from './load.js';
import type { StoreResult } from './store.js';
import type { DelaySpec, ProxyStats } from './wanProxy.js';

/** Time of a height beyond the block period (propose, prevote, precommit, commit), loaded round-0 blocks (load.ts heightTimes). */
export interface Heights {
  samples: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface WanResult {
  delay: DelaySpec;
  nodes: number;
  consensus: { periodMs: number; timeoutProposeMs: number; timeoutVoteMs: number; timeoutDeltaMs: number };
  throughput: SaturationResult & { heightMs: Heights };
  latency: (LatencyResult & { heightMs: Heights })[];
  /** Heights over every loaded window (saturation and each offered rate). */
  heightMs: Heights;
  /** Heights the timeouts are chosen from: the offered rates below the measured saturation, else the lowest one (timeoutBasis). */
  timeoutHeightMs: Heights;
  timeoutBasis: string;
  /** Consensus timeouts that leave room for the measured heights (see suggestTimeouts). */
  suggestedTimeouts: { timeoutProposeMs: number; timeoutVoteMs: number; timeoutDeltaMs: number; basis: string };
  proxies: ProxyStats & { proxies: number };
  /** Connections between nodes that went around the proxies (must be 0). */
  directConnections: number;
}

export interface Figure {
  figure: string;
  value: number | number[];
  unit: string;
  /** The ceiling of this figure in this run (for costs: the floor), or the SPEC target when `against` says so. */
  ceiling: number | null;
  against: 'ed25519 ceiling' | 'ed25519 floor' | 'spec target' | 'load share';
  /** value ÷ ceiling for rates; floor ÷ value for costs; for latency rows, offered load ÷ ceiling. */
  share: number | null;
  boundBy: string;
}

export interface BenchResult {
  schema: 1;
  date: string;
  quick: boolean;
  /** loadAverage: the machine's 1-minute load average at the start and the end (other processes make figures noisy). */
  machine: {
    host: string;
    cpus: number;
    model: string;
    memGiB: number;
    node: string;
    os: string;
    allocator: string;
    loadAverage: { start: number; end: number };
  };
  options: Record<string, unknown>;
  ceiling: Ed25519Ceiling & {
    /** Rates measured at the start and at the end of the run; the ceiling is the higher one. */
    measured: { start: number; end: number };
    /** cores × rate ÷ nodes, for every network size measured. */
    allowsEventsPerSecond: Record<string, number>;
    /** cores × rate: one verifier on all cores (sync, medledger verify). */
    allCoresPerSecond: number;
  };
  throughput: (SaturationResult & {
    heightMs: Heights;
    ceilingEventsPerSecond: number;
    shareOfCeiling: number;
    cpuFloorMicros: number;
    cpuShareOfFloor: number;
  })[];
  latency: (LatencyResult & { heightMs: Heights; offeredShareOfCeiling: number; offeredShareOfSaturation: number | null })[];
  wan: WanResult | null;
  storage: StoreResult | null;
  sync: { eventsPerSecond: number; ceilingEventsPerSecond: number; shareOfCeiling: number } | null;
  verification: { eventsPerSecond: number; ceilingEventsPerSecond: number; shareOfCeiling: number } | null;
  trailQuery: { events: number; p50Ms: number; p99Ms: number; targetMs: number } | null;
  rss: { atStoreRestMB: number | null; servingPeakMB: number | null; syncedNodeMB: number | null; underLoadPeakMB: number; targetMB: number };
  /** Every socket dropped under a request of the load generators (reported, not hidden). */
  socketDrops: SocketDrop[];
  figures: Figure[];
}

/** SPEC §9 targets the figures without a signature ceiling are set against. */
export const TARGETS = { trailMs: 20, rssMB: 250, p99At1000Ms: 2000, eventsPerSecond: 3000, syncPerSecond: 8000, verifyPerSecond: 15000 };

const roundUp = (x: number, step: number) => Math.ceil(x / step) * step;

/**
 * Timeouts from the heights measured under the WAN proxies at loads below saturation, else at the lowest load
 * offered (an overloaded network's heights are as long as its CPU queue, which no timeout should chase): a
 * proposal must reach everyone within
 * timeoutPropose (twice the p99 height leaves room for a slow proposer and a full block), a vote step within
 * timeoutVote (the p99 height: all three message delays of a height fit in it), and each further round adds
 * half a p99 height. Never below four one-way delays (two round trips), rounded up to 50 ms.
 */
export function suggestTimeouts(heightP99Ms: number, oneWayMs: number): WanResult['suggestedTimeouts'] {
  const h = Number.isFinite(heightP99Ms) ? heightP99Ms : 0;
  const floor = 4 * oneWayMs;
  return {
    timeoutProposeMs: roundUp(Math.max(2 * h, floor), 50),
    timeoutVoteMs: roundUp(Math.max(h, floor), 50),
    timeoutDeltaMs: roundUp(Math.max(h / 2, oneWayMs), 50),
    basis: `p99 height beyond the period ${Math.round(h)} ms at ${oneWayMs} ms one way: propose 2×p99, vote 1×p99, delta p99/2, each at least ${floor} ms (two round trips), rounded up to 50 ms`,
  };
}

const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`);
const num = (x: number) => (!Number.isFinite(x) ? '—' : Math.abs(x) < 10 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));

/** The figures of a run, in table order. */
export function figuresOf(r: Omit<BenchResult, 'figures'>): Figure[] {
  const c = r.ceiling;
  const cpuBound = (n: number) => (n > 1 ? `CPU: ${n} nodes share ${c.cores} cores, each verifies every event` : "CPU: one node's main thread");
  const out: Figure[] = [];
  for (const t of r.throughput) {
    out.push({
      figure: t.nodes > 1 ? `events/s final on all ${t.nodes} replicas` : 'events/s final, 1 node',
      value: t.eventsPerSecond,
      unit: 'events/s',
      ceiling: t.ceilingEventsPerSecond,
      against: 'ed25519 ceiling',
      share: t.shareOfCeiling,
      boundBy: cpuBound(t.nodes),
    });
    out.push({
      figure: `CPU per event per node, ${t.nodes} node${t.nodes > 1 ? 's' : ''}`,
      value: t.cpuMicrosPerEventMean,
      unit: 'µs',
      ceiling: t.cpuFloorMicros,
      against: 'ed25519 floor',
      share: t.cpuShareOfFloor,
      boundBy: "share of a node's CPU per event that is its one signature check",
    });
  }
  for (const l of r.latency) {
    out.push({
      figure: `latency p50/p95/p99 at ${num(l.offeredPerSecond)}/s offered, ${l.nodes} nodes`,
      value: [l.p50Ms, l.p95Ms, l.p99Ms],
      unit: 'ms',
      ceiling: r.ceiling.allowsEventsPerSecond[String(l.nodes)] ?? null,
      against: 'load share',
      share: l.offeredShareOfCeiling,
      boundBy: `queueing: offered load ${pct(l.offeredShareOfSaturation)} of measured saturation${l.notFinal > 0 ? `; ${l.notFinal} not final` : ''}`,
    });
  }
  if (r.wan) {
    const w = r.wan;
    const t = w.throughput;
    const ceiling = networkCeiling(c, w.nodes);
    out.push({
      figure: `WAN ${w.delay.oneWayMs}±${w.delay.jitterMs} ms: events/s final on all ${w.nodes}`,
      value: t.eventsPerSecond,
      unit: 'events/s',
      ceiling,
      against: 'ed25519 ceiling',
      share: t.eventsPerSecond / ceiling,
      boundBy: `CPU, and ${w.delay.oneWayMs} ms per message step`,
    });
    for (const l of w.latency) {
      out.push({
        figure: `WAN latency p50/p95/p99 at ${num(l.offeredPerSecond)}/s offered`,
        value: [l.p50Ms, l.p95Ms, l.p99Ms],
        unit: 'ms',
        ceiling,
        against: 'load share',
        share: l.offeredPerSecond / ceiling,
        boundBy: `3 message delays per height + queueing (${pct(l.offeredPerSecond / t.eventsPerSecond)} of WAN saturation)`,
      });
    }
    const lan = r.latency.filter((l) => l.nodes === w.nodes);
    for (const l of w.latency) {
      const same = lan.find((x) => x.offeredPerSecond === l.offeredPerSecond)?.heightMs;
      out.push({
        figure: `WAN height beyond the period p50/p99 at ${num(l.offeredPerSecond)}/s`,
        value: [l.heightMs.p50Ms, l.heightMs.p99Ms],
        unit: 'ms',
        ceiling: 3 * w.delay.oneWayMs,
        against: 'load share',
        share: null,
        boundBy: `≥ 3 one-way delays = ${3 * w.delay.oneWayMs} ms, + CPU${same ? `; without the proxies ${num(same.p50Ms)} / ${num(same.p99Ms)} ms` : ''}`,
      });
    }
  }
  if (r.sync)
    out.push({
      figure: 'sync of a fresh node, fully verified',
      value: r.sync.eventsPerSecond,
      unit: 'events/s',
      ceiling: r.sync.ceilingEventsPerSecond,
      against: 'ed25519 ceiling',
      share: r.sync.shareOfCeiling,
      boundBy: 'CPU: signatures on workers + decode/re-execute/store on one thread',
    });
  if (r.verification)
    out.push({
      figure: `verification (medledger verify), ${c.cores} cores`,
      value: r.verification.eventsPerSecond,
      unit: 'events/s',
      ceiling: r.verification.ceilingEventsPerSecond,
      against: 'ed25519 ceiling',
      share: r.verification.shareOfCeiling,
      boundBy: 'CPU: signatures on workers + re-execution on one thread',
    });
  if (r.trailQuery)
    out.push({
      figure: `patient trail query p50/p99 at ${num(r.trailQuery.events)} events`,
      value: [r.trailQuery.p50Ms, r.trailQuery.p99Ms],
      unit: 'ms',
      ceiling: r.trailQuery.targetMs,
      against: 'spec target',
      share: r.trailQuery.p99Ms / r.trailQuery.targetMs,
      boundBy: 'LevelDB reads (no signature work)',
    });
  if (r.rss.atStoreRestMB !== null)
    out.push({
      figure: `RSS of a node on ${num(r.storage?.events ?? NaN)} events`,
      value: r.rss.atStoreRestMB,
      unit: 'MB',
      ceiling: r.rss.targetMB,
      against: 'spec target',
      share: r.rss.atStoreRestMB / r.rss.targetMB,
      boundBy: 'V8 heap (128 MB old space) + LevelDB caches; its startup integrity pass running',
    });
  if (r.rss.servingPeakMB !== null)
    out.push({
      figure: `RSS peak serving sync / verify of ${num(r.storage?.events ?? NaN)} events`,
      value: [r.storage?.servingNode.rssPeakServingSyncMB ?? NaN, r.storage?.servingNode.rssPeakServingVerifyMB ?? NaN],
      unit: 'MB',
      ceiling: r.rss.targetMB,
      against: 'spec target',
      share: r.rss.servingPeakMB / r.rss.targetMB,
      boundBy: 'chain pages in flight to the syncing node / verifier',
    });
  if (r.rss.syncedNodeMB !== null)
    out.push({
      figure: `RSS peak of the node syncing ${num(r.storage?.events ?? NaN)} events`,
      value: r.rss.syncedNodeMB,
      unit: 'MB',
      ceiling: r.rss.targetMB,
      against: 'spec target',
      share: r.rss.syncedNodeMB / r.rss.targetMB,
      boundBy: 'chain pages received and being verified',
    });
  out.push({
    figure: 'RSS of a node under saturation (peak)',
    value: r.rss.underLoadPeakMB,
    unit: 'MB',
    ceiling: r.rss.targetMB,
    against: 'spec target',
    share: r.rss.underLoadPeakMB / r.rss.targetMB,
    boundBy: 'mempool bounds and load shedding',
  });
  return out;
}

/** The one table of a run, as Markdown (printed, and pasted into README's performance section). */
export function table(r: BenchResult): string {
  const c = r.ceiling;
  const value = (f: Figure) => (Array.isArray(f.value) ? f.value.map(num).join(' / ') : num(f.value)) + ` ${f.unit}`;
  const ceiling = (f: Figure) => {
    if (f.ceiling === null) return '—';
    switch (f.against) {
      case 'ed25519 ceiling':
        return `${num(f.ceiling)} ${f.unit}`;
      case 'ed25519 floor':
        return `≥ ${num(f.ceiling)} µs (1 verification)`;
      case 'spec target':
        return `target ${num(f.ceiling)} ${f.unit}`;
      case 'load share':
        return f.share === null ? `≥ ${num(f.ceiling)} ms` : `load ÷ ${num(f.ceiling)} events/s`;
    }
  };
  const lines = [
    `MedLedger benchmark ${r.date.slice(0, 16).replace('T', ' ')} on ${r.machine.host}: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memGiB} GiB, Node.js ${r.machine.node}, ${r.machine.allocator}; load average ${r.machine.loadAverage.start.toFixed(1)} at the start, ${r.machine.loadAverage.end.toFixed(1)} at the end${r.quick ? ' (QUICK: tiny sizes, not figures)' : ''}`,
    `Ceiling: Ed25519 (${c.implementation}) ${num(c.verifyPerSecondPerCore)} verifications/s per core (${c.microsPerVerify} µs; start ${num(c.measured.start)}, end ${num(c.measured.end)}) × ${c.cores} cores = ${num(c.allCoresPerSecond)}/s; ÷ nodes: ${Object.entries(
      c.allowsEventsPerSecond,
    )
      .map(([n, v]) => `${n} → ${num(v)}`)
      .join(', ')} events/s`,
    '',
    '| figure | measured | ceiling (same run) | share | bound by |',
    '|---|---|---|---|---|',
    ...r.figures.map((f) => `| ${f.figure} | ${value(f)} | ${ceiling(f)} | ${pct(f.share)} | ${f.boundBy} |`),
  ];
  if (r.wan) {
    const w = r.wan;
    const t = w.suggestedTimeouts;
    lines.push(
      '',
      `WAN timeouts from the heights at ${w.timeoutBasis} (p99 ${num(w.timeoutHeightMs.p99Ms)} ms over ${w.timeoutHeightMs.samples} heights): propose ${t.timeoutProposeMs} ms, vote ${t.timeoutVoteMs} ms, delta ${t.timeoutDeltaMs} ms. Run with propose ${w.consensus.timeoutProposeMs}, vote ${w.consensus.timeoutVoteMs}, delta ${w.consensus.timeoutDeltaMs}: ${w.throughput.extraRounds + w.latency.reduce((a, l) => a + l.extraRounds, 0)} rounds beyond 0; ${w.directConnections} connections around the proxies.`,
    );
  }
  const drops = r.socketDrops;
  lines.push(
    '',
    drops.length === 0
      ? 'Socket drops under load: none.'
      : `SOCKET DROPS under load: ${drops.length}, each retried: ${drops.filter((d) => d.processed === true).length} of requests the node had acted on (mid-request), ${drops.filter((d) => d.processed === false).length} of requests that never reached its handler, ${drops.filter((d) => !d.nodeRunning).length} with the node gone: ` +
          drops
            .slice(0, 5)
            .map(
              (d) =>
                `${d.node} (${d.phase}, t+${d.atS} s, ${d.inFlightMs} ms in flight, ${d.cause}, ${d.processed === null ? 'unknown' : d.processed ? 'acted on' : 'not acted on'})`,
            )
            .join('; '),
  );
  return lines.join('\n');
}
