import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { MedLedgerError } from '../records/errors.js';
import { userIdSchema } from '../records/ids.js';
import { openKeystore, resealKeystore, sealKeystore, type KeystoreFile, type ScryptParams, type UserKeys } from '../records/keystore.js';

/**
 * Where a user's keystores live when no `--keystores` is given: `~/.medledger/keystores` (mode 0700),
 * in the user's own home, not in the node's data directory, where the hospital's operator could copy
 * them and guess passwords offline. The node's `keystoreDir` status field is only a hint for the local
 * cluster and demo, whose commands pass their directories explicitly.
 */
export function defaultKeystoreDir(): string {
  return join(homedir(), '.medledger', 'keystores');
}

/**
 * The directory holding `userId`'s keystore when none is given: `~/.medledger/keystores` if it holds one
 * for this user; else the node's hint (its `keystoreDir` status field: the local cluster and demo keep
 * their users' keystores there) if that holds one; else `~/.medledger/keystores` (where registration
 * writes, and what a NOT_FOUND names).
 */
export function resolveKeystoreDir(explicit: string | undefined, userId: string, nodeHint?: string): string {
  if (explicit) return explicit;
  const home = defaultKeystoreDir();
  if (!userIdSchema.safeParse(userId).success || existsSync(keystorePath(home, userId))) return home;
  if (nodeHint && existsSync(keystorePath(nodeHint, userId))) return nodeHint;
  return home;
}

/** Keystore files on disk: `<dir>/<userId>.keystore.json`, written atomically with mode 0600. */
export function keystorePath(dir: string, userId: string): string {
  if (!userIdSchema.safeParse(userId).success) throw new MedLedgerError('MALFORMED', `invalid user id ${JSON.stringify(userId)}`);
  return join(dir, `${userId}.keystore.json`);
}

/** Writes to a temporary file, fsyncs it, renames it over `path` and fsyncs the directory: all or nothing. */
function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  try {
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some file systems refuse to fsync a directory; the rename itself is still atomic.
  }
}

export function writeKeystore(dir: string, keys: UserKeys, password: string, kdf?: ScryptParams): string {
  const file = sealKeystore(keys, password, kdf);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = keystorePath(dir, keys.userId);
  if (existsSync(path)) throw new MedLedgerError('USER_EXISTS', `a keystore for ${keys.userId} already exists in ${dir}`);
  writeAtomically(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

/** Writes an already sealed keystore file (a recovered copy) for `userId`; refuses to overwrite one. */
export function writeKeystoreFile(dir: string, userId: string, file: unknown): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = keystorePath(dir, userId);
  if (existsSync(path)) throw new MedLedgerError('USER_EXISTS', `a keystore for ${userId} already exists in ${dir}`);
  writeAtomically(path, `${JSON.stringify(file, null, 2)}\n`);
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

function checkOwner(raw: unknown, userId: string): void {
  // The file name is the login: a keystore of another user placed under this name must not unlock as it.
  const owner = typeof raw === 'object' && raw !== null ? (raw as { userId?: unknown }).userId : undefined;
  if (owner !== undefined && owner !== userId) throw new MedLedgerError('TAMPERED', `keystore file of ${userId} holds the keys of ${String(owner)}`);
}

/** Unlocks a user's keys: NOT_FOUND (unknown user), WRONG_PASSWORD, or TAMPERED. */
export function unlockKeystore(dir: string, userId: string, password: string): UserKeys {
  const raw = readKeystoreFile(dir, userId);
  checkOwner(raw, userId);
  return openKeystore(raw, password);
}

/**
 * Password change: the old password opens the keystore, which is sealed again under the new one (new
 * salt and nonce, current KDF parameters, format 2, so an old-format file is migrated) and replaces the
 * file atomically. Errors as unlockKeystore, and WEAK_PASSWORD for a new password the policy refuses.
 */
export function changeKeystorePassword(dir: string, userId: string, oldPassword: string, newPassword: string, kdf?: ScryptParams): UserKeys {
  const raw = readKeystoreFile(dir, userId);
  checkOwner(raw, userId);
  if (oldPassword === newPassword) throw new MedLedgerError('WEAK_PASSWORD', 'the new password must differ from the old one');
  const { keys, file } = resealKeystore(raw, oldPassword, newPassword, kdf);
  writeAtomically(keystorePath(dir, userId), `${JSON.stringify(file, null, 2)}\n`);
  return keys;
}

/**
 * Key rotation (issue 10), in two steps so that neither the old nor the new keys can be lost: the new keys
 * are first sealed under the user's (same) password into `<keystore>.next`; once the ledger has made the
 * rotation final, `commitStagedKeystore` renames that file over the keystore (atomic). A `.next` file left by
 * an interrupted rotation holds the keys the ledger may already know: compare its signing key with the
 * ledger's before discarding either file.
 */
export function stagedKeystorePath(dir: string, userId: string): string {
  return `${keystorePath(dir, userId)}.next`;
}

export function stageKeystore(dir: string, keys: UserKeys, password: string, kdf?: ScryptParams): string {
  const path = stagedKeystorePath(dir, keys.userId);
  writeAtomically(path, `${JSON.stringify(sealKeystore(keys, password, kdf), null, 2)}\n`);
  return path;
}

export function commitStagedKeystore(dir: string, userId: string): void {
  renameSync(stagedKeystorePath(dir, userId), keystorePath(dir, userId));
}
