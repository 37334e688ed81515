import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Ed25519 verification on worker threads, for bulk work that is not on the consensus path: syncing a
 * long chain, re-verifying a whole chain. The main thread decodes and executes while the workers check
 * signatures, so both cores are busy. Each worker runs `signatureWorker.ts`, which calls the main thread's
 * `verifySignature` (same module, same backend).
 */
export interface SignatureCheck {
  key: Uint8Array;
  message: Uint8Array;
  sig: Uint8Array;
}

/**
 * How a worker thread loads `signatureWorker`: the compiled module next to this one; from the TypeScript
 * sources (vitest, tsx scripts) the same module through tsx, whose loader a worker must register itself.
 */
function workerEntry(): { url: URL; eval?: string } {
  const url = new URL(import.meta.url.endsWith('.ts') ? './signatureWorker.ts' : './signatureWorker.js', import.meta.url);
  if (!url.pathname.endsWith('.ts')) return { url };
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const api = (require(manifest) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default;
  const register = pathToFileURL(join(dirname(manifest), api)).href;
  return { url, eval: `import(${JSON.stringify(register)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });` };
}

/** Checks per message to a worker: small enough to spread a request over every worker. */
const CHUNK = 256;

export class SignatureWorkerPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { resolve: (ok: boolean[]) => void; reject: (err: Error) => void }>();
  private nextId = 0;
  private turn = 0;

  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    const entry = workerEntry();
    this.workers = Array.from({ length: size }, () => {
      const w = entry.eval ? new Worker(entry.eval, { eval: true }) : new Worker(entry.url);
      w.on('message', ({ id, ok }: { id: number; ok: boolean[] }) => {
        this.pending.get(id)?.resolve(ok);
        this.pending.delete(id);
      });
      // A dead worker fails every outstanding request rather than leaving it hanging.
      w.on('error', (err) => this.failAll(err));
      w.on('exit', (code) => code !== 0 && this.failAll(new Error(`signature worker exited with ${code}`)));
      w.unref();
      return w;
    });
  }

  /** One boolean per check, in order. */
  async verify(checks: SignatureCheck[]): Promise<boolean[]> {
    const chunks: Promise<boolean[]>[] = [];
    for (let i = 0; i < checks.length; i += CHUNK) {
      const id = this.nextId++;
      const worker = this.workers[this.turn++ % this.workers.length]!;
      chunks.push(new Promise((resolve, reject) => this.pending.set(id, { resolve, reject })));
      worker.postMessage({ id, items: checks.slice(i, i + CHUNK) });
    }
    // Idle workers are unref'd so the pool never keeps a process alive; while they have work they are
    // ref'd, or a process that waits only on them (a CLI, a benchmark) would exit mid-await.
    for (const w of this.workers) w.ref();
    try {
      return (await Promise.all(chunks)).flat();
    } finally {
      if (this.pending.size === 0) for (const w of this.workers) w.unref();
    }
  }

  private failAll(err: Error): void {
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
