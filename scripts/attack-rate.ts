/**
 * Blocks per minute of the three honest nodes of a local 4-node network while node 3 misbehaves.
 *
 *   npm run build && npx tsx scripts/attack-rate.ts [--seconds 30] [--behaviours equivocate,vote-flood,…] [--tps 20]
 *
 * Starts four node processes on 127.0.0.1 as the multi-process tests do (test/support/testNetwork.ts, fast
 * test timings), node 3 through the test-only byzantine harness (test/support/byzantineNode.ts). A light load
 * of audited reads (--tps per honest node) keeps blocks non-empty. First a baseline phase (node 3 unaltered),
 * then node 3 stopped (what a crashed validator costs, for comparison), then one phase per behaviour (node 3
 * restarted with it), and the baseline again at the end (the machine's drift); in each the honest nodes'
 * finalized heights are measured over --seconds. Behaviours that get node 3 banned run last. Prints a table
 * (blocks/min of the honest nodes, ratio to the baseline, their CPU and
 * RSS, new evidence records, gossip rejects of node 3) and writes it as JSON to
 * bench-results/attack-rate-<date>.json. Every loop is bounded in count and time; the node processes are
 * started and stopped by this script (by PID), and so is the whole run (a deadline from the phase count).
 */
import '../src/polyfill.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Session } from '../src/client/session.js';
import type { ChainBlock, EvidenceRecord } from '../src/api/contract.js';
import { BEHAVIOURS, type BehaviourName } from '../test/support/byzantine.js';
import { auditedRead } from '../test/support/load.js';
import { TestNetwork } from '../test/support/testNetwork.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    behaviours: { type: 'string', default: 'equivocate,far-rounds,replay,sync-strip,sync-alter,vote-flood,oversized,invalid-payload' },
    /** Audited reads per second submitted to each honest node (0: empty blocks only). */
    tps: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench-results' },
  },
});
const SECONDS = Math.min(Math.max(Number(values.seconds), 5), 600);
const TPS = Math.min(Math.max(Number(values.tps), 0), 500);
interface PhaseSpec {
  name: string;
  behaviours: BehaviourName[];
  stopped?: boolean;
}
const chosen = values.behaviours.split(',').filter(Boolean);
for (const b of chosen) if (!(BEHAVIOURS as readonly string[]).includes(b)) throw new Error(`unknown behaviour ${b} (known: ${BEHAVIOURS.join(', ')})`);
const PHASES: PhaseSpec[] = [
  { name: 'baseline', behaviours: [] },
  { name: 'node 3 stopped', behaviours: [], stopped: true },
  ...chosen.map((b) => ({ name: b, behaviours: [b as BehaviourName] })),
  { name: 'baseline (end)', behaviours: [] },
];
const HONEST = [0, 1, 2];
const BYZ = 3;
/** Hard stop of the whole run: every phase's window plus generous start, settle and restart time. */
const DEADLINE = Date.now() + 120_000 + PHASES.length * (SECONDS + 90) * 1000;

interface Row {
  behaviour: string;
  seconds: number;
  blocks: number;
  blocksPerMin: number;
  ratio: number;
  txsPerMin: number;
  /** Mean CPU of the honest node processes over the phase (% of one core) and their largest RSS at its end. */
  honestCpuPct: number;
  honestRssMb: number;
  /** Evidence records node 0 stored for heights of this phase. */
  evidence: number;
  /** The machine's 1-minute load average at the end of the phase (2 cores; other work shares them). */
  load1: number;
  /** Gossip messages of node 3 that node 0 rejected during the phase; whether node 3 ended the phase banned. */
  rejected: number;
  banned: boolean;
  sent: Record<string, number>;
}

function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMb(pid: number | undefined): number {
  if (!pid) return NaN;
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, Math.min(ms, DEADLINE - Date.now()))));

