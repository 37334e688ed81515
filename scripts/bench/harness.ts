/**
 * Shared pieces of the benchmarks (scripts/bench.ts and the single-purpose scripts): process CPU time and
 * resident memory from /proc, percentiles, free loopback ports, the machine's description, JSON output.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { allocatorEnv } from '../../src/cli/nodeProcess.js';
import { isPortFree, networkPorts } from '../../src/cli/portCheck.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let clockTicks: number | undefined;
/** Kernel clock ticks per second (the unit of utime/stime in /proc/<pid>/stat). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc; NaN once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/** Resident memory of a process in MB, from /proc; NaN once it is gone. */
export function rssMB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'));
    return Math.round(Number(line?.split(/\s+/)[1] ?? NaN) / 1024);
  } catch {
    return NaN;
  }
}

/** Samples the resident memory of some processes every `intervalMs` and keeps each one's peak (bounded: stop() ends it). */
export class RssPeaks {
  readonly peaks: number[];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: () => (number | undefined)[],
    intervalMs = 500,
  ) {
    this.peaks = pids().map(() => 0);
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    this.pids().forEach((pid, i) => {
      const mb = rssMB(pid);
      if (Number.isFinite(mb)) this.peaks[i] = Math.max(this.peaks[i] ?? 0, mb);
    });
  }

  stop(): number[] {
    this.sample();
    clearInterval(this.timer);
    return [...this.peaks];
  }
}

/** The p-th percentile of an ascending array (nearest rank); NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** The machine the figures come from (written into every result file). */
export function machine(): { host: string; cpus: number; model: string; memGiB: number; node: string; os: string; allocator: string } {
  const env = allocatorEnv();
  return {
    host: hostname(),
    cpus: availableParallelism(),
    model: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${process.platform} ${release()}`,
    allocator: env.LD_PRELOAD ? 'jemalloc' : 'glibc (MALLOC_ARENA_MAX=2)',
  };
}

/** Writes `value` as JSON into `dir/name` (creating the directory) and returns the path. */
export function writeJson(dir: string, name: string, value: unknown): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

/** Rounds for reports: integers above 100, else three significant digits. */
export function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  return Math.abs(x) >= 100 ? Math.round(x) : Number(x.toPrecision(3));
}

/**
 * A base port whose `nodes` API and p2p ports (src/cli/portCheck.ts networkPorts: base+i, base+100+i) are all
 * free, below Linux's ephemeral range (32768+) so that no outgoing connection takes one meanwhile.
 */
export async function freeBasePort(nodes = 4): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await Promise.all(networkPorts(base, nodes).map((p) => isPortFree(p)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free range of ports found on 127.0.0.1');
}

/**
 * CPU time of some processes sampled every `intervalMs` (until stop()), so that the CPU used within a
 * window that is only known afterwards (e.g. up to the moment the last event was final) can be read back.
 */
export class CpuTrace {
  private readonly samples: { at: number; cpu: number[] }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: () => (number | undefined)[],
    intervalMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    this.samples.push({ at: performance.now(), cpu: this.pids().map(cpuSeconds) });
  }

  /** CPU seconds of each process between the samples nearest to `from` and `to` (performance.now() times). */
  between(from: number, to: number): number[] {
    const nearest = (t: number) => this.samples.reduce((best, s) => (Math.abs(s.at - t) < Math.abs(best.at - t) ? s : best));
    const a = nearest(from);
    const b = nearest(to);
    return b.cpu.map((c, i) => c - a.cpu[i]!);
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}
