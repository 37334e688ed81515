import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../client/apiClient.js';
import type { StatusResponse } from '../api/contract.js';

/** The package's CLI entry point, so a node runs as its own OS process exactly as a user would start it. */
export const CLI_ENTRY = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/medledger.js');

/**
 * V8's heap of a node process: a bounded old space makes V8 collect garbage before it grows, and smaller
 * young-generation semi-spaces (8 MB instead of 16) cut the heap V8 reserves, so a node under overload stays
 * within its memory bound (README "Backpressure"); its live set is far smaller.
 */
export const NODE_HEAP_ARGS = ['--max-old-space-size=128', '--max-semi-space-size=8'];

/** Where Debian, Ubuntu and Fedora install jemalloc (`apt install libjemalloc2`, `dnf install jemalloc`). */
const JEMALLOC_PATHS = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2'];

/**
 * The memory allocator of a node process. LevelDB's compactions fragment glibc's malloc heap: measured, the
 * resident memory of a process writing index-shaped keys grew without bound (~0.35 MB per 12,000 keys) under
 * glibc and levelled off under jemalloc (scripts/leveldb-memory.ts). So a node runs on jemalloc when the
 * machine has it; otherwise on glibc with two arenas (fewer per-thread heaps to fragment). An operator's own
 * LD_PRELOAD or MALLOC_ARENA_MAX wins.
 */
export function allocatorEnv(exists: (path: string) => boolean = existsSync): Record<string, string> {
  const jemalloc = JEMALLOC_PATHS.find((p) => exists(p));
  // Freed pages go back to the system within a second instead of ten: spikes of a block's commit pass.
  return jemalloc ? { LD_PRELOAD: jemalloc, MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0' } : { MALLOC_ARENA_MAX: '2' };
}

/**
 * One node as a separate OS process (`medledger node --config FILE`), with its output in a log file.
 * The child exits when our end of its stdin closes, so no node outlives the process that started it.
 */
export class NodeProcess {
  private child: ChildProcess | null = null;
  private log: WriteStream | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  readonly api: ApiClient;

  constructor(
    readonly name: string,
    readonly configFile: string,
    readonly apiUrl: string,
    readonly logFile = join(dirname(configFile), 'node.log'),
    /** Extra arguments for the node's Node.js runtime (e.g. --cpu-prof for a benchmark). */
    private readonly runtimeArgs: string[] = [],
    /** Extra environment variables for the node (added to this process's environment; tests set fault hooks here). */
    public env: Record<string, string> = {},
  ) {
    this.api = new ApiClient(apiUrl);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, [...NODE_HEAP_ARGS, ...this.runtimeArgs, CLI_ENTRY, 'node', '--config', this.configFile, '--exit-with-stdin'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...allocatorEnv(), ...process.env, ...this.env },
    });
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    this.child = child;
  }

  /** Waits until the node's API answers (and, optionally, until a condition on its status holds). */
  async waitReady(timeoutMs = 30_000, until?: (s: StatusResponse) => boolean): Promise<StatusResponse> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited while starting (see ${this.logFile})`);
      try {
        const status = await this.api.status();
        if (!until || until(status)) return status;
        last = `height ${status.height}, peers ${status.peers.length}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} not ready after ${timeoutMs} ms: ${last}`);
  }

  /** SIGTERM and wait for a clean exit; SIGKILL after the grace period. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.child || !this.running) return this.closeLog();
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.closeLog();
  }

  /** kill -9: the crash case. */
  async kill(): Promise<void> {
    if (!this.child || !this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.closeLog();
  }

  private closeLog(): void {
    this.log?.end();
    this.log = null;
  }
}
