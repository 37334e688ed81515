import { existsSync } from 'node:fs';
import { bytesEqual, fromBase64 } from '../records/crypto/bytes.js';
import { encryptionPublicKey } from '../records/crypto/keyAgreement.js';
import { createSigner, publicKeyFromSecret } from '../records/crypto/signature.js';
import { isMedLedgerError } from '../records/errors.js';
import { roleSchema, userIdSchema } from '../records/ids.js';
import { openKeystore, type ScryptParams, type UserKeys } from '../records/keystore.js';
import {
  buildBackup,
  checkBackup,
  isRecoveryCode,
  openCodeCopy,
  openPasswordCopy,
  recoveryKeys,
  recoverySigner,
  replacePasswordCopy,
  RECOVERY_CODE_LENGTH,
} from '../records/recovery.js';
import { ApiClient, ApiError } from './apiClient.js';
import { passwordProblems } from '../records/password.js';
import { defaultKeystoreDir, keystorePath, readKeystoreFile, writeKeystore, writeKeystoreFile } from './keystoreFiles.js';

/**
 * The patient's side of the recovery kit (issue 10; records/recovery.ts has the formats). The code never
 * leaves this computer: only its public keys travel, inside the backup, and requests signed with its auth key.
 */

/** Seals a backup of `keys` and their keystore file to `code` and stores it on the node (owner-signed). */
export async function storeBackup(api: ApiClient, keys: UserKeys, keystoreFile: unknown, code: string): Promise<void> {
  const rk = recoveryKeys(code, keys.userId);
  await api.putBackup(keys.userId, createSigner(keys.signSecret), buildBackup(keys, keystoreFile, rk));
}

/**
 * After a password change: replaces the password copy of the user's backup with the new keystore file (no code
 * needed: the copy is sealed to the backup's public seal key). False when the node holds no backup of the user.
 */
export async function refreshBackupPasswordCopy(api: ApiClient, keys: UserKeys, keystoreFile: unknown): Promise<boolean> {
  const signer = createSigner(keys.signSecret);
  let raw;
  try {
    raw = (await api.getBackup(keys.userId, signer)).backup;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') return false;
    throw err;
  }
  const backup = checkBackup(raw, keys.signPublic);
  await api.putBackup(keys.userId, signer, replacePasswordCopy(backup, keys, keystoreFile));
  return true;
}

/**
 * The public keys of the user's recovery code, read from the backup on the node (owner-signed request), or null
 * when there is none. A key rotation keeps them, so the same printed code recovers the new keys.
 */
export async function backupCodeKeys(api: ApiClient, keys: UserKeys): Promise<{ authKey: Uint8Array; sealKey: Uint8Array } | null> {
  let raw;
  try {
    raw = (await api.getBackup(keys.userId, createSigner(keys.signSecret))).backup;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') return null;
    throw err;
  }
  const backup = checkBackup(raw, keys.signPublic);
  return { authKey: fromBase64(backup.authKey), sealKey: fromBase64(backup.sealKey) };
}

/** After a key rotation: a backup of the new keys, sealed to the same recovery code, signed by the new key. */
export async function rebindBackup(api: ApiClient, keys: UserKeys, keystoreFile: unknown, code: { authKey: Uint8Array; sealKey: Uint8Array }): Promise<void> {
  await api.putBackup(keys.userId, createSigner(keys.signSecret), buildBackup(keys, keystoreFile, code));
}

export interface RecoverOptions {
  apiUrl: string;
  userId: string;
  code: string;
  /** Forgotten password: re-seal the code-sealed copy under this new password. */
  newPassword?: string;
  /** New computer, same password: write the password-sealed copy, which this password must open. */
  password?: string;
  keystoreDir?: string;
  kdf?: ScryptParams;
}

/** A recovery that could not be done; nothing was written. */
export class RecoveryError extends Error {
  constructor(message: string) {
    super(`Recovery unsuccessful: ${message}`);
    this.name = 'RecoveryError';
  }
}

/**
 * Writes a keystore for `userId` in `keystoreDir` (default ~/.medledger/keystores) from the backup on the
 * node, fetched with a request signed by the recovery code's auth key. With `newPassword`: the code-sealed
 * secrets under the new password (and the backup's password copy is refreshed); with `password`: the
 * password-sealed copy as it is. Keys are checked against the ledger's before anything is written.
 */
