import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createDemoUsers } from '../demoData.js';
import { createNetwork } from '../networkSetup.js';
import { demoPassword } from '../demoData.js';
import { NodeProcess } from '../nodeProcess.js';
import { assertPortsFree, networkPorts } from '../portCheck.js';

const MARKER = '.medledger-cluster';

/**
 * `medledger cluster --nodes N --dir DIR`: a fresh local network of N node processes with demo users,
 * running until SIGINT/SIGTERM, then stopped cleanly (PROTOCOL.md §7.6).
 */
export async function runCluster(opts: { nodes: number; dir: string; basePort: number; periodMs?: number }): Promise<void> {
  const dir = resolve(opts.dir);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    // Only a directory this command created before is wiped; anything else is refused.
    if (!existsSync(join(dir, MARKER))) throw new Error(`${dir} is not empty and is not a cluster directory; choose another --dir`);
    rmSync(dir, { recursive: true, force: true });
  }
  await assertPortsFree(networkPorts(opts.basePort, opts.nodes));
  const layout = await createNetwork({
    dir,
    nodes: opts.nodes,
    basePort: opts.basePort,
    adminPassword: () => demoPassword(),
    ...(opts.periodMs ? { consensus: { periodMs: opts.periodMs } } : {}),
  });
  writeFileSync(join(dir, MARKER), 'created by medledger cluster\n');
  const processes = layout.nodes.map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl));
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping cluster…\n');
    await Promise.all(processes.map((p) => p.stop()));
    process.stdout.write('cluster stopped\n');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  try {
    for (const p of processes) p.start();
    for (const [i, p] of processes.entries()) {
      const status = await p.waitReady(60_000, (s) => s.peers.length >= Math.min(1, opts.nodes - 1));
      process.stdout.write(`node ${layout.nodes[i]!.name} api=${layout.nodes[i]!.apiUrl} peer=${status.peerId}\n`);
    }
    await Promise.all(processes.map((p) => p.waitReady(60_000, (s) => s.peers.length >= opts.nodes - 1 && s.height >= 1)));
    const users = await createDemoUsers(layout);
    process.stdout.write('demo users (user  role  hospital  password  api):\n');
    for (const u of users) process.stdout.write(`  ${u.id.padEnd(8)} ${u.role.padEnd(8)} ${u.hospital}  ${u.password}  ${u.api}\n`);
    process.stdout.write(`logs: ${join(dir, '<hospital>', 'node.log')}   open a terminal UI: npx medledger tui --api ${layout.nodes[0]!.apiUrl}\n`);
    process.stdout.write('cluster ready\n');
  } catch (err) {
    process.stderr.write(`cluster failed: ${(err as Error).message}\n`);
    await stopAll(2);
  }
}