async function main(): Promise<void> {
  const net = await TestNetwork.create(4);
  let loadRunning = true;
  let load: Promise<void> = Promise.resolve();
  const stop = async () => {
    loadRunning = false;
    await load.catch(() => undefined);
    await net.destroy();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    await net.start(HONEST, { peers: 2 });
    const byzPeer = net.node(BYZ).peerId;
    const statsFile = (name: string) => join(net.layout.dir, `byz-${name}.json`);
    const restartByz = async (behaviours: BehaviourName[], name: string) => {
      await net.processes[BYZ]!.stop();
      net.startByzantine(BYZ, behaviours, ['--stats', statsFile(name), '--max-seconds', String(SECONDS + 20)]);
      await net.processes[BYZ]!.waitReady(60_000);
      await net.processes[BYZ]!.waitReady(10_000, (s) => s.peers.length >= 3).catch(() => undefined);
    };
    await restartByz([], 'start');
    await net.waitFor((s) => s.peers.length >= 3, { nodes: HONEST, timeoutMs: 30_000 });
    const patients: Session[] = [];
    for (const i of HONEST) patients.push(await net.patient(i, `pat-rate-${i}`));

    // Light load, bounded by the deadline: TPS audited reads per second to each honest node.
    load = (async () => {
      const perTick = Math.round(TPS / 5);
      while (loadRunning && perTick > 0 && Date.now() < DEADLINE) {
        await Promise.all(
          HONEST.map((i, k) =>
            net
              .api(i)
              .submitBatch(Array.from({ length: perTick }, () => ({ tx: auditedRead(patients[k]!) })))
              .catch(() => undefined),
          ),
        );
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    const heights = async () => (await net.statuses(HONEST)).map((s) => s.height);
    const rows: Row[] = [];
    for (const phase of PHASES) {
      if (Date.now() > DEADLINE - (SECONDS + 30) * 1000) {
        console.error('deadline reached: skipping the remaining phases');
        break;
      }
      const name = phase.name;
      if (phase.stopped) await net.processes[BYZ]!.stop();
      else await restartByz(phase.behaviours, name.replace(/\W+/g, '-'));
      const before = { h: Math.min(...(await heights())), t: Date.now(), cpu: HONEST.map((i) => cpuSeconds(net.processes[i]!.pid)) };
      const rejectedBefore = (await net.api(0).status()).penalties?.[byzPeer]?.rejected ?? 0;
      await sleep(SECONDS * 1000);
      const after = { h: Math.min(...(await heights().catch(() => [before.h]))), t: Date.now(), cpu: HONEST.map((i) => cpuSeconds(net.processes[i]!.pid)) };
      const elapsed = (after.t - before.t) / 1000;
      const status0 = await net.api(0).status();
      const evidence = (await net.api(0).get<{ evidence: EvidenceRecord[] }>('/v1/evidence')).evidence.filter(
        (e) => e.height > before.h && e.height <= after.h,
      ).length;
      let txs = 0;
      for (let from = before.h + 1; from <= after.h; from += 500) {
        const page = await net.api(0).get<{ blocks: ChainBlock[] }>(`/v1/chain/blocks?from=${from}&to=${Math.min(after.h, from + 499)}`);
        for (const b of page.blocks) txs += b.txs.length;
      }
      let sent: Record<string, number> = {};
      try {
        sent = (JSON.parse(readFileSync(statsFile(name.replace(/\W+/g, '-')), 'utf8')) as { sent: Record<string, number> }).sent;
      } catch {
        // no stats written yet
      }
      const blocks = after.h - before.h;
      const blocksPerMin = (blocks / elapsed) * 60;
      rows.push({
        behaviour: name,
        seconds: Math.round(elapsed),
        blocks,
        blocksPerMin: Math.round(blocksPerMin * 10) / 10,
        ratio: rows.length === 0 ? 1 : Math.round((blocksPerMin / rows[0]!.blocksPerMin) * 100) / 100,
        txsPerMin: Math.round((txs / elapsed) * 60),
        honestCpuPct: Math.round((after.cpu.reduce((s, c, k) => s + (c - before.cpu[k]!), 0) / HONEST.length / elapsed) * 100),
        honestRssMb: Math.max(...HONEST.map((i) => rssMb(net.processes[i]!.pid))),
        evidence,
        load1: Math.round(loadavg()[0]! * 10) / 10,
        rejected: (status0.penalties?.[byzPeer]?.rejected ?? 0) - rejectedBefore,
        banned: (status0.penalties?.[byzPeer]?.bannedUntil ?? 0) > Date.now(),
        sent,
      });
      const r = rows[rows.length - 1]!;
      console.error(`${name}: ${r.blocks} blocks in ${r.seconds} s (${r.blocksPerMin}/min, ×${r.ratio})`);
      // Let the honest nodes work off what the attack left queued before the next phase is measured.
      await restartByz([], `${name.replace(/\W+/g, '-')}-settle`);
      const h = Math.max(...(await heights()));
      await net
        .waitFor((s) => s.height >= h + 2, { nodes: HONEST, timeoutMs: 60_000 })
        .catch(() => console.error(`${name}: honest nodes had not recovered after 60 s`));
    }

    const header = ['behaviour', 'blocks/min (honest)', 'ratio', 'txs/min', 'honest CPU %', 'honest RSS MB', 'evidence', 'rejected', 'banned', 'load'];
    const table = rows.map((r) => [
      r.behaviour,
      String(r.blocksPerMin),
      r.ratio.toFixed(2),
      String(r.txsPerMin),
      String(r.honestCpuPct),
      String(r.honestRssMb),
      String(r.evidence),
      String(r.rejected),
      r.banned ? 'yes' : 'no',
      String(r.load1),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(line(header));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const row of table) console.log(line(row));

    mkdirSync(values.out, { recursive: true });
    const file = join(values.out, `attack-rate-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
    writeFileSync(file, `${JSON.stringify({ seconds: SECONDS, tpsPerHonestNode: TPS, nodes: 4, byzantine: BYZ, rows }, null, 2)}\n`);
    console.log(`written ${file}`);
  } finally {
    await stop();
  }
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
