/**
 * LevelDB's effect on a process's resident memory: writes audit-index-shaped batches (one event value and
 * five index keys with spread-out prefixes per event, as a node's commit writes them) into a fresh database
 * under each allocator and prints resident memory every 50 batches. Under glibc malloc it grows without
 * bound (compactions fragment the heap); under jemalloc it levels off. That is why node processes run on
 * jemalloc when the machine has it (cli/nodeProcess.ts `allocatorEnv`).
 *
 *   npx tsx scripts/leveldb-memory.ts [--batches 300]
 *
 * Runs one child process per allocator available here (bounded: --batches × 12,000 keys, 240 s each), in a
 * temporary directory it removes, and writes bench-results/leveldb-memory-<date>-<host>.json.
 */
import { ClassicLevel } from 'classic-level';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { allocatorEnv } from '../src/cli/nodeProcess.js';

const { values } = parseArgs({ options: { batches: { type: 'string', default: '300' }, child: { type: 'boolean', default: false } } });
const BATCHES = Math.min(2_000, Number(values.batches));
const EVENTS_PER_BATCH = 2_000;

async function child(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'medledger-leveldb-memory-'));
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', maxOpenFiles: 50 });
  await db.open();
  const samples: { batch: number; rssMB: number }[] = [];
  const deadline = Date.now() + 240_000;
  let seq = 0;
  try {
    for (let b = 0; b <= BATCHES && Date.now() < deadline; b++) {
      const ops: { type: 'put'; key: string; value: Uint8Array }[] = [];
      for (let i = 0; i < EVENTS_PER_BATCH; i++) {
        const s = String(seq++).padStart(17, '0');
        ops.push({ type: 'put', key: `e/${s}`, value: randomBytes(150) });
        for (const ix of ['ip', 'iu', 'ih', 'ir', 'it'])
          ops.push({ type: 'put', key: `${ix}/${randomBytes(4).toString('hex')}\0${s}`, value: new Uint8Array(0) });
      }
      await db.batch(ops);
      if (b % 50 === 0) samples.push({ batch: b, rssMB: Math.round(process.memoryUsage().rss / 2 ** 20) });
    }
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(samples));
}

function main(): void {
  const runs: Record<string, { batch: number; rssMB: number }[]> = {};
  const jemalloc = allocatorEnv().LD_PRELOAD;
  const allocators: [string, Record<string, string>][] = [
    ['glibc', { MALLOC_ARENA_MAX: '2' }],
    ...(jemalloc ? [['jemalloc', { LD_PRELOAD: jemalloc }] as [string, Record<string, string>]] : []),
  ];
  for (const [name, env] of allocators) {
    const { LD_PRELOAD: _drop, ...base } = process.env;
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', '--batches', String(BATCHES)], {
      env: { ...base, ...env },
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (r.status !== 0) throw new Error(`${name} run failed: ${r.stderr.slice(-500)}`);
    runs[name] = JSON.parse(r.stdout) as { batch: number; rssMB: number }[];
    console.log(`${name}: resident MB every 50 batches of ${EVENTS_PER_BATCH * 6} keys: ${runs[name]!.map((s) => s.rssMB).join(' ')}`);
  }
  if (!jemalloc) console.log('jemalloc not installed here (apt install libjemalloc2): glibc only');
  mkdirSync('bench-results', { recursive: true });
  const file = join('bench-results', `leveldb-memory-${new Date().toISOString().slice(0, 10)}-${hostname()}.json`);
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), host: hostname(), keysPerBatch: EVENTS_PER_BATCH * 6, runs }, null, 2)}\n`);
  console.log(`written ${file}`);
}

if (values.child) await child();
else main();
