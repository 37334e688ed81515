import { Command, InvalidArgumentError } from 'commander';
import { runStatus } from './commands/status.js';
import {
  addAppointmentCommands,
  addApproveCommand,
  addDenyCommand,
  addGrantCommand,
  addRequestCommand,
  addRevokeCommand,
  addWhoamiCommand,
} from './commands/access.js';
import { addActivateCommand, addDeactivateCommand, addEnrolCommand, addRecoverCommand, addRegisterCommand } from './commands/accounts.js';
import { addAuditCommand } from './commands/audit.js';
import { addKeygenCommand, addRecoverPatientCommand, addRevokeKeyCommand, addRotateKeysCommand } from './commands/keys.js';
import { addPasswdCommand } from './commands/passwd.js';
import { addRecordCommands } from './commands/records.js';
import { addStatsCommand, addStatsConsentCommand } from './commands/stats.js';

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
    // The node and cluster commands load libp2p and LevelDB only when they run: other commands stay fast.
    .action(async (opts: { config: string; exitWithStdin?: boolean }) => (await import('./commands/node.js')).runNode(opts));

  /** Options shared by the commands that lay out a local network. */
  const networkCommand = (name: string, description: string, dirHelp: string) =>
    program
      .command(name)
      .description(description)
      .option('--nodes <n>', 'number of hospital nodes', positiveInt, 4)
      .requiredOption('--dir <dir>', dirHelp)
      .option('--base-port <port>', 'first API port; p2p ports start at base+100', positiveInt, 7700)
      .option('--period <ms>', 'block period in milliseconds', positiveInt);
  type NetworkOpts = { nodes: number; dir: string; basePort: number; period?: number };
  const networkArgs = (o: NetworkOpts) => ({ nodes: o.nodes, dir: o.dir, basePort: o.basePort, ...(o.period ? { periodMs: o.period } : {}) });

  networkCommand(
    'cluster',
    'start a local network of N node processes with fresh keys, a genesis and demo users',
    'directory for keys, configs, data and logs (wiped if it holds an earlier cluster)',
  ).action(async (o: NetworkOpts) => (await import('./commands/cluster.js')).runCluster(networkArgs(o)));
  networkCommand(
    'init',
    'create keys, a genesis file and node configs for N hospitals, without starting them',
    'new or empty directory for the network files',
  ).action(async (o: NetworkOpts) => (await import('./commands/init.js')).runInit(networkArgs(o)));

  program
    .command('status')
    .description("print a node's chain status")
    .requiredOption('--api <url>', 'node API, e.g. http://127.0.0.1:7700')
    .option('--json', 'machine-readable output (PROTOCOL.md §7.6)')
    .action(runStatus);

  // ---- users: the terminal UI and its scripting twins (issue #4) ----
  program
    .command('tui')
    .description('open the terminal UI against a node (every role: patient, doctor, auditor, admin)')
    .requiredOption('--api <url>', 'node API, e.g. http://127.0.0.1:7700')
    .option('--keystores <dir>', 'keystore directory (default: ~/.medledger/keystores; for a local cluster, the node names its own)')
    .option('--genesis <file>', "the network's genesis file, to check recipients' keys against (default: genesis.json in the keystore directory)")
    // Loaded on demand: React and Ink are not needed by the node or the other commands.
    .action(async (opts: { api: string; keystores?: string; genesis?: string }) => (await import('./commands/tui.js')).runTui(opts));
  addRecordCommands(program.command('record'));
  addAuditCommand(program.command('audit'));
  addGrantCommand(program.command('grant'));
  addRevokeCommand(program.command('revoke'));
  addRequestCommand(program.command('request'));
  addApproveCommand(program.command('approve'));
  addDenyCommand(program.command('deny'));
  addAppointmentCommands(program.command('appointment'));
  addWhoamiCommand(program.command('whoami'));
  addRegisterCommand(program.command('register'));
  addEnrolCommand(program.command('enrol'));
  addActivateCommand(program.command('activate'));
  addDeactivateCommand(program.command('deactivate'));
  addPasswdCommand(program.command('passwd'));
  addRecoverCommand(program.command('recover'));
  addRotateKeysCommand(program.command('rotate-keys'));
  addRevokeKeyCommand(program.command('revoke-key'));
  addRecoverPatientCommand(program.command('recover-patient'));
  addKeygenCommand(program.command('keygen'));
  addStatsCommand(program.command('stats'));
  addStatsConsentCommand(program.command('stats-consent'));

  // ---- auditors: replica verification, inclusion proofs (issue #5) ----
  program
    .command('verify')
    .description("re-verify every replica's chain here, from genesis, and compare them height by height")
    .requiredOption('--api <urls...>', 'node APIs, comma-separated or repeated, e.g. http://127.0.0.1:7700,http://127.0.0.1:7701')
    .option('--genesis <file>', "genesis file to trust (default: the first node's, and every block 0 must match it)")
    .option('--payloads', "also compare every replica's payloads (hashes and presence) with the hashes the chain commits to")
    .option('--json', 'machine-readable report')
    .addHelpText(
      'after',
      '\nExit codes: 0 all replicas verify and agree; 1 a replica differs or fails verification (node and height named),\nor verified equivocation evidence, or (--payloads) a replica lacks, alters or still holds a payload (node and tx named);\n2 the check could not be completed (unreachable node, bad arguments).',
    )
    .action(async (opts: { api: string[]; genesis?: string; json?: boolean; payloads?: boolean }) => (await import('./commands/verify.js')).runVerify(opts));

  program
    .command('prove')
    .description('print the inclusion proof of a committed transaction: its bytes, Merkle audit paths, event, header and commit certificate')
    .requiredOption('--api <url>', 'node API, e.g. http://127.0.0.1:7700')
    .requiredOption('--tx <id>', 'transaction id (64 hex digits)')
    .option('--out <file>', 'write the proof to this file instead of stdout')
    .action(async (opts: { api: string; tx: string; out?: string }) => (await import('./commands/prove.js')).runProve(opts));

  program
    .command('verify-proof')
    .description('check an inclusion proof offline, against the genesis file only (no node is contacted)')
    .argument('<file>', 'proof file written by `medledger prove`')
    .requiredOption('--genesis <file>', "the network's genesis file")
    .option('--json', 'machine-readable verdict')
    .addHelpText('after', '\nExit codes: 0 the proof is valid; 1 it is not (the reason is printed); 2 unreadable input.')
    .action(async (file: string, opts: { genesis: string; json?: boolean }) => (await import('./commands/verifyProof.js')).runVerifyProof(file, opts));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
