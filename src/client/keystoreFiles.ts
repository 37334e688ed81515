import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedLedgerError } from '../records/errors.js';
import { userIdSchema } from '../records/ids.js';
import { openKeystore, sealKeystore, type KeystoreFile, type ScryptParams, type UserKeys } from '../records/keystore.js';

/** Keystore files on disk: `<dir>/<userId>.keystore.json`, written atomically with mode 0600. */
export function keystorePath(dir: string, userId: string): string {
  if (!userIdSchema.safeParse(userId).success) throw new MedLedgerError('MALFORMED', `invalid user id ${JSON.stringify(userId)}`);
  return join(dir, `${userId}.keystore.json`);
}

export function writeKeystore(dir: string, keys: UserKeys, password: string, kdf?: ScryptParams): string {
  const file = sealKeystore(keys, password, kdf);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = keystorePath(dir, keys.userId);
  if (existsSync(path)) throw new MedLedgerError('USER_EXISTS', `a keystore for ${keys.userId} already exists in ${dir}`);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

export function readKeystoreFile(dir: string, userId: string): KeystoreFile | unknown {
  const path = keystorePath(dir, userId);
  if (!existsSync(path)) throw new MedLedgerError('NOT_FOUND', `unknown user ${userId}: no keystore in ${dir}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new MedLedgerError('TAMPERED', `keystore of ${userId} is not valid JSON`);
  }
}

/** Unlocks a user's keys: NOT_FOUND (unknown user), WRONG_PASSWORD, or TAMPERED. */
export function unlockKeystore(dir: string, userId: string, password: string): UserKeys {
  const raw = readKeystoreFile(dir, userId);
  // The file name is the login: a keystore of another user placed under this name must not unlock as it.
  const owner = typeof raw === 'object' && raw !== null ? (raw as { userId?: unknown }).userId : undefined;
  if (owner !== undefined && owner !== userId) throw new MedLedgerError('TAMPERED', `keystore file of ${userId} holds the keys of ${String(owner)}`);
  return openKeystore(raw, password);
}
