import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { demoPassword } from '../demoData.js';
import { createNetwork } from '../networkSetup.js';

/**
 * `medledger init --nodes N --dir DIR`: keys, genesis and node configs for a network, without starting
 * anything — for hospitals that run their nodes by hand or on separate machines.
 */
export async function runInit(opts: { nodes: number; dir: string; basePort: number; periodMs?: number }): Promise<void> {
  const dir = resolve(opts.dir);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} is not empty; choose an empty or new directory`);
  const layout = await createNetwork({
    dir,
    nodes: opts.nodes,
    basePort: opts.basePort,
    adminPassword: () => demoPassword(),
    ...(opts.periodMs ? { consensus: { periodMs: opts.periodMs } } : {}),
  });
  process.stdout.write(`genesis ${layout.genesisFile}\n`);
  for (const n of layout.nodes) {
    process.stdout.write(`node ${n.name} config=${n.configFile} api=${n.apiUrl} p2p=/ip4/127.0.0.1/tcp/${n.p2pPort} peer=${n.peerId}\n`);
    process.stdout.write(`  admin ${n.admin.id} password ${n.admin.password} (keystore in ${n.keystoreDir})\n`);
  }
  process.stdout.write('start each node with: npx medledger node --config <config>\n');
}
