/**
 * Storage, query, verification, memory and sync at scale (SPEC §9), on a chain of --events audit events.
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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createNetwork, newUserKeys } from '../src/cli/networkSetup.js';
import { NodeProcess } from '../src/cli/nodeProcess.js';
import { buildBlock, validateBlock } from '../src/consensus/blockExecution.js';
import { genesisBlock, headerHash } from '../src/consensus/block.js';
import { parseGenesis } from '../src/consensus/genesis.js';
import { proposerIndex } from '../src/consensus/tendermint.js';
import { certificateFromVotes, signVote } from '../src/consensus/votes.js';
import { fromHex } from '../src/records/crypto/bytes.js';
import { createSigner, type Signer } from '../src/records/crypto/signature.js';
import { genesisChanges } from '../src/consensus/genesis.js';
import { MemoryState } from '../src/records/state/memoryState.js';
import { signTx } from '../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../src/records/tx/types.js';
import { Ledger } from '../src/node/ledger.js';
import { LedgerStore } from '../src/node/store/ledgerStore.js';

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
  const dir = mkdtempSync(join(tmpdir(), 'medledger-store-bench-'));
  const layout = await createNetwork({ dir, nodes: 4, basePort: Number(values['base-port']), adminPassword: () => 'Bench-Password-1!', kdf: { N: 1024, r: 8, p: 1 }, logLevel: 'warn' });
  const genesis = parseGenesis(JSON.parse(readFileSync(layout.genesisFile, 'utf8')));
  const validators: Signer[] = layout.nodes.map((n) => createSigner(fromHex(JSON.parse(readFileSync(join(n.dir, 'validator.key.json'), 'utf8')).secretKey)));
  const storeDir = join(layout.nodes[0]!.dataDir, 'ledger');
  console.log(`chain of ${EVENTS} events for ${PATIENTS} patients in ${dir}`);

  // ---- 1. write ----
  const store = await LedgerStore.open(storeDir);
  const ledger = await Ledger.open(store, genesis);
  const patients = Array.from({ length: PATIENTS }, (_, i) => newUserKeys(`pat-${i}`, 'patient', layout.nodes[i % 4]!.hospital));
  const signers = patients.map((p) => createSigner(p.signSecret));
  let nonce = 1;
  let written = 0;
  const start = genesis.file.time + 1_000;
  let time = start; // blocks 100 ms apart
  const t0 = performance.now();
  let signMs = 0;
  let index = 0;
  while (written < EVENTS) {
    const txs: Tx[] = [];
    const s0 = performance.now();
    for (let k = 0; k < BLOCK && written + txs.length < EVENTS; k++, index++) {
      const i = index % PATIENTS;
      const p = patients[i]!;
      const base = { v: 1 as const, actor: p.userId, key: p.signPublic, via: p.hospital, nonce: nonce++, time };
      const unsigned = index < PATIENTS
        ? ({ ...base, type: 'registerPatient', body: { encKey: p.encPublic! } } as UnsignedTx<'registerPatient'>)
        : ({ ...base, type: 'listRecords', patient: p.userId, body: {} } as UnsignedTx<'listRecords'>);
      txs.push(signTx(unsigned, signers[i]!));
    }
    signMs += performance.now() - s0;
    const height = ledger.height + 1;
    const round = 0;
    const { executed, dropped } = buildBlock({ genesis, parent: ledger.headRef, lastCommit: await ledger.headCertificate(), state: ledger.state, candidates: txs, round, time, signer: validators[proposerIndex(4, height, round)]! });
    if (dropped.length > 0) throw new Error(`dropped ${dropped.length}: ${dropped[0]!.error.message}`);
    const votes = [0, 1, 2].map((v) => signVote({ type: 'precommit', network: genesis.file.network, height, round, validator: v, block: executed.hash }, validators[v]!));
    await ledger.commit(executed, certificateFromVotes(votes), new Map());
    written += txs.length;
    time += 100;
  }
  const writeS = (performance.now() - t0) / 1000;
  const disk = Number(execFileSync('du', ['-sb', join(layout.nodes[0]!.dataDir)]).toString().split('\t')[0]);
  console.log(`write: ${written} events in ${ledger.height} blocks, ${writeS.toFixed(1)} s (${(written / writeS).toFixed(0)} events/s incl. ${(signMs / 1000).toFixed(1)} s of client signing); ${mb(disk)} MB on disk (${(disk / written).toFixed(0)} B/event)`);

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
  console.log(`query: patient trail (50 newest of ${written}) p50 ${pct(trail, 50).toFixed(1)} ms, p99 ${pct(trail, 99).toFixed(1)} ms; user trail p50 ${pct(userQ, 50).toFixed(1)} ms; 1-minute time range p50 ${pct(rangeQ, 50).toFixed(1)} ms`);

  // ---- 3. full verification ----
  const v0 = performance.now();
  const state = new MemoryState();
  state.write(genesisChanges(genesis));
  let parent = { header: genesisBlock(genesis).header, hash: headerHash(genesisBlock(genesis).header) };
  let verified = 0;
  for (let h = 1; h <= ledger.height; h++) {
    const block = (await store.getBlock(h))!;
    const executed = validateBlock(block, parent, state, { genesis }); // no signature cache: every signature checked
    state.write(executed.changes);
    parent = { header: block.header, hash: executed.hash };
    verified += executed.txs.length;
  }
  const verifyS = (performance.now() - v0) / 1000;
  console.log(`verify: full chain re-executed from genesis, every signature checked: ${(verified / verifyS).toFixed(0)} events/s (${verifyS.toFixed(1)} s, one core)`);
  await store.close();

  // ---- 4. memory of a node on this data ----
  const a = new NodeProcess('hosp-a', layout.nodes[0]!.configFile, layout.nodes[0]!.apiUrl);
  const b = new NodeProcess('hosp-b', layout.nodes[1]!.configFile, layout.nodes[1]!.apiUrl, undefined, values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : []);
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
      console.log(`sync: empty node caught up ${ledger.height} blocks / ${written} events in ${syncS.toFixed(1)} s (${(written / syncS).toFixed(0)} events/s, fully verified)`);
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
