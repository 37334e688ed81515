/**
 * `npm run bench`: the benchmarks that compare (SPEC §9, issue "Step 9 — Performance"), in one run that prints
 * one table and writes bench-results/<date>-<host>.json:
 *
 *   npm run bench -- [--quick] [--nodes 1,4,7] [--wan] [--rates 500,1000,2000] [--seconds 20]
 *                    [--latency-seconds 15] [--store-events 1000000] [--skip store,latency] [--out DIR]
 *
 * 1. the ceiling: Ed25519 verifications per second per core with the implementation in use (at the start and
 *    at the end of the run; the higher counts), and what it allows: cores × rate ÷ nodes;
 * 2. for each network size of --nodes: saturation throughput (events/s final on all replicas) and CPU µs per
 *    event per node; on the 4-node network (or the first size given) latency p50/p95/p99 at each offered rate;
 * 3. with --wan: the same on 4 nodes with a delaying proxy between every pair (bench/wanProxy.ts), the time a
 *    height takes, and the consensus timeouts that leave room for it;
 * 4. storage at --store-events: patient trail query p50/p99, a node's resident memory, sync of a fresh node,
 *    `medledger verify` of the chain.
 * --quick runs every part at a tiny size (the test in test/bench/ does, so the scripts cannot rot).
 * Only 127.0.0.1; every loop is bounded in count and time; node processes are started and stopped by PID.
 */
import '../src/polyfill.js';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { consensusParamsSchema } from '../src/consensus/genesis.js';
import { measureEd25519, networkCeiling, type Ed25519Ceiling } from './bench/ceiling.js';
import { machine, writeJson } from './bench/harness.js';
import { FinalityWatcher, heightTimes, pacedLatency, Patients, saturation, type LatencyResult, type SaturationResult } from './bench/load.js';
import { RunningNetwork, stopOnInterrupt } from './bench/network.js';
import { figuresOf, suggestTimeouts, table, TARGETS, type BenchResult, type WanResult } from './bench/report.js';
import { storeBenchmark, type StoreResult } from './bench/store.js';
import { DEFAULT_WAN, type DelaySpec } from './bench/wanProxy.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '1,4,7' },
    wan: { type: 'boolean', default: false },
    'wan-delay': { type: 'string', default: String(DEFAULT_WAN.oneWayMs) },
    'wan-jitter': { type: 'string', default: String(DEFAULT_WAN.jitterMs) },
    rates: { type: 'string' },
    seconds: { type: 'string' },
    'latency-seconds': { type: 'string' },
    'store-events': { type: 'string' },
    skip: { type: 'string', default: '' },
    out: { type: 'string', default: 'bench-results' },
    'log-level': { type: 'string', default: 'warn' },
  },
});

const QUICK = values.quick;
const SIZES = {
  seconds: Number(values.seconds ?? (QUICK ? 2 : 20)),
  latencySeconds: Number(values['latency-seconds'] ?? (QUICK ? 1 : 15)),
  maxEvents: QUICK ? 1_500 : 200_000,
  batch: QUICK ? 100 : 250,
  drainMs: QUICK ? 30_000 : 120_000,
  patients: QUICK ? 40 : 200,
  ceilingCount: QUICK ? 2_000 : 20_000,
  storeEvents: Number(values['store-events'] ?? (QUICK ? 2_000 : 1_000_000)),
  storePatients: QUICK ? 200 : 10_000,
  storeBlock: QUICK ? 200 : 2_000,
  queries: QUICK ? 40 : 200,
};
const NODES = values.nodes
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n >= 1);
const RATES = (values.rates ?? (QUICK ? '100,200,400' : '500,1000,2000'))
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const SKIP = new Set(values.skip.split(',').filter(Boolean));
const LATENCY_NODES = NODES.includes(4) ? 4 : NODES[0]!;
const WAN: DelaySpec = { ...DEFAULT_WAN, oneWayMs: Number(values['wan-delay']), jitterMs: Number(values['wan-jitter']) };
const log = (line: string) => console.log(line);

