import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../../src/cli/nodeProcess.js';
import { createServer } from 'node:net';
import { isPortFree, networkPorts } from '../../src/cli/portCheck.js';

/** Processes whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');

/** A base port whose API and p2p ports are all free, below Linux's ephemeral range (32768+) so no outgoing connection takes one meanwhile. */
async function freeBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await Promise.all(networkPorts(base, nodes).map((p) => isPortFree(p)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free base port found');
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('medledger cluster', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  function spawnCluster(nodes: number, dir: string, basePort: number) {
    const child = spawn(process.execPath, [CLI_ENTRY, 'cluster', '--nodes', String(nodes), '--dir', dir, '--base-port', String(basePort)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return Object.assign(child, { output: () => out });
  }

  async function startCluster(nodes: number) {
    const dir = mkdtempSync(join(tmpdir(), 'medledger-cluster-'));
    dirs.push(dir);
    const child = spawnCluster(nodes, join(dir, 'c'), await freeBasePort(nodes));
    await until(() => child.output().includes('cluster ready') || child.exitCode !== null, 120_000);
    expect(child.output(), child.output()).toContain('cluster ready');
    return { child, output: child.output, dir: join(dir, 'c') };
  }

  it('prints one line per node, the demo users with passwords, "cluster ready"; SIGTERM stops every node', async () => {
    const { child, output, dir } = await startCluster(2);
    const out = output();
    expect(out).toMatch(/^node hosp-a api=http:\/\/127\.0\.0\.1:\d+ peer=12D3Koo\w+$/m);
    expect(out).toMatch(/^node hosp-b api=http:\/\/127\.0\.0\.1:\d+ peer=12D3Koo\w+$/m);
    for (const user of ['admin-a', 'dr-a', 'aud-a', 'pat-a1', 'pat-a2', 'admin-b', 'dr-b', 'aud-b', 'pat-b1', 'pat-b2']) {
      expect(out).toMatch(new RegExp(`^\\s+${user}\\s+\\w+\\s+hosp-\\w\\s+\\S{12,}\\s+http`, 'm'));
    }
    expect(out.trim().endsWith('cluster ready')).toBe(true);
    expect(existsSync(join(dir, 'genesis.json'))).toBe(true);
    const nodes = childrenOf(child.pid!);
    expect(nodes).toHaveLength(2);
    child.kill('SIGTERM');
    await until(() => child.exitCode !== null, 30_000);
    expect(child.exitCode).toBe(0);
    expect(output()).toContain('cluster stopped');
    for (const pid of nodes) expect(alive(pid)).toBe(false);
  }, 180_000);

  it('leaves no node behind even when the cluster process is killed with SIGKILL', async () => {
    const { child } = await startCluster(2);
    const nodes = childrenOf(child.pid!);
    expect(nodes).toHaveLength(2);
    child.kill('SIGKILL');
    await until(() => nodes.every((pid) => !alive(pid)), 30_000);
  }, 180_000);

  it('refuses to start when one of its ports is taken, naming the port, and starts no node', async () => {
    const base = await freeBasePort(2);
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(base + 101, '127.0.0.1', r));
    try {
      const dir = mkdtempSync(join(tmpdir(), 'medledger-cluster-'));
      dirs.push(dir);
      const child = spawnCluster(2, join(dir, 'c'), base);
      await until(() => child.exitCode !== null, 30_000);
      expect(child.exitCode).not.toBe(0);
      expect(child.output()).toContain(`port ${base + 101} on 127.0.0.1 is already in use; choose another --base-port`);
      expect(existsSync(join(dir, 'c'))).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });
});
