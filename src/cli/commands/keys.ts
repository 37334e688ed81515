import type { Command } from 'commander';
import { generateKeystore, rotateUserKeys } from '../../client/rotation.js';
import { parseUserId } from '../../client/inputs.js';
import { fromHex, toHex } from '../../records/crypto/bytes.js';
import { PASSWORD_POLICY } from '../../records/password.js';
import { readNewSecret, readSecret, UsageError } from '../passwordPrompt.js';
import { flag, json, PASSWORD_ENV, reportOutcome, signIn, warnUnpinned, withUserOptions, type UserOptions } from '../userSession.js';
import { NEW_PASSWORD_ENV } from './accounts.js';

/** Key rotation, staff key revocation, and patient key recovery at the home hospital (issue 10). */

export function addRotateKeysCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('replace your signing and encryption keys (re-wraps the data keys you can open; same password)'))
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nPassword: from ${PASSWORD_ENV}, else prompted. The keystore is replaced only once the ledger made the rotation final.`)
    .action(async (o: UserOptions & { json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const password = await readSecret(`Password for ${userId}: `, PASSWORD_ENV);
      const r = await rotateUserKeys({
        apiUrl: o.api,
        userId,
        password,
        ...(o.keystores ? { keystoreDir: o.keystores } : {}),
        ...(o.genesis ? { genesisFile: o.genesis } : {}),
      });
      warnUnpinned(r.session);
      const rewrapped = r.outcome.value?.rewrapped ?? 0;
      if (
        reportOutcome(r.outcome, `rotated the keys of ${userId}; ${rewrapped} data key(s) re-wrapped; new signing key ${toHex(r.keys.signPublic)}`, o.json) &&
        o.json
      ) {
        json({ user: userId, tx: r.outcome.id, rewrapped, signKey: toHex(r.keys.signPublic), encKey: toHex(r.keys.encPublic!) });
      }
    });
}

export function addRevokeKeyCommand(cmd: Command): Command {
  return withUserOptions(cmd.description("admin: revoke a doctor's or auditor's key now (they sign nothing more until invited again with medledger enrol)"))
    .argument('<staff>', 'user id', (v: string) => flag('staff', v, parseUserId)!)
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: UserOptions & { json?: boolean }) => {
      const admin = await signIn(o);
      const r = await admin.revokeStaffKey(id);
      if (reportOutcome(r, `revoked the key of ${id}; invite them again with: medledger enrol --id ${id}`, o.json) && o.json)
        json({ user: id, revoked: true, tx: r.id });
    });
}

const hexKey = (name: string, v: string): Uint8Array => {
  if (!/^[0-9a-f]{64}$/i.test(v)) throw new UsageError(`--${name} is 64 hex digits (a 32-byte public key)`);
  return fromHex(v.toLowerCase());
};

export function addRecoverPatientCommand(cmd: Command): Command {
  return withUserOptions(
    cmd.description("admin: install a patient's new keys after an identity check at the desk (the patient made them with medledger keygen)"),
  )
    .argument('<patient>', 'patient id', (v: string) => flag('patient', v, parseUserId)!)
    .requiredOption('--sign-key <hex>', "the patient's new signing public key")
    .requiredOption('--enc-key <hex>', "the patient's new encryption public key")
    .requiredOption('--ticket <text>', 'reference of the identity check (recorded on the ledger; no personal data)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', "\nData wrapped for the patient's lost encryption key stays unreadable to the patient.")
    .action(async (patient: string, o: UserOptions & { signKey: string; encKey: string; ticket: string; json?: boolean }) => {
      const signKey = hexKey('sign-key', o.signKey);
      const encKey = hexKey('enc-key', o.encKey);
      if (o.ticket.length < 1 || o.ticket.length > 200) throw new UsageError('--ticket is 1 to 200 characters');
      const admin = await signIn(o);
      const r = await admin.recoverPatientKeys(patient, signKey, encKey, o.ticket);
      if (reportOutcome(r, `installed new keys for ${patient}`, o.json) && o.json) json({ patient, tx: r.id });
    });
}

export function addKeygenCommand(cmd: Command): Command {
  return cmd
    .description('patient: make new keys and a keystore here, to have them installed at your home hospital (key recovery)')
    .requiredOption('--user <id>', 'your user id')
    .requiredOption('--hospital <id>', 'your home hospital')
    .option('--keystores <dir>', 'where to write the keystore (default: ~/.medledger/keystores; it must not hold one for you)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', `\nPassword (${PASSWORD_POLICY}): from ${NEW_PASSWORD_ENV} or ${PASSWORD_ENV}, else prompted twice without echo.`)
    .action(async (o: { user: string; hospital: string; keystores?: string; json?: boolean }) => {
      const userId = flag('user', o.user, parseUserId)!;
      const password = await readNewSecret(`New password for ${userId}: `, process.env[NEW_PASSWORD_ENV] !== undefined ? NEW_PASSWORD_ENV : PASSWORD_ENV);
      const { path, keys } = generateKeystore({ userId, hospital: o.hospital, password, ...(o.keystores ? { keystoreDir: o.keystores } : {}) });
      const signKey = toHex(keys.signPublic);
      const encKey = toHex(keys.encPublic!);
      if (o.json) json({ user: userId, keystore: path, signKey, encKey });
      else process.stdout.write(`keystore written to ${path}\nshow these at the desk of ${o.hospital}:\n  --sign-key ${signKey}\n  --enc-key ${encKey}\n`);
    });
}
