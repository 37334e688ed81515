import type { Command } from 'commander';
import { activateStaff, inviteStaff, registerPatient } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
import { recoverKeystore, RecoveryError } from '../../client/recovery.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { readNewSecret, readSecret, UsageError } from '../passwordPrompt.js';
import { flag, json, PASSWORD_ENV, reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/** `medledger register` (patient self-registration), `enrol` and `deactivate` (admin), `activate` (staff) for scripts. */
export const NEW_PASSWORD_ENV = 'MEDLEDGER_NEW_PASSWORD';

export function addRegisterCommand(cmd: Command): Command {
  return cmd
    .description('register as a new patient through this node (creates your keystore)')
    .requiredOption('--api <url>', 'node API')
    .requiredOption('--user <id>', 'the user id to register (a pseudonym)')
    .option('--keystores <dir>', 'where to write the keystore (default: ~/.medledger/keystores)')
    .option('--genesis <file>', "the network's genesis file (default: genesis.json in the keystore directory)")
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nPassword (${PASSWORD_POLICY}): from ${PASSWORD_ENV}, else prompted twice without echo.`)
    .action(async (o: UserOptions & { json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const password = await readNewSecret(`New password for ${userId}: `, PASSWORD_ENV);
      let result;
      try {
        result = await registerPatient({
          apiUrl: o.api,
          userId,
          password,
          ...(o.keystores ? { keystoreDir: o.keystores } : {}),
          ...(o.genesis ? { genesisFile: o.genesis } : {}),
        });
      } catch (err) {
        if (/policy|already taken|user id/.test((err as Error).message)) throw new UsageError((err as Error).message);
        throw err;
      }
      if (!reportOutcome(result.outcome, `registered ${userId} as a patient at ${result.session.hospital}`, o.json)) return;
      if (o.json)
        json({ user: userId, hospital: result.session.hospital, tx: result.outcome.id, ...(result.recoveryCode ? { recoveryCode: result.recoveryCode } : {}) });
      else if (result.recoveryCode) {
        // Shown once, here only: never sent to the node, never logged. Without it a forgotten password loses the keys.
        process.stdout.write(
          `\nRecovery code (write this down and keep it safe; it is shown only once):\n\n    ${result.recoveryCode}\n\nWith it, \`medledger recover --api ${o.api} --user ${userId}\` restores your keystore on a new computer or after a forgotten password.\n`,
        );
      }
      if (result.backupError) process.stderr.write(`warning: no key backup was stored on the node (${result.backupError}); you have no recovery code\n`);
    });
}

export const ACTIVATION_CODE_ENV = 'MEDLEDGER_ACTIVATION_CODE';
export const RECOVERY_CODE_ENV = 'MEDLEDGER_RECOVERY_CODE';

/**
 * `medledger recover` (issue 10): a new keystore on this computer from the backup on the home node, fetched with
 * the recovery code. Forgotten password (default): a new password seals the recovered keys. New computer with the
 * same password (`--keep-password`): the password-sealed copy is written as it is, once the password opens it.
 */
export function addRecoverCommand(cmd: Command): Command {
  return cmd
    .description('restore your keystore on this computer with your recovery code (new computer, or forgotten password)')
    .requiredOption('--api <url>', 'your home node API')
    .requiredOption('--user <id>', 'your user id')
    .option('--keystores <dir>', 'where to write the keystore (default: ~/.medledger/keystores)')
    .option('--keep-password', 'keep your current password (new computer): it must open the backed-up keystore')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `\nRecovery code: from ${RECOVERY_CODE_ENV}, else prompted without echo.\nNew password (${PASSWORD_POLICY}): from ${NEW_PASSWORD_ENV}, else prompted twice; with --keep-password, the current one from ${PASSWORD_ENV} or the prompt.\nExit codes: 0 restored, 2 wrong code, wrong password or other error (nothing is written).`,
    )
    .action(async (o: UserOptions & { keepPassword?: boolean; json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const code = await readSecret(`Recovery code for ${userId}: `, RECOVERY_CODE_ENV);
      const secret = o.keepPassword
        ? { password: await readSecret(`Password for ${userId}: `, PASSWORD_ENV) }
        : { newPassword: await readNewSecret(`New password for ${userId}: `, NEW_PASSWORD_ENV) };
      let r;
      try {
        r = await recoverKeystore({ apiUrl: o.api, userId, code, ...secret, ...(o.keystores ? { keystoreDir: o.keystores } : {}) });
      } catch (err) {
        if (err instanceof RecoveryError) throw new UsageError(err.message);
        throw err;
      }
      if (o.json) json({ user: userId, keystore: r.path, keptPassword: !!o.keepPassword });
      else process.stdout.write(`recovered ${userId}: keystore written to ${r.path}${o.keepPassword ? '' : ' under your new password'}\n`);
    });
}

