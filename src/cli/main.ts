import { Command, InvalidArgumentError } from 'commander';
import { runCluster } from './commands/cluster.js';
import { runNode } from './commands/node.js';
import { runStatus } from './commands/status.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function buildProgram(): Command {
  const program = new Command('medledger')
    .description('MedLedger: a peer-to-peer replicated audit ledger for hospital medical records')
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander's own exits (help, version, usage errors) keep their codes; usage errors are 2.
      process.exit(err.exitCode === 1 ? 2 : err.exitCode);
    });

  program
    .command('node')
    .description('run one hospital node')
    .requiredOption('--config <file>', 'node configuration file (JSON)')
    .option('--exit-with-stdin', 'stop when stdin closes (used by the cluster command)')
    .action(runNode);

  program
    .command('cluster')
    .description('start a local network of N node processes with fresh keys, a genesis and demo users')
    .option('--nodes <n>', 'number of hospital nodes', positiveInt, 4)
    .requiredOption('--dir <dir>', 'directory for keys, configs, data and logs (wiped if it holds an earlier cluster)')
    .option('--base-port <port>', 'first API port; p2p ports start at base+100', positiveInt, 7700)
    .option('--period <ms>', 'block period in milliseconds', positiveInt)
    .action((opts: { nodes: number; dir: string; basePort: number; period?: number }) =>
      runCluster({ nodes: opts.nodes, dir: opts.dir, basePort: opts.basePort, ...(opts.period ? { periodMs: opts.period } : {}) }),
    );

  program
    .command('status')
    .description("print a node's chain status")
    .requiredOption('--api <url>', 'node API, e.g. http://127.0.0.1:7700')
    .option('--json', 'machine-readable output (SPEC §7)')
    .action(runStatus);

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
