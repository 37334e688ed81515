/**
 * Throughput and latency of user-signed audit events on one local network (SPEC §9); `npm run bench` runs the
 * same code (scripts/bench/load.ts) at 1, 4 and 7 nodes with the ceiling beside it. This script is for one
 * configuration at a time, e.g. with CPU profiles of the nodes:
 *
 *   npm run build && npx tsx scripts/bench-throughput.ts [--nodes 4] [--seconds 20] [--rate 1000] [--wan]
 *                                                        [--period MS] [--profile DIR]
 *
 * Phase 1 (saturation): submits as fast as the nodes admit for --seconds, bounded by a total count, and
 * reports events/s final on ALL replicas and CPU per event per node. Phase 2 (latency): paces --rate events/s
 * for --seconds and reports submit→final-on-all-replicas percentiles. Every loop is bounded in count and time;
 * the node processes are started and stopped by this script (by PID), on 127.0.0.1 only.
 */
import '../src/polyfill.js';
import { parseArgs } from 'node:util';
import { FinalityWatcher, pacedLatency, Patients, saturation } from './bench/load.js';
import { RunningNetwork, stopOnInterrupt } from './bench/network.js';
import { DEFAULT_WAN } from './bench/wanProxy.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1000' },
    patients: { type: 'string', default: '200' },
    /** Delay proxies between the nodes (40 ± 5 ms one way). */
    wan: { type: 'boolean', default: false },
    /** Write a CPU profile of every node process into this directory. */
    profile: { type: 'string' },
    period: { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
const NODES = Number(values.nodes);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const PATIENTS = Number(values.patients);
const MAX_EVENTS = 200_000;

async function main(): Promise<void> {
  stopOnInterrupt();
  const net = await RunningNetwork.start({
    nodes: NODES,
    logLevel: values['log-level']!,
    ...(values.period ? { consensus: { periodMs: Number(values.period) } } : {}),
    ...(values.profile ? { runtimeArgs: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}),
    ...(values.wan ? { wan: DEFAULT_WAN } : {}),
  });
  console.log(`network of ${NODES} nodes in ${net.layout.dir}${values.wan ? `, WAN ${DEFAULT_WAN.oneWayMs}±${DEFAULT_WAN.jitterMs} ms` : ''}`);
  try {
    const patients = await Patients.register(net, Math.max(1, Math.ceil(PATIENTS / (2 * NODES))), 2);
    const watcher = new FinalityWatcher(net.apis);
    try {
      const s = await saturation(net, patients, watcher, { seconds: SECONDS, maxEvents: MAX_EVENTS, batch: 250, drainMs: 120_000 });
      console.log(
        `saturation: CPU per node ${s.cpuSecondsPerNode.map((c) => c.toFixed(1)).join(', ')} s (${s.cpuMicrosPerEventMean.toFixed(0)} µs per event per node); load generator ${s.loadGeneratorCpuSeconds.toFixed(1)} s`,
      );
      console.log(
        `saturation: ${s.submitted} events accepted; ${s.final} final on all ${NODES} replicas after ${s.seconds.toFixed(1)} s (${s.notFinal} never final); socket drops ${s.submit.socketDrops.length}`,
      );
      console.log(
        `saturation: ${s.eventsPerSecond.toFixed(0)} events/s final on all replicas (${s.blocks} blocks, ${s.eventsPerBlock.toFixed(0)} events/block)`,
      );
      const l = await pacedLatency(net, patients, watcher, { rate: RATE, seconds: SECONDS, maxEvents: MAX_EVENTS, drainMs: 60_000 });
      console.log(
        `latency at ${RATE} events/s offered (${l.events} events): submit→final on all replicas p50 ${l.p50Ms.toFixed(0)} ms, p95 ${l.p95Ms.toFixed(0)} ms, p99 ${l.p99Ms.toFixed(0)} ms, max ${l.maxMs.toFixed(0)} ms; ${l.notFinal} not final`,
      );
      const statuses = await Promise.all(net.apis.map((a) => a.status()));
      console.log(
        `final heights ${statuses.map((st) => st.finalizedHeight).join(', ')}; same hash at min height: ${new Set(statuses.map((st) => st.finalizedHash)).size === 1 ? 'yes' : 'checking…'}`,
      );
      for (const d of [...s.submit.socketDrops, ...l.submit.socketDrops]) console.log(`SOCKET DROP: ${JSON.stringify(d)}`);
    } finally {
      await watcher.stop();
    }
  } finally {
    await net.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
