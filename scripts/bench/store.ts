/**
 * Storage, queries, memory, sync and full-chain verification on a chain of `events` audit events (SPEC §9):
 *
 * 1. write: real signed transactions in certified blocks written into hospital A's LevelDB with the node's
 *    own store code (syntheticChain.ts): events/s (client signing included) and bytes on disk per event;
 * 2. queries: one patient's audit trail (newest 50) out of all events, over random patients; a user's trail;
 *    a one-minute time range: latency percentiles, in-process on the store;
 * 3. memory: hospital A's node process started on that data directory, its peak resident memory while it
 *    serves what follows (its startup integrity pass runs meanwhile, as it would after any restart);
 * 4. sync: hospital B starts empty and syncs the whole chain from A, fully verifying it: events/s, and B's CPU;
 * 5. verification: `medledger verify` (client/verifyReplicas.ts: download, every signature on worker threads
 *    on all cores, re-execution, comparison) of A's chain: events/s.
 * Every loop is bounded; processes are started and stopped here (by PID), on 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { verifyReplicas } from '../../src/client/verifyReplicas.js';
import { NodeProcess } from '../../src/cli/nodeProcess.js';
import { Ledger } from '../../src/node/ledger.js';
import { LedgerStore } from '../../src/node/store/ledgerStore.js';
import { benchNetwork, writeSyntheticChain } from '../syntheticChain.js';
import { cpuSeconds, freeBasePort, percentile, RssPeaks, rssMB, sleep } from './harness.js';

export interface StoreOptions {
  events: number;
  patients: number;
  blockSize: number;
  /** Patient-trail queries timed (user trails and time ranges: half and a quarter of this). */
  queries: number;
  sync: boolean;
  verify: boolean;
  /** Bound of each wait for a node (start, sync). */
  timeoutMs: number;
  keep?: boolean;
  /** Extra Node.js runtime arguments of the syncing node (e.g. --cpu-prof). */
  syncRuntimeArgs?: string[];
  log?: (line: string) => void;
}

export interface Percentiles {
  queries: number;
  p50Ms: number;
  p99Ms: number;
}

export interface StoreResult {
  events: number;
  blocks: number;
  patients: number;
  write: { seconds: number; eventsPerSecond: number; signSeconds: number; diskBytes: number; bytesPerEvent: number };
  trail: { patient: Percentiles; user: Percentiles; timeRange: Percentiles };
  /**
   * Hospital A's node on that chain: resident memory 2 s after it answered (its startup integrity pass
   * running), and its peaks while it served the sync and the verification (chain pages to one client each).
   */
  servingNode: {
    startSeconds: number;
    rssAtRestMB: number;
    rssPeakServingSyncMB: number | null;
    rssPeakServingVerifyMB: number | null;
    rssPeakMB: number;
    integrityPassDoneSeconds: number | null;
  };
  sync: {
    seconds: number;
    eventsPerSecond: number;
    cpuSeconds: number;
    cpuMicrosPerEvent: number;
    rssPeakMB: number;
    servingNodeIntegrityPassRunning: boolean;
  } | null;
  verification: { seconds: number; eventsPerSecond: number; cores: number; replicas: number; servingNodeIntegrityPassRunning: boolean } | null;
}

const timed = async (n: number, q: () => Promise<void>): Promise<Percentiles> => {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await q();
    xs.push(performance.now() - s);
  }
  xs.sort((a, b) => a - b);
  return { queries: n, p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99) };
};

