import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Ed25519 verification on worker threads, for bulk work that is not on the consensus path: syncing a
 * long chain, re-verifying a whole chain. The main thread decodes and executes while the workers check
 * signatures, so both cores are busy. Same check as `verifySignature`, through node:crypto.
 */
export interface SignatureCheck {
  key: Uint8Array;
  message: Uint8Array;
  sig: Uint8Array;
}

// The worker is plain JavaScript, so it runs the same from the compiled package and from the TS sources.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const keys = new Map();
function keyOf(raw) {
  const id = Buffer.from(raw).toString('base64');
  let k = keys.get(id);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([SPKI, Buffer.from(raw)]), format: 'der', type: 'spki' });
    if (keys.size > 50000) keys.clear();
    keys.set(id, k);
  }
  return k;
}
parentPort.on('message', ({ id, items }) => {
  const ok = items.map(({ key, message, sig }) => {
    if (key.length !== 32 || sig.length !== 64) return false;
    try { return verify(null, message, keyOf(key), sig); } catch { return false; }
  });
  parentPort.postMessage({ id, ok });
});
`;

const CHUNK = 256;

export class SignatureWorkerPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { resolve: (ok: boolean[]) => void; reject: (err: Error) => void }>();
  private nextId = 0;
  private turn = 0;

  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(WORKER_SOURCE, { eval: true });
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
