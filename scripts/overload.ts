/**
 * Overload: a local 4-node network offered transactions as fast as its nodes admit them, for --seconds
 * (default 300), to show that each node sheds what it cannot take (503 / per-transaction UNAVAILABLE),
 * keeps its resident memory under the bound, keeps consensus rounds on time, and never drops a socket in
 * the middle of a request.
 *
 *   npm run build && npx tsx scripts/overload.ts [--seconds 300] [--nodes 4] [--base-port 7800]
 *
 * Prints one line per minute (offered, admitted, shed, socket errors, blocks, rounds beyond round 0, max
 * RSS per node) and writes bench-results/overload-<date>-<host>.json. Bounded in time and count; the node
 * processes are started and stopped by this script (by PID), on 127.0.0.1 only. Exit 1 if a bound was
 * broken (RSS over --max-rss-mb, a dropped socket, replicas that disagree).
 */
import '../src/polyfill.js';
import { auditedRead } from '../test/support/load.js';
import { BENCH_LIMITS } from './benchLimits.js';
import { rssMB } from './bench/harness.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient, ApiError, droppedSocket } from '../src/client/apiClient.js';
import { Session } from '../src/client/session.js';
import { createNetwork, newUserKeys } from '../src/cli/networkSetup.js';
import { NodeProcess } from '../src/cli/nodeProcess.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '300' },
    patients: { type: 'string', default: '400' },
    'base-port': { type: 'string', default: '7800' },
    'max-events': { type: 'string', default: '5000000' },
    'max-rss-mb': { type: 'string', default: '300' },
  },
});
const NODES = Number(values.nodes);
const SECONDS = Number(values.seconds);
const PATIENTS = Number(values.patients);
const MAX_EVENTS = Number(values['max-events']);
const MAX_RSS_MB = Number(values['max-rss-mb']);
const BATCH = 500;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'medledger-overload-'));
  const layout = await createNetwork({
    dir,
    nodes: NODES,
    basePort: Number(values['base-port']),
    adminPassword: () => 'Bench-Password-1!',
    kdf: { N: 1024, r: 8, p: 1 },
    logLevel: 'warn',
    limits: BENCH_LIMITS,
  });
  const procs = layout.nodes.map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl));
  const cleanup = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const counts = { offered: 0, admitted: 0, shed503: 0, shedPerTx: 0, otherRejects: 0, socketErrors: 0 };
  const minutes: Record<string, number | number[]>[] = [];
  let ok = true;
  try {
    for (const p of procs) p.start();
    await Promise.all(procs.map((p) => p.waitReady(60_000, (s) => s.peers.length === NODES - 1)));
    const apis = procs.map((p) => p.api);
    const patients: Session[] = [];
    for (let i = 0; i < PATIENTS; i++) {
      const n = layout.nodes[i % NODES]!;
      patients.push(new Session(new ApiClient(n.apiUrl), newUserKeys(`pat-${i}`, 'patient', n.hospital), n.hospital));
    }
    for (let i = 0; i < PATIENTS; i += 50) await Promise.all(patients.slice(i, i + 50).map((p) => p.registerPatient()));
    console.log(`${NODES} nodes, ${PATIENTS} patients registered; offering load for ${SECONDS} s`);

    const sign = (p: Session) => ({ tx: auditedRead(p) });
    const t0 = Date.now();
    const end = t0 + SECONDS * 1000;
    const status0 = await Promise.all(apis.map((a) => a.status()));
    let last = { at: t0, height: status0[0]!.finalizedHeight, extra: status0.map((s) => s.consensusStats?.extraRounds ?? 0), ...counts };
    let maxRss = procs.map(() => 0);

    // One submitter per node and two in flight each: the nodes, not the generator, set the pace.
    const submitter = async (node: number) => {
      let k = node;
      while (Date.now() < end && counts.offered < MAX_EVENTS) {
        const batch = Array.from({ length: BATCH }, () => sign(patients[((k++ * 7) % (PATIENTS / NODES)) * NODES + node]!));
        counts.offered += batch.length;
        try {
          const r = await apis[node]!.submitBatch(batch.map((b) => ({ tx: b.tx })));
          counts.admitted += r.accepted.length;
          const busy = r.rejected.filter((x) => x.code === 'UNAVAILABLE').length;
          counts.shedPerTx += busy;
          counts.otherRejects += r.rejected.length - busy;
          if (busy > 0) await new Promise((res) => setTimeout(res, 200));
        } catch (err) {
          if (err instanceof ApiError && err.status === 503) {
            counts.shed503 += batch.length;
            await new Promise((res) => setTimeout(res, 500));
          } else if (droppedSocket(err)) {
            counts.socketErrors++;
            await new Promise((res) => setTimeout(res, 200));
          } else throw err;
        }
      }
    };
    const report = async () => {
      const statuses = await Promise.all(apis.map((a) => a.status()));
      const rss = procs.map((p) => rssMB(p.pid));
      maxRss = maxRss.map((m, i) => Math.max(m, rss[i]!));
      const now = Date.now();
      const height = Math.min(...statuses.map((s) => s.finalizedHeight));
      const extra = statuses.map((s) => s.consensusStats?.extraRounds ?? 0);
      const row = {
        minute: Math.round((now - t0) / 60_000),
        offered: counts.offered - last.offered,
        admitted: counts.admitted - last.admitted,
        shed: counts.shed503 + counts.shedPerTx - last.shed503 - last.shedPerTx,
        socketErrors: counts.socketErrors - last.socketErrors,
        blocks: height - last.height,
        extraRounds: Math.max(...extra.map((e, i) => e - last.extra[i]!)),
        maxRssMB: [...maxRss],
      };
      minutes.push(row);
      console.log(
        `t+${((now - t0) / 1000).toFixed(0)}s: offered ${row.offered}, admitted ${row.admitted}, shed ${row.shed}, socket errors ${row.socketErrors}, ` +
          `blocks ${row.blocks}, rounds beyond 0 (max over nodes) ${row.extraRounds}, max RSS MB ${row.maxRssMB.join('/')}`,
      );
      last = { at: now, height, extra, ...counts };
      maxRss = procs.map(() => 0);
    };
    const sampler = setInterval(() => {
      maxRss = maxRss.map((m, i) => Math.max(m, rssMB(procs[i]!.pid)));
    }, 1_000);
    const reporter = setInterval(() => void report(), 60_000);
    await Promise.all(apis.flatMap((_, i) => [submitter(i), submitter(i)]));
    clearInterval(reporter);
    clearInterval(sampler);
    await report();

    // Drain (bounded), then the replicas must agree.
    const target = Math.max(...(await Promise.all(apis.map((a) => a.status()))).map((s) => s.finalizedHeight));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await Promise.all(apis.map((a) => a.status()))).some((s) => s.finalizedHeight < target))
      await new Promise((r) => setTimeout(r, 500));
    const hashes = await Promise.all(apis.map((a) => a.get<{ blocks: { hash: string }[] }>(`/v1/chain/blocks?from=${target}&to=${target}`)));
    const agree = new Set(hashes.map((h) => h.blocks[0]?.hash)).size === 1;
    const peakRss = Math.max(...minutes.flatMap((m) => m.maxRssMB as number[]));
    const statuses = await Promise.all(apis.map((a) => a.status()));
    console.log(`totals: ${JSON.stringify(counts)}`);
    console.log(`shed by nodes: ${statuses.map((s) => `${s.node} ${JSON.stringify(s.load?.shed)}`).join('; ')}`);
    console.log(`peak RSS ${peakRss} MB (bound ${MAX_RSS_MB}); socket errors ${counts.socketErrors}; replicas agree at ${target}: ${agree ? 'yes' : 'NO'}`);
    ok = peakRss <= MAX_RSS_MB && counts.socketErrors === 0 && agree;
    mkdirSync('bench-results', { recursive: true });
    const file = join('bench-results', `overload-${new Date().toISOString().slice(0, 10)}-${hostname()}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ date: new Date().toISOString(), host: hostname(), nodes: NODES, seconds: SECONDS, counts, minutes, peakRssMB: peakRss, agree, ok }, null, 2)}\n`,
    );
    console.log(`${ok ? 'PASS' : 'FAIL'}: written ${file}`);
  } finally {
    await cleanup();
  }
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
