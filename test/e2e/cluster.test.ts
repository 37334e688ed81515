import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../../src/cli/nodeProcess.js';
import { freePorts } from '../support/testNetwork.js';

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

  async function startCluster(nodes: number) {
    const dir = mkdtempSync(join(tmpdir(), 'medledger-cluster-'));
    dirs.push(dir);
    // The cluster uses ports base..base+N-1 (API) and base+100.. (p2p): start from a port that was free.
    const [base] = await freePorts(1);
    const child = spawn(process.execPath, [CLI_ENTRY, 'cluster', '--nodes', String(nodes), '--dir', join(dir, 'c'), '--base-port', String(base! % 50_000 + 10_000)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('cluster ready') || child.exitCode !== null, 120_000);
    return { child, output: () => out, dir: join(dir, 'c') };
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
});
