/**
 * Ed25519 micro-benchmark: verifications (and signatures) per second on one core, for each backend that
 * loads on this machine (records/crypto/ed25519Backends.ts: libsodium through sodium-native, node:crypto),
 * and the worker pool that sync, the integrity monitor and `medledger verify` use, on all cores:
 *
 *   npx tsx scripts/bench-ed25519.ts [--count 20000] [--keys 1000] [--message-bytes 100] [--out bench-results]
 *
 * Messages are about the size of what MedLedger signs (a domain tag, the genesis hash, a 32-byte id), under
 * --keys distinct keys. Prints the figures and writes them as JSON to bench-results/ed25519-<time>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { availableBackends, libsodiumUnavailable } from '../src/records/crypto/ed25519Backends.js';
import { generateSigningKeyPair, signatureBackend, verifyWith } from '../src/records/crypto/signature.js';
import { SignatureWorkerPool } from '../src/records/crypto/signatureWorkers.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    keys: { type: 'string', default: '1000' },
    'message-bytes': { type: 'string', default: '100' },
    out: { type: 'string', default: 'bench-results' },
  },
});
const COUNT = Number(values.count);
const KEYS = Number(values.keys);
const MESSAGE_BYTES = Number(values['message-bytes']);

/** Best of three timed rounds after a warm-up, in operations per second. */
function rate(count: number, run: () => void): number {
  run();
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  }
  return Math.round(count / (best / 1000));
}

async function main(): Promise<void> {
  const keys = Array.from({ length: KEYS }, () => generateSigningKeyPair());
  const messages = Array.from({ length: COUNT }, () => randomBytes(MESSAGE_BYTES));
  const reference = availableBackends[availableBackends.length - 1]!;
  const signers = keys.map((k) => reference.signer(k.secretKey));
  const items = messages.map((message, i) => ({ key: keys[i % KEYS]!.publicKey, message, sig: signers[i % KEYS]!(message) }));
  console.log(
    `${COUNT} signatures of ${MESSAGE_BYTES}-byte messages under ${KEYS} keys; backends here: ${availableBackends.map((b) => b.name).join(', ')}${libsodiumUnavailable ? ` (libsodium: ${libsodiumUnavailable})` : ''}`,
  );

  const rows = [];
  for (const backend of availableBackends) {
    let valid = 0;
    const verifyPerSecond = rate(COUNT, () => {
      valid = 0;
      for (const { key, message, sig } of items) if (verifyWith(backend, key, message, sig)) valid++;
    });
    if (valid !== COUNT) throw new Error(`${backend.name} refused ${COUNT - valid} valid signatures`);
    const backendSigners = keys.map((k) => backend.signer(k.secretKey));
    const signCount = Math.min(COUNT, 5_000);
    const signPerSecond = rate(signCount, () => {
      for (let i = 0; i < signCount; i++) backendSigners[i % KEYS]!(messages[i]!);
    });
    rows.push({
      backend: backend.name,
      verifyPerSecondPerCore: verifyPerSecond,
      signPerSecondPerCore: signPerSecond,
      verifyMicroseconds: Number((1e6 / verifyPerSecond).toFixed(1)),
    });
    console.log(
      `${backend.name.padEnd(12)} verify ${verifyPerSecond.toLocaleString('en-US')}/s per core (${(1e6 / verifyPerSecond).toFixed(1)} µs), sign ${signPerSecond.toLocaleString('en-US')}/s`,
    );
  }

  // The worker pool as bulk verification uses it (default size), on the backend this process picked.
  const pool = new SignatureWorkerPool();
  await pool.verify(items);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const ok = await pool.verify(items);
    best = Math.min(best, performance.now() - t0);
    if (ok.some((v) => !v)) throw new Error('the worker pool refused a valid signature');
  }
  const poolPerSecond = Math.round(COUNT / (best / 1000));
  await pool.close();
  console.log(
    `worker pool (${signatureBackend()}, ${Math.max(1, Math.min(4, availableParallelism()))} threads): ${poolPerSecond.toLocaleString('en-US')} verifications/s`,
  );

  const date = new Date().toISOString();
  const out = {
    date,
    machine: { cpus: availableParallelism(), model: cpus()[0]?.model, node: process.version },
    setup: { count: COUNT, keys: KEYS, messageBytes: MESSAGE_BYTES },
    backends: rows,
    pool: { backend: signatureBackend(), threads: Math.max(1, Math.min(4, availableParallelism())), verifyPerSecond: poolPerSecond },
  };
  mkdirSync(values.out, { recursive: true });
  const file = join(values.out, `ed25519-${date.replace(/[:.]/g, '-').slice(0, 19)}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`written to ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
