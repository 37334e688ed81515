import { existsSync, rmSync } from 'node:fs';
import { ApiError } from './apiClient.js';
import { login, newPasswordProblems, type LoginOptions } from './accounts.js';
import {
  commitStagedKeystore,
  defaultKeystoreDir,
  keystorePath,
  readKeystoreFile,
  resolveKeystoreDir,
  stageKeystore,
  stagedKeystorePath,
  writeKeystore,
} from './keystoreFiles.js';
import { backupCodeKeys, rebindBackup } from './recovery.js';
import type { ActionOutcome, Session } from './session.js';
import { newUserKeys } from './userKeys.js';
import type { ScryptParams, UserKeys } from '../records/keystore.js';
import { MedLedgerError } from '../records/errors.js';

/**
 * `medledger rotate-keys` (issue 10): signs in with the current keys, generates new ones, stages them sealed
 * under the same password (`<keystore>.next`), submits `rotateKeys` (signed by the current key, the data keys
 * this user can open re-wrapped for the new encryption key), and only when the ledger made it final moves the
 * staged keystore over the old one (atomic rename). A denied or refused rotation leaves the old keystore as it
 * was and removes the staged one.
 */
export async function rotateUserKeys(
  opts: LoginOptions & { kdf?: ScryptParams },
): Promise<{ session: Session; outcome: ActionOutcome<{ rewrapped: number }>; keys: UserKeys }> {
  const session = await login(opts);
  const dir = resolveKeystoreDir(opts.keystoreDir, opts.userId, (await session.api.status()).keystoreDir);
  if (!existsSync(keystorePath(dir, opts.userId))) throw new MedLedgerError('NOT_FOUND', `no keystore of ${opts.userId} in ${dir}`);
  if (existsSync(stagedKeystorePath(dir, opts.userId))) {
    throw new MedLedgerError(
      'USER_EXISTS',
      `${stagedKeystorePath(dir, opts.userId)} exists: an earlier rotation was interrupted; check which keys the ledger holds before removing it`,
    );
  }
  const next = newUserKeys(opts.userId, session.keys.role, session.keys.hospital);
  // The recovery code's public keys, read while the old key may still sign: the new keys' backup is sealed to
  // the same code, so the printed recovery kit keeps working after the rotation.
  const code = await backupCodeKeys(session.api, session.keys);
  stageKeystore(dir, next, opts.password, opts.kdf);
  let outcome: ActionOutcome<{ rewrapped: number }>;
  try {
    outcome = await session.rotateKeys(next);
  } catch (err) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) rmSync(stagedKeystorePath(dir, opts.userId), { force: true });
    throw err;
  }
  if (outcome.denied) rmSync(stagedKeystorePath(dir, opts.userId), { force: true });
  else {
    commitStagedKeystore(dir, opts.userId);
    if (code) await rebindBackup(session.api, next, readKeystoreFile(dir, opts.userId), code);
  }
  return { session, outcome, keys: next };
}

/**
 * `medledger keygen` (issue 10, key recovery at the home hospital): new keys for `userId`, sealed under a new
 * password in a new keystore on this computer; the public keys are what the patient shows the admin at the desk.
 */
export function generateKeystore(opts: { userId: string; hospital: string; password: string; keystoreDir?: string; kdf?: ScryptParams }): {
  path: string;
  keys: UserKeys;
} {
  const problems = newPasswordProblems(opts.userId, opts.password);
  if (problems.length > 0) throw new MedLedgerError('WEAK_PASSWORD', `password does not meet the policy: ${problems.join('; ')}`);
  const keys = newUserKeys(opts.userId, 'patient', opts.hospital);
  const path = writeKeystore(opts.keystoreDir ?? defaultKeystoreDir(), keys, opts.password, opts.kdf);
  return { path, keys };
}
