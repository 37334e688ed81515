import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `npm run bench`'s entry (scripts/bench.ts) at a tiny size, so the benchmark scripts cannot rot: every part
 * runs (1 and 4 nodes, latency at three rates, the WAN proxies, a 2,000-event store with sync and verify) and
 * the result file has every field. Figures are not checked against anything: performance is measured by the
 * scripts, not by tests. Needs `npm run build` first (npm test does it).
 */
const out = mkdtempSync(join(tmpdir(), 'medledger-bench-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench.ts', ...args],
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 2) : 0, stdout, stderr });
      },
    );
  });
}

const finite = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
const positive = (x: unknown) => finite(x) && (x as number) > 0;

describe('npm run bench --quick', () => {
  it('runs every benchmark at a tiny size and writes every field of the result file', { timeout: 160_000 }, async () => {
    const run = await runBench(['--quick', '--nodes', '1,4', '--wan', '--out', out]);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const files = readdirSync(out).filter((f) => f.endsWith('-quick.json'));
    expect(files).toHaveLength(1);
    const r = JSON.parse(readFileSync(join(out, files[0]!), 'utf8'));

    expect(r.schema).toBe(1);
    expect(r.quick).toBe(true);
    for (const k of ['host', 'cpus', 'model', 'node']) expect(r.machine[k]).toBeDefined();

    // The ceiling, measured in this run, and what it allows.
    expect(typeof r.ceiling.implementation).toBe('string');
    expect(positive(r.ceiling.verifyPerSecondPerCore)).toBe(true);
    expect(positive(r.ceiling.cores)).toBe(true);
    expect(Object.keys(r.ceiling.allowsEventsPerSecond).sort()).toEqual(['1', '4']);

    // Throughput and CPU per event per node, at each network size, as shares of the ceiling.
    expect(r.throughput.map((t: { nodes: number }) => t.nodes)).toEqual([1, 4]);
    for (const t of r.throughput) {
      expect(positive(t.eventsPerSecond)).toBe(true);
      expect(t.final).toBeGreaterThan(0);
      expect(t.cpuMicrosPerEventPerNode).toHaveLength(t.nodes);
      expect(t.cpuMicrosPerEventPerNode.every(positive)).toBe(true);
      for (const k of ['ceilingEventsPerSecond', 'shareOfCeiling', 'cpuFloorMicros', 'cpuShareOfFloor', 'cpuMicrosPerEventMean'])
        expect(positive(t[k]), k).toBe(true);
      expect(t.rssPeakMB.every(positive)).toBe(true);
      expect(Array.isArray(t.submit.socketDrops)).toBe(true);
      // Read from every node's GET /metrics: each node committed at least the events final on all of them.
      expect(t.nodeCounts.eventsCommitted).toHaveLength(t.nodes);
      for (const committed of t.nodeCounts.eventsCommitted) expect(committed).toBeGreaterThanOrEqual(t.final);
      expect(t.nodeCounts.roundChanges).toHaveLength(t.nodes);
      expect(t.extraRounds).toBe(Math.max(...t.nodeCounts.roundChanges));
      expect(Object.keys(t.shed).sort()).toEqual(['loop', 'memory', 'mempool']);
    }

    // Latency at three offered rates on the 4-node network.
    expect(r.latency).toHaveLength(3);
    for (const l of r.latency) {
      expect(l.nodes).toBe(4);
      for (const k of ['p50Ms', 'p95Ms', 'p99Ms', 'offeredShareOfCeiling']) expect(positive(l[k]), k).toBe(true);
      expect(l.p50Ms).toBeLessThanOrEqual(l.p99Ms);
      expect(l.nodeCounts.eventsCommitted).toHaveLength(4);
    }

    // WAN: every link through a proxy, throughput, latency, heights and the timeouts chosen from them.
    expect(r.wan.directConnections).toBe(0);
    expect(r.wan.proxies.proxies).toBe(12);
    expect(r.wan.proxies.connections).toBeGreaterThanOrEqual(6);
    expect(positive(r.wan.throughput.eventsPerSecond)).toBe(true);
    expect(r.wan.latency).toHaveLength(3);
    expect(r.wan.heightMs.samples).toBeGreaterThan(0);
    for (const k of ['timeoutProposeMs', 'timeoutVoteMs', 'timeoutDeltaMs']) expect(positive(r.wan.suggestedTimeouts[k]), k).toBe(true);

    // Storage: trail query, memory, sync and verification, each against its ceiling or target.
    expect(r.storage.events).toBe(2000);
    for (const k of ['eventsPerSecond', 'ceilingEventsPerSecond', 'shareOfCeiling']) {
      expect(positive(r.sync[k]), `sync.${k}`).toBe(true);
      expect(positive(r.verification[k]), `verification.${k}`).toBe(true);
    }
    expect(positive(r.trailQuery.p50Ms)).toBe(true);
    expect(positive(r.trailQuery.p99Ms)).toBe(true);
    expect(positive(r.rss.atStoreRestMB)).toBe(true);
    expect(positive(r.rss.servingPeakMB)).toBe(true);
    expect(positive(r.rss.underLoadPeakMB)).toBe(true);
    expect(Array.isArray(r.socketDrops)).toBe(true);

    // One table, every figure beside its ceiling.
    expect(r.figures.length).toBeGreaterThanOrEqual(14);
    for (const f of r.figures) for (const k of ['figure', 'value', 'unit', 'against', 'boundBy']) expect(f[k], `${f.figure}.${k}`).toBeDefined();
    expect(run.stdout).toContain('| figure | measured | ceiling (same run) | share | bound by |');
  });
});
