import type { Command } from 'commander';
import { activateStaff, inviteStaff, registerPatient } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
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
        result = await registerPatient({ apiUrl: o.api, userId, password, ...(o.keystores ? { keystoreDir: o.keystores } : {}), ...(o.genesis ? { genesisFile: o.genesis } : {}) });
      } catch (err) {
        if (/policy|already taken|user id/.test((err as Error).message)) throw new UsageError((err as Error).message);
        throw err;
      }
      if (reportOutcome(result.outcome, `registered ${userId} as a patient at ${result.session.hospital}`, o.json) && o.json) json({ user: userId, hospital: result.session.hospital, tx: result.outcome.id });
    });
}

export const ACTIVATION_CODE_ENV = 'MEDLEDGER_ACTIVATION_CODE';

/**
 * `medledger enrol`: the admin invites a doctor or auditor and gets a one-time activation code to hand over
 * out of band (issue 10). No keys or password of the staff member exist on the admin's computer.
 */
export function addEnrolCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('admin: invite a doctor or auditor of your hospital (prints a one-time activation code)'))
    .requiredOption('--id <id>', 'the new staff member\'s user id')
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
      if (reportOutcome(r.outcome, `invited ${id} as ${o.role}; activation code ${r.code} (valid until ${expires}; hand it over in person, it is shown only once)`, o.json) && o.json) {
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
    .addHelpText('after', `\nActivation code: from ${ACTIVATION_CODE_ENV}, else prompted without echo.\nPassword (${PASSWORD_POLICY}): from ${PASSWORD_ENV}, else prompted twice without echo.`)
    .action(async (o: UserOptions & { json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const code = await readSecret(`Activation code for ${userId}: `, ACTIVATION_CODE_ENV);
      const password = await readNewSecret(`New password for ${userId}: `, PASSWORD_ENV);
      let result;
      try {
        result = await activateStaff({ apiUrl: o.api, userId, code, password, ...(o.keystores ? { keystoreDir: o.keystores } : {}), ...(o.genesis ? { genesisFile: o.genesis } : {}) });
      } catch (err) {
        if (/policy|activation code|invitation|already exists|user id/.test((err as Error).message)) throw new UsageError((err as Error).message);
        throw err;
      }
      const { session, outcome } = result;
      if (reportOutcome(outcome, `activated ${userId} as ${session.keys.role} of ${session.keys.hospital}`, o.json) && o.json) json({ user: userId, role: session.keys.role, hospital: session.keys.hospital, tx: outcome.id });
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