type Heights = ReturnType<typeof heightTimes>;
interface NetworkRun {
  throughput: SaturationResult & { heightMs: Heights };
  latency: (LatencyResult & { heightMs: Heights })[];
  /** Heights over every loaded window, and over the calm ones the timeouts are chosen from (timeoutBasis). */
  heightMs: Heights;
  timeoutHeightMs: Heights;
  timeoutBasis: string;
  direct: number;
  proxies: WanResult['proxies'] | null;
}

/** One network size: saturation, and latency at each rate when asked; the network is stopped afterwards. */
async function networkRun(nodes: number, opts: { latency: boolean; wan?: DelaySpec }): Promise<NetworkRun> {
  const label = `${nodes} node${nodes > 1 ? 's' : ''}${opts.wan ? `, WAN ${opts.wan.oneWayMs}±${opts.wan.jitterMs} ms` : ''}`;
  const period = consensusParamsSchema.parse({}).periodMs;
  const net = await RunningNetwork.start({ nodes, logLevel: values['log-level']!, ...(opts.wan ? { wan: opts.wan } : {}) });
  try {
    const patients = await Patients.register(net, Math.max(5, Math.ceil(SIZES.patients / (2 * nodes))), 2);
    const watcher = new FinalityWatcher(net.apis);
    try {
      const phase = `saturation, ${label}`;
      const s = await saturation(net, patients, watcher, {
        seconds: SIZES.seconds,
        maxEvents: SIZES.maxEvents,
        batch: SIZES.batch,
        drainMs: SIZES.drainMs,
        phase,
      });
      const throughput = { ...s, heightMs: heightTimes(watcher, [s.loadedHeights], period) };
      log(
        `${phase}: ${s.eventsPerSecond.toFixed(0)} events/s final on all replicas (${s.final}/${s.submitted} in ${s.seconds.toFixed(1)} s, ${s.eventsPerBlock.toFixed(0)} events/block); CPU per event per node ${s.cpuMicrosPerEventPerNode.map((x) => x.toFixed(0)).join(', ')} µs; load generator ${s.loadGeneratorCpuSeconds.toFixed(1)} s CPU; height beyond the period p50 ${throughput.heightMs.p50Ms} ms, p99 ${throughput.heightMs.p99Ms} ms; socket drops ${s.submit.socketDrops.length}; from /metrics: events committed per node ${s.nodeCounts.eventsCommitted.join(', ')}, rounds beyond 0 per node ${s.nodeCounts.roundChanges.join(', ')}, shed ${JSON.stringify(s.nodeCounts.shed)}, refused ${JSON.stringify(s.nodeCounts.rejected)}`,
      );
      const latency: NetworkRun['latency'] = [];
      if (opts.latency) {
        for (const rate of RATES) {
          const l = await pacedLatency(net, patients, watcher, {
            rate,
            seconds: SIZES.latencySeconds,
            maxEvents: Math.ceil(rate * SIZES.latencySeconds) + 100,
            drainMs: SIZES.drainMs,
            phase: `latency ${rate}/s, ${label}`,
          });
          const heightMs = heightTimes(watcher, [l.loadedHeights], period);
          log(
            `latency at ${rate} events/s offered, ${label} (${l.events} events): p50 ${l.p50Ms.toFixed(0)} ms, p95 ${l.p95Ms.toFixed(0)} ms, p99 ${l.p99Ms.toFixed(0)} ms, max ${l.maxMs.toFixed(0)} ms; ${l.notFinal} not final; rounds beyond 0: ${l.extraRounds}; height beyond the period p50 ${heightMs.p50Ms} ms, p99 ${heightMs.p99Ms} ms`,
          );
          latency.push({ ...l, heightMs });
        }
      }
      // The timeouts are chosen from the offered rates below the measured saturation, else from the lowest one.
      const below = latency.filter((l) => l.offeredPerSecond < s.eventsPerSecond);
      const calm =
        below.length > 0
          ? below
          : latency
              .slice()
              .sort((a, b) => a.offeredPerSecond - b.offeredPerSecond)
              .slice(0, 1);
      return {
        throughput,
        latency,
        heightMs: heightTimes(watcher, [s.loadedHeights, ...latency.map((l) => l.loadedHeights)], period),
        timeoutHeightMs: heightTimes(
          watcher,
          calm.map((l) => l.loadedHeights),
          period,
        ),
        timeoutBasis:
          below.length > 0
            ? `offered rates below the measured saturation (${below.map((l) => `${l.offeredPerSecond}/s`).join(', ')})`
            : `the lowest offered rate (${calm.map((l) => `${l.offeredPerSecond}/s`).join('')}; none was below the measured saturation of ${Math.round(s.eventsPerSecond)}/s)`,
        direct: net.directP2pConnections(),
        proxies: net.mesh?.stats() ?? null,
      };
    } finally {
      await watcher.stop();
    }
  } finally {
    await net.stop();
  }
}

