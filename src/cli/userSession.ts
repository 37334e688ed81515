import type { Command } from 'commander';
import { login } from '../client/accounts.js';
import type { ActionOutcome, Session } from '../client/session.js';
import { readSecret, UsageError } from './passwordPrompt.js';
import type { Parsed } from '../client/inputs.js';

/**
 * What every scripting command shares: `--api URL --user ID [--keystores DIR]`, the password from
 * MEDLEDGER_PASSWORD or a no-echo prompt, and the exit codes 0 ok, 1 denied by the ledger, 2 otherwise.
 */
export interface UserOptions {
  api: string;
  user: string;
  keystores?: string;
  /** The genesis file recipients' keys are checked against (default: genesis.json in the keystore directory). */
  genesis?: string;
}

export const PASSWORD_ENV = 'MEDLEDGER_PASSWORD';

export function withUserOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--api <url>', 'node API, e.g. http://127.0.0.1:7700')
    .requiredOption('--user <id>', 'your user id (the keystore to unlock)')
    .option('--keystores <dir>', 'keystore directory (default: ~/.medledger/keystores; for a local cluster, the node names its own)')
    .option('--genesis <file>', "the network's genesis file, to check recipients' keys against (default: genesis.json in the keystore directory)")
    .addHelpText(
      'after',
      `\nPassword: from ${PASSWORD_ENV}, else prompted without echo.\nExit codes: 0 ok, 1 denied by the ledger (reason printed), 2 usage or other error.`,
    );
}

/** `fallbackApis`: where record reads go next when content cannot be read through `opts.api` (record show). */
export async function signIn(opts: UserOptions, fallbackApis: string[] = []): Promise<Session> {
  const password = await readSecret(`Password for ${opts.user}: `, PASSWORD_ENV);
  const session = await login({
    apiUrl: opts.api,
    userId: opts.user,
    password,
    ...(opts.keystores ? { keystoreDir: opts.keystores } : {}),
    ...(opts.genesis ? { genesisFile: opts.genesis } : {}),
    ...(fallbackApis.length > 0 ? { fallbackApiUrls: fallbackApis } : {}),
  });
  warnUnpinned(session);
  return session;
}

/** Without a pinned genesis, keys are checked against the node's own: say so (README, "Verified recipient keys"). */
export function warnUnpinned(session: Session): void {
  if (!session.recipientKeys.pinned) {
    process.stderr.write(
      "warning: no pinned genesis file (--genesis FILE, or genesis.json in the keystore directory); recipients' keys are checked against the node's own genesis\n",
    );
  }
}

/** Prints the reason and sets exit code 1 when the ledger refused; returns whether it succeeded. */
export function reportOutcome(outcome: ActionOutcome<unknown>, success: string | (() => string), quiet = false): boolean {
  if (outcome.denied) {
    process.stderr.write(`denied: ${outcome.denied}\n`);
    process.exitCode = 1;
    return false;
  }
  if (!quiet) process.stdout.write(`${typeof success === 'function' ? success() : success}\n`);
  return true;
}

/** A flag's value through a client-layer parser; a bad value is a usage error (exit 2). */
export function flag<T>(name: string, value: string | undefined, parse: (text: string) => Parsed<T>): T | undefined {
  if (value === undefined) return undefined;
  const r = parse(value);
  if (!r.ok) throw new UsageError(`--${name}: ${r.error}`);
  return r.value;
}

/** Whose records: `--patient`, or the user themselves when they are a patient. */
export function patientOf(session: Session, patient: string | undefined): string {
  if (patient) return patient;
  if (session.keys.role === 'patient') return session.userId;
  throw new UsageError('--patient is required for staff');
}

export const json = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
