/**
 * What the integrity monitor's payload checks cost (issue 9): a chain of records with real sealed payloads
 * (default 20,000 records of 1–4 KB, 5% of them deleted later, so purges are checked too) is written into
 * hospital A's store with the node's own code; then the monitor's full pass from genesis is timed with and
 * without its payload checks, unthrottled (IntegrityMonitor.scanOnce) and at the node's throttles (the
 * startup pass at half the wall time, later passes at a quarter), and the same replica's GET /v1/payloads
 * listing (what `medledger verify --payloads` asks each node for) is timed over the whole chain.
 *
 *   npx tsx scripts/bench-payloads.ts [--records 20000] [--patients 2000] [--min-bytes 1024] [--max-bytes 4096]
 *                                     [--block-size 500] [--delete-share 0.05] [--repeat 2]
 *
 * Prints the figures and writes them as JSON to bench-results/payload-checks-<time>.json. Everything runs in
 * this process on a temporary directory (no node process, no network); every loop is bounded.
 */
import '../src/polyfill.js';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { newUserKeys } from '../src/client/userKeys.js';
import { buildBlock } from '../src/consensus/blockExecution.js';
import { proposerIndex } from '../src/consensus/tendermint.js';
import { certificateFromVotes, signVote } from '../src/consensus/votes.js';
import { IntegrityMonitor } from '../src/node/integrity/monitor.js';
import { Ledger } from '../src/node/ledger.js';
import { listPayloads } from '../src/node/payloadListing.js';
import { payloadKeys } from '../src/node/payloads.js';
import { LedgerStore } from '../src/node/store/ledgerStore.js';
import { createSigner } from '../src/records/crypto/signature.js';
import { blobId, sealBlob } from '../src/records/envelope.js';
import { payloadKind } from '../src/records/payloadKind.js';
import { signTx } from '../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../src/records/tx/types.js';
import { benchNetwork } from './syntheticChain.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    patients: { type: 'string', default: '2000' },
    'min-bytes': { type: 'string', default: '1024' },
    'max-bytes': { type: 'string', default: '4096' },
    'block-size': { type: 'string', default: '500' },
    'delete-share': { type: 'string', default: '0.05' },
    repeat: { type: 'string', default: '2' },
    'base-port': { type: 'string', default: '7670' },
    keep: { type: 'boolean', default: false },
  },
});
const RECORDS = Number(values.records);
const PATIENTS = Number(values.patients);
const MIN = Number(values['min-bytes']);
const MAX = Number(values['max-bytes']);
const BLOCK = Number(values['block-size']);
const DELETE_SHARE = Number(values['delete-share']);
const REPEAT = Math.max(1, Number(values.repeat));

interface PassFigure {
  checks: 'with payload checks' | 'without payload checks';
  throttle: string;
  /** Wall time of the whole pass (chain re-execution and, unthrottled, the index and state cross-checks). */
  seconds: number;
  chainSeconds: number;
  crossCheckSeconds: number;
  /** CPU time of this process during an unthrottled pass (main thread and libuv's pool, where LevelDB reads run). */
  cpuSeconds?: number;
  payloadsChecked: number;
}