/**
 * `medledger enrol`: the admin invites a doctor or auditor and gets a one-time activation code to hand over
 * out of band (issue 10). No keys or password of the staff member exist on the admin's computer.
 */
export function addEnrolCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('admin: invite a doctor or auditor of your hospital (prints a one-time activation code)'))
    .requiredOption('--id <id>', "the new staff member's user id")
    .requiredOption('--role <role>', 'doctor or auditor')
    .option('--days <n>', 'days until the unused invitation expires (1-30)', '7')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nThe staff member activates the account on their own computer: medledger activate --api URL --user ID.')
    .action(async (o: UserOptions & { id: string; role: string; days: string; json?: boolean }) => {
      const id = flag('id', o.id, parseUserId)!;
      if (o.role !== 'doctor' && o.role !== 'auditor') throw new UsageError('--role is doctor or auditor');
      const days = Number(o.days);
      if (!Number.isInteger(days) || days < 1 || days > 30) throw new UsageError('--days is a whole number from 1 to 30');
      const admin = await signIn(o);
      let r;
      try {
        r = await inviteStaff(admin, { userId: id, role: o.role, ttlMs: days * 86_400_000 });
      } catch (err) {
        if (/already taken|user id/.test((err as Error).message)) throw new UsageError((err as Error).message);
        throw err;
      }
      const expires = new Date(r.expiresAt).toISOString();
      if (
        reportOutcome(
          r.outcome,
          `invited ${id} as ${o.role}; activation code ${r.code} (valid until ${expires}; hand it over in person, it is shown only once)`,
          o.json,
        ) &&
        o.json
      ) {
        json({ user: id, role: o.role, code: r.code, expiresAt: expires, tx: r.outcome.id });
      }
    });
}

/** `medledger activate`: the invited staff member creates their keys and keystore here and activates the account. */
export function addActivateCommand(cmd: Command): Command {
  return cmd
    .description('staff: activate your invited account (creates your keys and keystore on this computer)')
    .requiredOption('--api <url>', 'node API')
    .requiredOption('--user <id>', 'your user id, as the admin invited it')
    .option('--keystores <dir>', 'where to write your keystore (default: ~/.medledger/keystores)')
    .option('--genesis <file>', "the network's genesis file (default: genesis.json in the keystore directory)")
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `\nActivation code: from ${ACTIVATION_CODE_ENV}, else prompted without echo.\nPassword (${PASSWORD_POLICY}): from ${PASSWORD_ENV}, else prompted twice without echo.`,
    )
    .action(async (o: UserOptions & { json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const code = await readSecret(`Activation code for ${userId}: `, ACTIVATION_CODE_ENV);
      const password = await readNewSecret(`New password for ${userId}: `, PASSWORD_ENV);
      let result;
      try {
        result = await activateStaff({
          apiUrl: o.api,
          userId,
          code,
          password,
          ...(o.keystores ? { keystoreDir: o.keystores } : {}),
          ...(o.genesis ? { genesisFile: o.genesis } : {}),
        });
      } catch (err) {
        if (/policy|activation code|invitation|already exists|user id/.test((err as Error).message)) throw new UsageError((err as Error).message);
        throw err;
      }
      const { session, outcome } = result;
      if (reportOutcome(outcome, `activated ${userId} as ${session.keys.role} of ${session.keys.hospital}`, o.json) && o.json)
        json({ user: userId, role: session.keys.role, hospital: session.keys.hospital, tx: outcome.id });
    });
}

export function addDeactivateCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('admin: deactivate a doctor or auditor of your hospital'))
    .argument('<staff>', 'user id', (v: string) => flag('staff', v, parseUserId)!)
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: UserOptions & { json?: boolean }) => {
      const admin = await signIn(o);
      const r = await admin.deactivate(id);
      if (reportOutcome(r, `deactivated ${id}`, o.json) && o.json) json({ user: id, deactivated: true, tx: r.id });
    });
}