async function main(): Promise<void> {
  stopOnInterrupt();
  const started = new Date();
  const host = machine();
  const load0 = loadavg()[0]!;
  log(
    `MedLedger benchmark${QUICK ? ' (quick)' : ''} on ${host.host}: ${host.cpus} cores (${host.model}), Node.js ${host.node}; networks of ${NODES.join(', ')} nodes${values.wan ? `, WAN ${WAN.oneWayMs}±${WAN.jitterMs} ms` : ''}`,
  );
  const first = measureEd25519({ count: SIZES.ceilingCount });
  log(`ceiling: Ed25519 (${first.implementation}) ${first.verifyPerSecondPerCore} verifications/s per core`);

  const throughput: NetworkRun['throughput'][] = [];
  const latency: NetworkRun['latency'] = [];
  for (const n of NODES) {
    if (SKIP.has('throughput') && n !== LATENCY_NODES) continue;
    const r = await networkRun(n, { latency: n === LATENCY_NODES && !SKIP.has('latency') });
    throughput.push(r.throughput);
    latency.push(...r.latency);
  }

  let wan: Omit<WanResult, 'suggestedTimeouts'> | null = null;
  if (values.wan) {
    const r = await networkRun(LATENCY_NODES, { latency: true, wan: WAN });
    const params = consensusParamsSchema.parse({});
    wan = {
      delay: WAN,
      nodes: LATENCY_NODES,
      consensus: {
        periodMs: params.periodMs,
        timeoutProposeMs: params.timeoutProposeMs,
        timeoutVoteMs: params.timeoutVoteMs,
        timeoutDeltaMs: params.timeoutDeltaMs,
      },
      throughput: r.throughput,
      latency: r.latency,
      heightMs: r.heightMs,
      timeoutHeightMs: r.timeoutHeightMs,
      timeoutBasis: r.timeoutBasis,
      proxies: r.proxies!,
      directConnections: r.direct,
    };
    log(
      `WAN: height beyond the period p50 ${r.heightMs.p50Ms} ms, p99 ${r.heightMs.p99Ms} ms (${r.heightMs.samples} heights; p99 ${r.timeoutHeightMs.p99Ms} ms at ${r.timeoutBasis}); ${r.proxies!.connections} proxied connections, ${(r.proxies!.bytes / 2 ** 20).toFixed(0)} MB; ${r.direct} connections around the proxies`,
    );
  }

  let storage: StoreResult | null = null;
  if (!SKIP.has('store')) {
    storage = await storeBenchmark({
      events: SIZES.storeEvents,
      patients: SIZES.storePatients,
      blockSize: SIZES.storeBlock,
      queries: SIZES.queries,
      sync: true,
      verify: true,
      timeoutMs: QUICK ? 60_000 : 1_800_000,
      log,
    });
  }

  const last = measureEd25519({ count: SIZES.ceilingCount });
  const best: Ed25519Ceiling = last.verifyPerSecondPerCore > first.verifyPerSecondPerCore ? last : first;
  const allCores = best.cores * best.verifyPerSecondPerCore;
  const sizes = [...new Set([...NODES, ...(values.wan ? [LATENCY_NODES] : [])])];
  const ceiling: BenchResult['ceiling'] = {
    ...best,
    measured: { start: first.verifyPerSecondPerCore, end: last.verifyPerSecondPerCore },
    allowsEventsPerSecond: Object.fromEntries(sizes.map((n) => [String(n), networkCeiling(best, n)])),
    allCoresPerSecond: allCores,
  };
  const floor = 1e6 / best.verifyPerSecondPerCore;
  const saturationAt = (n: number) => throughput.find((t) => t.nodes === n)?.eventsPerSecond;
  const result: Omit<BenchResult, 'figures'> = {
    schema: 1,
    date: started.toISOString(),
    quick: QUICK,
    machine: { ...host, loadAverage: { start: load0, end: loadavg()[0]! } },
    options: { nodes: NODES, latencyNodes: LATENCY_NODES, rates: RATES, wan: values.wan ? WAN : null, skip: [...SKIP], ...SIZES },
    ceiling,
    throughput: throughput.map((t) => ({
      ...t,
      ceilingEventsPerSecond: networkCeiling(best, t.nodes),
      shareOfCeiling: t.eventsPerSecond / networkCeiling(best, t.nodes),
      cpuFloorMicros: Number(floor.toFixed(1)),
      cpuShareOfFloor: floor / t.cpuMicrosPerEventMean,
    })),
    latency: latency.map((l) => ({
      ...l,
      offeredShareOfCeiling: l.offeredPerSecond / networkCeiling(best, l.nodes),
      offeredShareOfSaturation: saturationAt(l.nodes) ? l.offeredPerSecond / saturationAt(l.nodes)! : null,
    })),
    wan: wan ? { ...wan, suggestedTimeouts: suggestTimeouts(wan.timeoutHeightMs.p99Ms, WAN.oneWayMs) } : null,
    storage,
    sync: storage?.sync
      ? { eventsPerSecond: storage.sync.eventsPerSecond, ceilingEventsPerSecond: allCores, shareOfCeiling: storage.sync.eventsPerSecond / allCores }
      : null,
    verification: storage?.verification
      ? {
          eventsPerSecond: storage.verification.eventsPerSecond,
          ceilingEventsPerSecond: allCores,
          shareOfCeiling: storage.verification.eventsPerSecond / allCores,
        }
      : null,
    trailQuery: storage ? { events: storage.events, p50Ms: storage.trail.patient.p50Ms, p99Ms: storage.trail.patient.p99Ms, targetMs: TARGETS.trailMs } : null,
    rss: {
      atStoreRestMB: storage?.servingNode.rssAtRestMB ?? null,
      servingPeakMB: storage ? Math.max(storage.servingNode.rssPeakServingSyncMB ?? 0, storage.servingNode.rssPeakServingVerifyMB ?? 0) || null : null,
      syncedNodeMB: storage?.sync?.rssPeakMB ?? null,
      underLoadPeakMB: Math.max(0, ...throughput.flatMap((t) => t.rssPeakMB), ...(wan ? wan.throughput.rssPeakMB : [])),
      targetMB: TARGETS.rssMB,
    },
    socketDrops: [...throughput, ...latency, ...(wan ? [wan.throughput, ...wan.latency] : [])].flatMap((r) => r.submit.socketDrops),
  };
  const full: BenchResult = { ...result, figures: figuresOf(result) };
  const file = writeJson(values.out!, `${started.toISOString().slice(0, 10)}-${host.host}${QUICK ? '-quick' : ''}.json`, full);
  console.log(`\n${table(full)}\n\nwritten ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
