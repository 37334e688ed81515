/**
 * Storage, query, verification, memory and sync at scale (targets: README "Performance"), on a chain of --events audit events.
 *
 *   npm run build && npx tsx scripts/bench-store.ts [--events 1000000] [--patients 10000] [--sync]
 *
 * 1. Writes a chain of real signed transactions and certified blocks straight into hospital A's LevelDB
 *    (the node's own store code), and reports events/s written and MB on disk.
 * 2. One patient's audit trail (newest 50) out of all events: latency percentiles over random patients;
 *    also a user's trail and a one-minute time range.
 * 3. Full-chain re-verification from genesis (every signature, root and certificate, state re-executed).
 * 4. Resident memory of hospital A's node process started on that data directory.
 * 5. With --sync: hospital B starts empty and syncs the whole chain from A, fully verifying it: events/s.
 * Every loop is bounded; processes are started and stopped here, on 127.0.0.1.
 */
import '../src/polyfill.js';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NodeProcess } from '../src/cli/nodeProcess.js';
import { ChainChecker } from '../src/consensus/chainCheck.js';
import { Ledger } from '../src/node/ledger.js';
import { LedgerStore } from '../src/node/store/ledgerStore.js';
import { benchNetwork, writeSyntheticChain } from './syntheticChain.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    patients: { type: 'string', default: '10000' },
    'block-size': { type: 'string', default: '2000' },
    'base-port': { type: 'string', default: '7650' },
    sync: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    /** CPU profile of the syncing node into this directory. */
    profile: { type: 'string' },
  },
});
const EVENTS = Number(values.events);
const PATIENTS = Number(values.patients);
const BLOCK = Number(values['block-size']);

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

async function main(): Promise<void> {
  const net = await benchNetwork('medledger-store-bench-', Number(values['base-port']));
  const { dir, layout, genesis } = net;
  console.log(`chain of ${EVENTS} events for ${PATIENTS} patients in ${dir}`);

  // ---- 1. write ----
  const store = await LedgerStore.open(net.storeDir);
  const ledger = await Ledger.open(store, genesis);
  const t0 = performance.now();
  const chain = await writeSyntheticChain(net, ledger, { events: EVENTS, patients: PATIENTS, blockSize: BLOCK });
  const { events: written, start, end: time } = chain;
  const writeS = (performance.now() - t0) / 1000;
  const disk = Number(
    execFileSync('du', ['-sb', join(layout.nodes[0]!.dataDir)])
      .toString()
      .split('\t')[0],
  );
  console.log(
    `write: ${written} events in ${chain.blocks} blocks, ${writeS.toFixed(1)} s (${(written / writeS).toFixed(0)} events/s incl. ${(chain.signMs / 1000).toFixed(1)} s of client signing); ${mb(disk)} MB on disk (${(disk / written).toFixed(0)} B/event)`,
  );

  // ---- 2. queries ----
  const trail: number[] = [];
  for (let q = 0; q < 200; q++) {
    const patient = `pat-${Math.floor(Math.random() * PATIENTS)}`;
    const s = performance.now();
    const page = await store.queryEvents({ patient }, { limit: 50 });
    trail.push(performance.now() - s);
    if (page.events.length === 0) throw new Error('empty trail');
  }
  const userQ: number[] = [];
  for (let q = 0; q < 100; q++) {
    const s = performance.now();
    await store.queryEvents({ user: `pat-${Math.floor(Math.random() * PATIENTS)}` }, { limit: 50 });
    userQ.push(performance.now() - s);
  }
  const rangeQ: number[] = [];
  for (let q = 0; q < 50; q++) {
    const from = start + Math.floor(Math.random() * Math.max(1, time - start - 60_000));
    const s = performance.now();
    await store.queryEvents({ from, to: from + 60_000 }, { limit: 50 });
    rangeQ.push(performance.now() - s);
  }
  console.log(
    `query: patient trail (50 newest of ${written}) p50 ${pct(trail, 50).toFixed(1)} ms, p99 ${pct(trail, 99).toFixed(1)} ms; user trail p50 ${pct(userQ, 50).toFixed(1)} ms; 1-minute time range p50 ${pct(rangeQ, 50).toFixed(1)} ms`,
  );

  // ---- 3. full verification (scripts/bench-verify.ts measures the other verifiers) ----
  const v0 = performance.now();
  const checker = new ChainChecker(genesis); // no signature cache: every signature checked
  for (let h = 1; h <= chain.blocks; h++) checker.next(checker.decode(await store.getBlockBytes(h), h), (await store.getCertificate(h))!);
  const verifyS = (performance.now() - v0) / 1000;
  console.log(
    `verify: full chain re-executed from genesis, every signature checked: ${(written / verifyS).toFixed(0)} events/s (${verifyS.toFixed(1)} s, one core)`,
  );
  await store.close();

  // ---- 4. memory of a node on this data ----
  const a = new NodeProcess('hosp-a', layout.nodes[0]!.configFile, layout.nodes[0]!.apiUrl);
  const b = new NodeProcess(
    'hosp-b',
    layout.nodes[1]!.configFile,
    layout.nodes[1]!.apiUrl,
    undefined,
    values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [],
  );
  try {
    a.start();
    await a.waitReady(300_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const rss = Number(readFileSync(`/proc/${a.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) * 1024;
    console.log(`memory: node with ${written} events resident ${mb(rss)} MB`);

    // ---- 5. sync ----
    if (values.sync) {
      b.start();
      const s0 = performance.now();
      await b.waitReady(1_800_000, (s) => s.height >= ledger.height);
      const syncS = (performance.now() - s0) / 1000;
      console.log(
        `sync: empty node caught up ${ledger.height} blocks / ${written} events in ${syncS.toFixed(1)} s (${(written / syncS).toFixed(0)} events/s, fully verified)`,
      );
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
