/**
 * Full-chain verification speed (target: ≥ 15,000 events/s on 2 cores, README "Performance"), for the three verifiers of
 * issue #5, on a chain of --events real signed transactions in certified blocks:
 *
 *   npm run build && npx tsx scripts/bench-verify.ts [--events 200000] [--block-size 2000] [--replicas 2]
 *
 * 1. ChainChecker on one core: every block re-executed from genesis, every signature checked inline.
 * 2. ChainChecker with signatures checked on two worker threads ahead of execution (what the monitor and
 *    `medledger verify` do).
 * 3. The node's IntegrityMonitor, one unthrottled pass over its LevelDB (blocks, certificates, stored
 *    events, the index digests both ways, the state): on one core as a node runs it, and with workers.
 * 4. `verifyReplicas` against --replicas node processes started on copies of that data directory:
 *    download through the HTTP API, re-verification, comparison. (Each node first finishes its own
 *    startup integrity pass, whose wall time is reported too.)
 * Everything runs on 127.0.0.1 and stops by itself.
 */
import '../src/polyfill.js';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { NodeProcess } from '../src/cli/nodeProcess.js';
import { ChainChecker } from '../src/consensus/chainCheck.js';
import { verifyReplicas } from '../src/client/verifyReplicas.js';
import { IntegrityMonitor } from '../src/node/integrity/monitor.js';
import { Ledger } from '../src/node/ledger.js';
import { LedgerStore } from '../src/node/store/ledgerStore.js';
import { benchNetwork, writeSyntheticChain } from './syntheticChain.js';
import { ALL_SIGNATURES, PrecheckCache, SignaturePrecheck } from '../src/consensus/signaturePrecheck.js';
import { signatureBackend } from '../src/records/crypto/signature.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    patients: { type: 'string', default: '5000' },
    'block-size': { type: 'string', default: '2000' },
    replicas: { type: 'string', default: '2' },
    'base-port': { type: 'string', default: '7850' },
    keep: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(values.events);
const PATIENTS = Number(values.patients);
const BLOCK = Number(values['block-size']);
const REPLICAS = Math.min(4, Number(values.replicas));
const rate = (events: number, ms: number) => `${Math.round(events / (ms / 1000)).toLocaleString('en-US')} events/s (${(ms / 1000).toFixed(1)} s)`;

async function main(): Promise<void> {
  const net = await benchNetwork('medledger-verify-bench-', Number(values['base-port']));
  const { dir, layout, genesis, storeDir } = net;
  console.log(`Ed25519 backend: ${signatureBackend()} (MEDLEDGER_ED25519=node:crypto|libsodium picks one)`);
  console.log(`chain of ${EVENTS} events (${PATIENTS} patients, ${BLOCK} per block) in ${dir}`);

  // ---- the chain, written by the node's own store code ----
  const store = await LedgerStore.open(storeDir);
  const ledger = await Ledger.open(store, genesis);
  const { events: written, blocks } = await writeSyntheticChain(net, ledger, { events: EVENTS, patients: PATIENTS, blockSize: BLOCK });
  console.log(`written: ${written} events in ${blocks} blocks`);

  // ---- 1. one core ----
  let t0 = performance.now();
  let checker = new ChainChecker(genesis);
  for (let h = 1; h <= blocks; h++) checker.next(checker.decode(await store.getBlockBytes(h), h), (await store.getCertificate(h))!);
  console.log(`1. ChainChecker, signatures inline (one core):       ${rate(written, performance.now() - t0)}`);

  // ---- 2. signatures on two workers, one chunk ahead (consensus/signaturePrecheck.ts) ----
  // Two stages: while the main thread executes chunk k, the workers check chunk k+1's signatures.
  const precheck = new SignaturePrecheck(genesis, { kinds: ALL_SIGNATURES, workers: 2 });
  const cache = new PrecheckCache();
  t0 = performance.now();
  checker = new ChainChecker(genesis, { txCache: cache, verify: cache.verify });
  async function* stored() {
    for (let h = 1; h <= blocks; h++) yield { h, block: checker.decode(await store.getBlockBytes(h), h), cert: (await store.getCertificate(h))! };
  }
  for await (const chunk of precheck.chunks(stored(), { signed: (b) => ({ block: b.block, certificates: [b.cert] }), into: () => cache.open() })) {
    await chunk.verified;
    for (const { block, cert } of chunk.items) checker.next(block, cert);
    cache.drop(chunk.into);
  }
  await precheck.close();
  console.log(`2. ChainChecker, signatures on 2 worker threads:      ${rate(written, performance.now() - t0)}`);

  // ---- 3. the integrity monitor: as a node runs it (one core), and with worker threads ----
  for (const workers of [false, true]) {
    const monitor = new IntegrityMonitor(ledger, { logger: pino({ level: 'silent' }), workers });
    t0 = performance.now();
    const status = await monitor.scanOnce();
    const monitorMs = performance.now() - t0;
    await monitor.stop();
    if (!status.ok) throw new Error(`monitor found a problem: ${JSON.stringify(status)}`);
    const phases = monitor.lastPass!;
    console.log(
      `3. IntegrityMonitor pass ${workers ? 'with 2 worker threads' : 'on one core (node default)'}: ${rate(written, monitorMs)}: blocks and events ${rate(written, phases.chainMs)}, index digests both ways and state ${(phases.crossCheckMs / 1000).toFixed(1)} s`,
    );
  }
  await store.close();

  // ---- 4. replicas through the API ----
  for (let i = 1; i < REPLICAS; i++) {
    cpSync(storeDir, join(layout.nodes[i]!.dataDir, 'ledger'), { recursive: true });
    cpSync(`${storeDir}-payloads`, join(layout.nodes[i]!.dataDir, 'ledger-payloads'), { recursive: true });
  }
  const nodes = layout.nodes.slice(0, REPLICAS).map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl));
  try {
    t0 = performance.now();
    for (const n of nodes) n.start();
    await Promise.all(nodes.map((n) => n.waitReady(600_000, (s) => s.integrity.verifiedHeight >= blocks)));
    console.log(
      `   (each node's own startup integrity pass, throttled to half the time, ${REPLICAS} at once: ${((performance.now() - t0) / 1000).toFixed(1)} s wall)`,
    );
    t0 = performance.now();
    const report = await verifyReplicas(nodes.map((n) => n.apiUrl));
    const ms = performance.now() - t0;
    if (report.exitCode !== 0) throw new Error(`verify failed: ${JSON.stringify(report).slice(0, 500)}`);
    console.log(
      `4. verifyReplicas over ${REPLICAS} replicas (download + verify + compare): ${rate(written, ms)} of chain, ${rate(written * REPLICAS, ms).replace(' events/s', ' replica-events/s')}`,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