export async function recoverKeystore(opts: RecoverOptions): Promise<{ path: string; keys: UserKeys }> {
  if (!userIdSchema.safeParse(opts.userId).success) throw new RecoveryError(`"${opts.userId}" is not a valid user id`);
  if (!isRecoveryCode(opts.code)) throw new RecoveryError(`the recovery code is ${RECOVERY_CODE_LENGTH} letters and digits (groups of four)`);
  if ((opts.newPassword === undefined) === (opts.password === undefined)) throw new RecoveryError('give either a new password or the current one');
  if (opts.newPassword !== undefined) {
    const problems = passwordProblems(opts.newPassword, opts.userId);
    if (problems.length > 0) throw new RecoveryError(`password does not meet the policy: ${problems.join('; ')}`);
  }
  const dir = opts.keystoreDir ?? defaultKeystoreDir();
  if (existsSync(keystorePath(dir, opts.userId))) throw new RecoveryError(`a keystore for ${opts.userId} already exists in ${dir}`);
  const api = new ApiClient(opts.apiUrl);
  let onLedger;
  try {
    onLedger = await api.user(opts.userId);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') throw new RecoveryError(`${opts.userId} is not registered on the ledger`);
    throw err;
  }
  let raw;
  try {
    raw = (await api.getBackup(opts.userId, recoverySigner(opts.code, opts.userId))).backup;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'FORBIDDEN') throw new RecoveryError(`wrong recovery code for ${opts.userId}`);
    if (err instanceof ApiError && err.code === 'NOT_FOUND')
      throw new RecoveryError(`this node holds no backup for ${opts.userId} (ask at your home hospital's node)`);
    throw err;
  }
  const signKey = fromBase64(onLedger.signKey);
  let backup;
  try {
    backup = checkBackup(raw, signKey);
  } catch {
    throw new RecoveryError(
      `the node's backup of ${opts.userId} is not signed by the key the ledger knows (damaged, replaced, or the keys were rotated since)`,
    );
  }
  const wrongCode = (err: unknown) => (isMedLedgerError(err, 'WRONG_PASSWORD') ? new RecoveryError(`wrong recovery code for ${opts.userId}`) : err);
  if (opts.password !== undefined) {
    let file: unknown;
    try {
      file = openPasswordCopy(backup, opts.code);
    } catch (err) {
      throw wrongCode(err);
    }
    let keys: UserKeys;
    try {
      keys = openKeystore(file, opts.password);
    } catch (err) {
      if (isMedLedgerError(err, 'WRONG_PASSWORD')) throw new RecoveryError('wrong password (with a forgotten password, set a new one instead)');
      throw new RecoveryError(`the password copy of ${opts.userId} is damaged`);
    }
    if (keys.userId !== opts.userId || !bytesEqual(keys.signPublic, signKey))
      throw new RecoveryError(`the password copy does not hold the key the ledger knows for ${opts.userId}`);
    return { path: writeKeystoreFile(dir, opts.userId, file), keys };
  }
  let secrets;
  try {
    secrets = openCodeCopy(backup, opts.code);
  } catch (err) {
    throw wrongCode(err);
  }
  const role = roleSchema.parse(onLedger.role);
  const keys: UserKeys = {
    userId: opts.userId,
    role,
    hospital: onLedger.hospital,
    signSecret: secrets.signSecret,
    signPublic: publicKeyFromSecret(secrets.signSecret),
    ...(secrets.encSecret ? { encSecret: secrets.encSecret, encPublic: encryptionPublicKey(secrets.encSecret) } : {}),
  };
  if (!bytesEqual(keys.signPublic, signKey)) throw new RecoveryError(`the backup does not hold the key the ledger knows for ${opts.userId}`);
  const path = writeKeystore(dir, keys, opts.newPassword!, opts.kdf);
  // The old password copy is under the forgotten password: replace it with the new keystore.
  await refreshBackupPasswordCopy(api, keys, readKeystoreFile(dir, opts.userId)).catch(() => false);
  return { path, keys };
}