async function main(): Promise<void> {
  const net = await benchNetwork('medledger-payload-bench-', Number(values['base-port']));
  const { genesis, validators, layout } = net;
  console.log(
    `chain of ${RECORDS} records (${MIN}–${MAX} B of content each, ${(DELETE_SHARE * 100).toFixed(0)}% deleted later) for ${PATIENTS} patients in ${net.dir}`,
  );
  const store = await LedgerStore.open(net.storeDir);
  const ledger = await Ledger.open(store, genesis);

  // ---- the chain: registrations, records with sealed payloads, some deletions ----
  const patients = Array.from({ length: PATIENTS }, (_, i) => newUserKeys(`pat-${i}`, 'patient', layout.nodes[i % 4]!.hospital));
  const signers = patients.map((p) => createSigner(p.signSecret));
  let nonce = 1;
  let time = genesis.file.time + 1_000;
  let payloadBytes = 0;
  const t0 = performance.now();
  const commit = async (items: { tx: Tx; payload?: Uint8Array }[]) => {
    const height = ledger.height + 1;
    const { executed, dropped } = buildBlock({
      genesis,
      parent: ledger.headRef,
      lastCommit: await ledger.headCertificate(),
      state: ledger.state,
      candidates: items.map((i) => i.tx),
      round: 0,
      time,
      signer: validators[proposerIndex(4, height, 0)]!,
    });
    if (dropped.length > 0) throw new Error(`dropped ${dropped.length}: ${dropped[0]!.error.message}`);
    const votes = [0, 1, 2].map((v) =>
      signVote({ type: 'precommit', network: genesis.file.network, height, round: 0, validator: v, block: executed.hash }, validators[v]!, genesis.hash),
    );
    const payloads = new Map(
      items.flatMap((i) => (i.payload ? [[i.tx.idHex, { bytes: i.payload, keys: payloadKeys(payloadKind(i.tx.tx)!, i.payload) }] as const] : [])),
    );
    await ledger.commit({ executed, cert: certificateFromVotes(votes), payloads });
    time += 100;
  };
  const sign = (i: number, fields: Omit<UnsignedTx, 'v' | 'actor' | 'key' | 'via' | 'nonce' | 'time'>) => {
    const p = patients[i]!;
    return signTx({ v: 1, actor: p.userId, key: p.signPublic, via: p.hospital, nonce: nonce++, time, ...fields } as UnsignedTx, signers[i]!, genesis.hash);
  };
  for (let from = 0; from < PATIENTS; from += BLOCK) {
    const batch: { tx: Tx }[] = [];
    for (let i = from; i < Math.min(PATIENTS, from + BLOCK); i++)
      batch.push({ tx: sign(i, { type: 'registerPatient', body: { encKey: patients[i]!.encPublic! } } as never) });
    await commit(batch);
  }
  const records: { record: string; patient: number }[] = [];
  for (let from = 0; from < RECORDS; from += BLOCK) {
    const batch: { tx: Tx; payload: Uint8Array }[] = [];
    for (let k = from; k < Math.min(RECORDS, from + BLOCK); k++) {
      const i = k % PATIENTS;
      const p = patients[i]!;
      const record = `rec-${k.toString(16).padStart(16, '0')}`;
      const plaintext = randomBytes(MIN + Math.floor(Math.random() * (MAX - MIN + 1)));
      const sealed = sealBlob(plaintext, blobId(record, 'content', 1), [{ id: p.userId, encKey: p.encPublic! }]);
      payloadBytes += sealed.payload.length;
      batch.push({
        tx: sign(i, { type: 'createRecord', patient: p.userId, record, payload: sealed.hash, body: { recipients: [p.userId] } } as never),
        payload: sealed.payload,
      });
      records.push({ record, patient: i });
    }
    await commit(batch);
  }
  const deletions = records.filter((_, k) => k % Math.max(1, Math.round(1 / DELETE_SHARE)) === 0);
  for (let from = 0; from < deletions.length; from += BLOCK) {
    await commit(
      deletions
        .slice(from, from + BLOCK)
        .map(({ record, patient }) => ({ tx: sign(patient, { type: 'deleteRecord', patient: patients[patient]!.userId, record, body: {} } as never) })),
    );
  }
  const writeS = (performance.now() - t0) / 1000;
  const disk = (dir: string) => Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
  console.log(
    `write: ${ledger.height} blocks, ${PATIENTS + RECORDS + deletions.length} transactions, ${RECORDS} payloads (${(payloadBytes / 1024 / 1024).toFixed(0)} MB sealed; ${deletions.length} records deleted) in ${writeS.toFixed(1)} s; ` +
      `${(disk(net.storeDir) / 1024 / 1024).toFixed(0)} MB LevelDB + ${(disk(store.payloadFiles.dir) / 1024 / 1024).toFixed(0)} MB payload files`,
  );
  const live = RECORDS - deletions.length;

  // ---- the monitor's full pass, with and without payload checks ----
  const logger = pino({ level: 'silent' });
  const unthrottled = async (checkPayloads: boolean): Promise<PassFigure> => {
    const monitor = new IntegrityMonitor(ledger, { logger, checkPayloads });
    const s = performance.now();
    const cpu = process.cpuUsage();
    const status = await monitor.scanOnce();
    const seconds = (performance.now() - s) / 1000;
    const used = process.cpuUsage(cpu);
    if (!status.ok) throw new Error(`integrity alert: ${JSON.stringify(status.alert)}`);
    const p = monitor.lastPass!;
    return {
      checks: checkPayloads ? 'with payload checks' : 'without payload checks',
      throttle: 'unthrottled',
      seconds,
      chainSeconds: p.chainMs / 1000,
      crossCheckSeconds: p.crossCheckMs / 1000,
      cpuSeconds: (used.user + used.system) / 1e6,
      payloadsChecked: monitor.payloads.checked,
    };
  };
  /** The pass a node runs at start (or later, at the background share), timed until it reports itself done. */
  const throttled = async (checkPayloads: boolean, duty: number, label: string): Promise<PassFigure> => {
    const monitor = new IntegrityMonitor(ledger, { logger, checkPayloads, startupDuty: duty, backgroundDuty: duty });
    const s = performance.now();
    monitor.start();
    const deadline = Date.now() + 30 * 60_000;
    while (!monitor.lastPass && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const seconds = (performance.now() - s) / 1000;
    await monitor.stop();
    if (!monitor.lastPass) throw new Error('throttled pass did not finish in 30 minutes');
    if (!monitor.status().ok) throw new Error(`integrity alert: ${JSON.stringify(monitor.status().alert)}`);
    const p = monitor.lastPass;
    return {
      checks: checkPayloads ? 'with payload checks' : 'without payload checks',
      throttle: label,
      seconds,
      chainSeconds: p.chainMs / 1000,
      crossCheckSeconds: p.crossCheckMs / 1000,
      payloadsChecked: monitor.payloads.checked,
    };
  };

  await unthrottled(false); // warm-up: the page cache holds the store and the payload files from here on
  const passes: PassFigure[] = [];
  const best = (xs: PassFigure[]) => xs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const modes: [string, (on: boolean) => Promise<PassFigure>][] = [
    ['unthrottled', (on) => unthrottled(on)],
    ['startup throttle (0.5 of wall time)', (on) => throttled(on, 0.5, 'startup throttle (0.5 of wall time)')],
    ['background throttle (0.25 of wall time)', (on) => throttled(on, 0.25, 'background throttle (0.25 of wall time)')],
  ];
  const rows: {
    throttle: string;
    without: PassFigure;
    with: PassFigure;
    extraSeconds: number;
    extraShare: number;
    payloadChecksPerSecond: number;
    microsPerPayload: number;
  }[] = [];
  for (const [label, run] of modes) {
    const off: PassFigure[] = [];
    const on: PassFigure[] = [];
    // Alternating, so that neither side always runs on a warmer cache.
    for (let k = 0; k < (label === 'unthrottled' ? REPEAT + 1 : REPEAT); k++) {
      off.push(await run(false));
      on.push(await run(true));
    }
    passes.push(...off, ...on);
    const without = best(off);
    const withChecks = best(on);
    const extra = withChecks.chainSeconds - without.chainSeconds;
    const checked = withChecks.payloadsChecked;
    rows.push({
      throttle: label,
      without,
      with: withChecks,
      extraSeconds: extra,
      extraShare: extra / without.chainSeconds,
      payloadChecksPerSecond: checked / Math.max(1e-9, extra),
      microsPerPayload: (extra * 1e6) / Math.max(1, checked),
    });
    const cpu = withChecks.cpuSeconds !== undefined ? ` CPU ${without.cpuSeconds!.toFixed(1)} → ${withChecks.cpuSeconds.toFixed(1)} s;` : '';
    console.log(
      `monitor full pass, ${label}:${cpu} ${without.seconds.toFixed(1)} s without payload checks, ${withChecks.seconds.toFixed(1)} s with (chain part ${without.chainSeconds.toFixed(2)} → ${withChecks.chainSeconds.toFixed(2)} s, ` +
        `+${(100 * (extra / without.chainSeconds)).toFixed(0)}%); ${checked} payloads checked: ${((extra * 1e6) / Math.max(1, checked)).toFixed(0)} µs each of wall time, ${(checked / Math.max(1e-9, extra)).toFixed(0)} payload checks/s`,
    );
  }

  // ---- the listing `verify --payloads` asks each replica for ----
  const l0 = performance.now();
  let listed = 0;
  let requests = 0;
  for (let from = 1; from <= ledger.height;) {
    const page = await listPayloads(ledger, from, ledger.height);
    listed += page.payloads.length;
    requests++;
    from = page.to + 1;
  }
  const listS = (performance.now() - l0) / 1000;
  console.log(
    `GET /v1/payloads over the whole chain: ${listed} entries (${live} held, hashed) in ${requests} pages, ${listS.toFixed(2)} s (${(listed / listS).toFixed(0)} entries/s, in-process, no HTTP)`,
  );

  await store.close();
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    chain: {
      blocks: ledger.height,
      records: RECORDS,
      patients: PATIENTS,
      deleted: deletions.length,
      payloadBytes: { min: MIN, max: MAX, totalSealed: payloadBytes },
      blockSize: BLOCK,
    },
    monitor: rows,
    passes,
    listing: { entries: listed, requests, seconds: listS, entriesPerSecond: listed / listS },
  };
  mkdirSync('bench-results', { recursive: true });
  const file = join('bench-results', `payload-checks-${out.date.replace(/[:.]/g, '-').slice(0, 19)}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
  if (!values.keep) rmSync(net.dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
