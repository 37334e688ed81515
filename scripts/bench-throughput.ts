/**
 * Throughput and latency of user-signed audit events on a local 4-node network (targets: README "Performance").
 *
 *   npm run build && npx tsx scripts/bench-throughput.ts [--nodes 4] [--seconds 20] [--rate 1000]
 *
 * Phase 1 (saturation): submits as fast as the nodes admit for --seconds, bounded by a total count, and
 * reports events/s final on ALL replicas. Phase 2 (latency): paces --rate events/s for --seconds and
 * reports submit→final-on-all-replicas percentiles. Every loop is bounded in count and time; the node
 * processes are started and stopped by this script (by PID), on 127.0.0.1 only.
 */
import '../src/polyfill.js';
import { BENCH_LIMITS } from './benchLimits.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient, ApiError } from '../src/client/apiClient.js';
import { Session } from '../src/client/session.js';
import { createNetwork, newUserKeys } from '../src/cli/networkSetup.js';
import { NodeProcess } from '../src/cli/nodeProcess.js';
import { signTx } from '../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../src/records/tx/types.js';
import type { ChainBlock } from '../src/api/contract.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1000' },
    patients: { type: 'string', default: '200' },
    'base-port': { type: 'string', default: '7600' },
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

/** Submits a batch; a node that sheds load (503) is asked again after a pause, at most 5 times. */
async function submitWithRetry(api: ApiClient, batch: { tx: Tx }[]): Promise<Awaited<ReturnType<ApiClient['submitBatch']>>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api.submitBatch(batch);
    } catch (err) {
      if (attempt >= 4 || !(err instanceof ApiError) || err.status !== 503) throw err;
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Watches every node's chain and records when each block first appears there. */
class FinalityWatcher {
  private readonly seen: Map<number, number>[];
  readonly txBlock = new Map<string, number>();
  private readonly next: number[];
  private running = true;
  private loop: Promise<void>;

  constructor(private readonly apis: ApiClient[]) {
    this.seen = apis.map(() => new Map());
    this.next = apis.map(() => 1);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Promise.all(
        this.apis.map(async (api, i) => {
          const { blocks } = await api.get<{ blocks: ChainBlock[] }>(`/v1/chain/blocks?from=${this.next[i]}&to=${this.next[i]! + 499}`);
          const now = performance.now();
          for (const b of blocks) {
            this.seen[i]!.set(b.height, now);
            if (i === 0) for (const id of b.txs) this.txBlock.set(id, b.height);
            this.next[i] = b.height + 1;
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 20));
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

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'medledger-bench-'));
  const base = Number(values['base-port']);
  const layout = await createNetwork({
    dir,
    nodes: NODES,
    basePort: base,
    adminPassword: () => 'Bench-Password-1!',
    kdf: { N: 1024, r: 8, p: 1 },
    logLevel: values['log-level']!,
    limits: BENCH_LIMITS,
    ...(values.period ? { consensus: { periodMs: Number(values.period) } } : {}),
  });
  console.log(`network of ${NODES} nodes in ${dir}`);
  const runtimeArgs = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [];
  const procs = layout.nodes.map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl, undefined, runtimeArgs));
  const cleanup = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    for (const p of procs) p.start();
    await Promise.all(procs.map((p) => p.waitReady(60_000, (s) => s.peers.length === NODES - 1)));
    const apis = procs.map((p) => p.api);

    // Patients spread over the hospitals, registered through their own node.
    const patients: Session[] = [];
    for (let i = 0; i < PATIENTS; i++) {
      const n = layout.nodes[i % NODES]!;
      const s = new Session(new ApiClient(n.apiUrl), newUserKeys(`pat-${i}`, 'patient', n.hospital), n.hospital);
      patients.push(s);
    }
    await Promise.all(patients.map((p) => p.registerPatient()));

    let nonce = Date.now() * 1000;
    const sign = (p: Session): Tx => {
      const unsigned: UnsignedTx<'listRecords'> = {
        v: 1,
        type: 'listRecords',
        actor: p.userId,
        key: p.signer.publicKey,
        via: p.hospital,
        nonce: ++nonce,
        time: Date.now(),
        patient: p.userId,
        body: {},
      };
      return signTx(unsigned, p.signer, p.api.knownIdentity!.genesisHash);
    };
    const watcher = new FinalityWatcher(apis);

    // ---- phase 1: saturation ----
    const submitted: { id: string; at: number }[] = [];
    const cpu0 = procs.map((p) => cpuSeconds(p.pid));
    const self0 = process.cpuUsage();
    const startHeight = (await apis[0]!.status()).height;
    const t0 = performance.now();
    let k = 0;
    const inflight = new Set<Promise<void>>();
    while (performance.now() - t0 < SECONDS * 1000 && submitted.length < MAX_EVENTS) {
      // Each patient's transactions go through their own hospital's node, as a real client's would.
      const node = k % NODES;
      const batch = Array.from({ length: 250 }, () => ({ tx: sign(patients[((k++ * 7) % (PATIENTS / NODES)) * NODES + node]!) }));
      const at = performance.now();
      const job = submitWithRetry(apis[node]!, batch)
        .then((r) => {
          for (const id of r.accepted) submitted.push({ id, at });
          if (r.rejected.length > 0 && r.rejected[0]!.code === 'UNAVAILABLE') return new Promise((res) => setTimeout(res, 50));
        })
        .then(() => undefined);
      inflight.add(job);
      void job.finally(() => inflight.delete(job));
      if (inflight.size >= NODES * 2) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const submitEnd = performance.now();
    // Drain: wait (bounded) until everything submitted is final everywhere.
    const drainDeadline = performance.now() + 120_000;
    while (performance.now() < drainDeadline && submitted.some((s) => watcher.finalAll(s.id) === undefined)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const finals = submitted.map((s) => watcher.finalAll(s.id)).filter((t): t is number => t !== undefined);
    const lastFinal = Math.max(...finals);
    const satRate = finals.length / ((lastFinal - t0) / 1000);
    const endHeight = watcher.minHeight();
    const nodeCpu = procs.map((p, i) => cpuSeconds(p.pid) - cpu0[i]!);
    const selfCpu = process.cpuUsage(self0);
    console.log(
      `saturation: CPU per node ${nodeCpu.map((c) => c.toFixed(1)).join(', ')} s (${((1e6 * nodeCpu.reduce((a, b) => a + b, 0)) / NODES / finals.length).toFixed(0)} µs per event per node); load generator ${((selfCpu.user + selfCpu.system) / 1e6).toFixed(1)} s`,
    );
    console.log(
      `saturation: ${submitted.length} events submitted in ${((submitEnd - t0) / 1000).toFixed(1)} s; ${finals.length} final on all ${NODES} replicas after ${((lastFinal - t0) / 1000).toFixed(1)} s`,
    );
    console.log(
      `saturation: ${satRate.toFixed(0)} events/s final on all replicas (${endHeight - startHeight} blocks, ${(finals.length / Math.max(1, endHeight - startHeight)).toFixed(0)} events/block)`,
    );

    // ---- phase 2: paced latency ----
    const paced: { id: string; at: number }[] = [];
    const t1 = performance.now();
    const tick = 50;
    const perTick = Math.max(1, Math.round((RATE * tick) / 1000));
    let due = t1;
    let j = 0;
    const pacedJobs: Promise<void>[] = [];
    while (performance.now() - t1 < SECONDS * 1000 && paced.length < MAX_EVENTS) {
      due += tick;
      const node = j % NODES;
      const batch = Array.from({ length: perTick }, () => ({ tx: sign(patients[((j++ * 13) % (PATIENTS / NODES)) * NODES + node]!) }));
      const at = performance.now();
      const job = submitWithRetry(apis[node]!, batch).then((r) => r.accepted.forEach((id) => paced.push({ id, at })));
      pacedJobs.push(job);
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    // Every submission must have been answered before the drain can tell what is still missing.
    await Promise.all(pacedJobs);
    const pacedDeadline = performance.now() + 60_000;
    while (performance.now() < pacedDeadline && paced.some((s) => watcher.finalAll(s.id) === undefined)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const lat = paced
      .map((s) => (watcher.finalAll(s.id) ?? NaN) - s.at)
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    console.log(
      `latency at ${RATE} events/s offered (${paced.length} events): submit→final on all replicas p50 ${percentile(lat, 50).toFixed(0)} ms, p95 ${percentile(lat, 95).toFixed(0)} ms, p99 ${percentile(lat, 99).toFixed(0)} ms, max ${lat.at(-1)?.toFixed(0)} ms; ${paced.length - lat.length} not final`,
    );
    const statuses = await Promise.all(apis.map((a) => a.status()));
    console.log(
      `final heights ${statuses.map((s) => s.finalizedHeight).join(', ')}; same hash at min height: ${new Set(statuses.map((s) => s.finalizedHash)).size === 1 ? 'yes' : 'checking…'}`,
    );
    await watcher.stop();
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
