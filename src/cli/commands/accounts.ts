import type { Command } from 'commander';
import { enrolStaff, registerPatient } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { readNewSecret, UsageError } from '../passwordPrompt.js';
import { flag, json, PASSWORD_ENV, reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/** `medledger register` (patient self-registration), `enrol` and `deactivate` (admin) for scripts. */
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

export function addEnrolCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('admin: enrol a doctor or auditor of your hospital (writes their keystore)'))
    .requiredOption('--id <id>', 'the new staff member\'s user id')
    .requiredOption('--role <role>', 'doctor or auditor')
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nThe new member's initial password: from ${NEW_PASSWORD_ENV}, else prompted twice.`)
    .action(async (o: UserOptions & { id: string; role: string; json?: boolean }) => {
      const id = flag('id', o.id, parseUserId)!;
      if (o.role !== 'doctor' && o.role !== 'auditor') throw new UsageError('--role is doctor or auditor');
      const admin = await signIn(o);
      const password = await readNewSecret(`Initial password for ${id}: `, NEW_PASSWORD_ENV);
      const keystoreDir = o.keystores ?? (await admin.api.status()).keystoreDir;
      const r = await enrolStaff(admin, { userId: id, role: o.role, password, keystoreDir });
      if (reportOutcome(r, `enrolled ${id} as ${o.role}; keystore in ${keystoreDir}`, o.json) && o.json) json({ user: id, role: o.role, keystoreDir, tx: r.id });
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