export async function storeBenchmark(opts: StoreOptions): Promise<StoreResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const net = await benchNetwork('medledger-store-bench-', await freeBasePort());
  const { layout, genesis } = net;
  const nodes: NodeProcess[] = [];
  try {
    // ---- 1. write ----
    const store = await LedgerStore.open(net.storeDir);
    const ledger = await Ledger.open(store, genesis);
    const t0 = performance.now();
    const chain = await writeSyntheticChain(net, ledger, { events: opts.events, patients: opts.patients, blockSize: opts.blockSize });
    const writeS = (performance.now() - t0) / 1000;
    const disk = Number(execFileSync('du', ['-sb', layout.nodes[0]!.dataDir]).toString().split('\t')[0]);
    const write = {
      seconds: writeS,
      eventsPerSecond: chain.events / writeS,
      signSeconds: chain.signMs / 1000,
      diskBytes: disk,
      bytesPerEvent: disk / chain.events,
    };
    log(
      `store: ${chain.events} events in ${chain.blocks} blocks written in ${writeS.toFixed(1)} s (${write.eventsPerSecond.toFixed(0)} events/s incl. ${write.signSeconds.toFixed(1)} s of client signing); ${(disk / 2 ** 20).toFixed(0)} MB on disk (${write.bytesPerEvent.toFixed(0)} B/event)`,
    );

    // ---- 2. queries ----
    const randomPatient = () => `pat-${Math.floor(Math.random() * opts.patients)}`;
    const patient = await timed(opts.queries, async () => {
      const page = await store.queryEvents({ patient: randomPatient() }, { limit: 50 });
      if (page.events.length === 0) throw new Error('empty trail');
    });
    const user = await timed(Math.ceil(opts.queries / 2), async () => void (await store.queryEvents({ user: randomPatient() }, { limit: 50 })));
    const timeRange = await timed(Math.ceil(opts.queries / 4), async () => {
      const from = chain.start + Math.floor(Math.random() * Math.max(1, chain.end - chain.start - 60_000));
      await store.queryEvents({ from, to: from + 60_000 }, { limit: 50 });
    });
    log(
      `store: patient trail (newest 50 of ${chain.events}) p50 ${patient.p50Ms.toFixed(1)} ms, p99 ${patient.p99Ms.toFixed(1)} ms; user trail p50 ${user.p50Ms.toFixed(1)} ms; 1-minute range p50 ${timeRange.p50Ms.toFixed(1)} ms`,
    );
    await store.close();

    // ---- 3. the serving node ----
    const a = new NodeProcess('hosp-a', layout.nodes[0]!.configFile, layout.nodes[0]!.apiUrl);
    const b = new NodeProcess('hosp-b', layout.nodes[1]!.configFile, layout.nodes[1]!.apiUrl, undefined, opts.syncRuntimeArgs ?? []);
    nodes.push(a, b);
    const aRss = new RssPeaks(() => [a.pid]);
    const s0 = performance.now();
    a.start();
    await a.waitReady(opts.timeoutMs);
    const startSeconds = (performance.now() - s0) / 1000;
    await sleep(2_000);
    const rssAtRestMB = rssMB(a.pid);
    let rssPeakServingSyncMB: number | null = null;
    let rssPeakServingVerifyMB: number | null = null;
    let passDone: number | null = null;
    const passRunning = async () => {
      const st = await a.api.status();
      if (st.integrity.verifiedHeight >= chain.blocks && passDone === null) passDone = (performance.now() - s0) / 1000;
      return passDone === null;
    };

    // ---- 4. sync ----
    let sync: StoreResult['sync'] = null;
    if (opts.sync) {
      const runningAtStart = await passRunning();
      const bRss = new RssPeaks(() => [b.pid]);
      const serving = new RssPeaks(() => [a.pid]);
      const t = performance.now();
      b.start();
      await b.waitReady(opts.timeoutMs, (s) => s.height >= chain.blocks);
      const seconds = (performance.now() - t) / 1000;
      const cpu = cpuSeconds(b.pid);
      rssPeakServingSyncMB = serving.stop()[0]!;
      await b.stop();
      sync = {
        seconds,
        eventsPerSecond: chain.events / seconds,
        cpuSeconds: cpu,
        cpuMicrosPerEvent: (1e6 * cpu) / chain.events,
        rssPeakMB: bRss.stop()[0]!,
        servingNodeIntegrityPassRunning: runningAtStart || (await passRunning()),
      };
      log(
        `store: empty node synced ${chain.blocks} blocks / ${chain.events} events in ${seconds.toFixed(1)} s (${sync.eventsPerSecond.toFixed(0)} events/s, fully verified; ${sync.cpuMicrosPerEvent.toFixed(0)} µs CPU per event; syncing node peak ${sync.rssPeakMB} MB)${sync.servingNodeIntegrityPassRunning ? ' while the serving node ran its startup integrity pass' : ''}`,
      );
    }

    // ---- 5. verification ----
    let verification: StoreResult['verification'] = null;
    if (opts.verify) {
      const runningAtStart = await passRunning();
      const serving = new RssPeaks(() => [a.pid]);
      const t = performance.now();
      const report = await verifyReplicas([a.apiUrl]);
      const seconds = (performance.now() - t) / 1000;
      rssPeakServingVerifyMB = serving.stop()[0]!;
      if (report.exitCode !== 0) throw new Error(`verification failed: ${JSON.stringify(report).slice(0, 500)}`);
      verification = {
        seconds,
        eventsPerSecond: chain.events / seconds,
        cores: availableParallelism(),
        replicas: 1,
        servingNodeIntegrityPassRunning: runningAtStart || (await passRunning()),
      };
      log(
        `store: medledger verify of the chain (download, every signature on ${verification.cores} cores, re-execution): ${verification.eventsPerSecond.toFixed(0)} events/s (${seconds.toFixed(1)} s)${verification.servingNodeIntegrityPassRunning ? ' while the node ran its startup integrity pass' : ''}`,
      );
    }
    await passRunning();
    await a.stop();
    const servingNode = {
      startSeconds,
      rssAtRestMB,
      rssPeakServingSyncMB,
      rssPeakServingVerifyMB,
      rssPeakMB: aRss.stop()[0]!,
      integrityPassDoneSeconds: passDone,
    };
    log(
      `store: node on ${chain.events} events: started in ${startSeconds.toFixed(1)} s; resident ${rssAtRestMB} MB 2 s later (startup integrity pass running), peak ${rssPeakServingSyncMB ?? '—'} MB serving the sync, ${rssPeakServingVerifyMB ?? '—'} MB serving the verification`,
    );
    return { events: chain.events, blocks: chain.blocks, patients: opts.patients, write, trail: { patient, user, timeRange }, servingNode, sync, verification };
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    if (!opts.keep && !process.env.KEEP) rmSync(net.dir, { recursive: true, force: true });
  }
}
