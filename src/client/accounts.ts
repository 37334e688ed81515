import { existsSync, rmSync } from 'node:fs';
import { bytesEqual, fromBase64 } from '../records/crypto/bytes.js';
import { isMedLedgerError } from '../records/errors.js';
import { userIdSchema, type StaffRole } from '../records/ids.js';
import type { ScryptParams } from '../records/keystore.js';
import { passwordProblems } from '../records/password.js';
import type { StatusResponse } from '../api/contract.js';
import { ApiClient, ApiError } from './apiClient.js';
import { defaultKeystoreDir, keystorePath, readKeystoreFile, resolveKeystoreDir, unlockKeystore, writeKeystore } from './keystoreFiles.js';
import { storeBackup } from './recovery.js';
import { newRecoveryCode } from '../records/recovery.js';
import { pinnedGenesis } from './recipientKeys.js';
import { Session, type ActionOutcome } from './session.js';
import { newUserKeys } from './userKeys.js';
import { activationCodeKey, INVITATION_MAX_TTL_MS, INVITATION_TTL_MS, isActivationCode, newActivationCode, signActivation } from '../records/activation.js';

/**
 * Signing in, self-registration, staff invitation and activation, as the TUI and the CLI both do them: keystores on this
 * host (a `--keystores` directory, or the one the node names in its status), keys checked against the
 * ledger, and failures as short messages that never contain a password or a key.
 */
export type LoginFailure = 'invalid-user-id' | 'unknown-user' | 'wrong-password' | 'damaged-keystore' | 'not-registered' | 'deactivated' | 'node-unreachable';

export class LoginError extends Error {
  constructor(
    readonly reason: LoginFailure,
    detail: string,
  ) {
    super(`Login unsuccessful: ${detail}`);
    this.name = 'LoginError';
  }
}

/** The node's status, or a LoginError saying it cannot be reached. */
export async function nodeStatus(api: ApiClient): Promise<StatusResponse> {
  try {
    return await api.status();
  } catch (err) {
    throw new LoginError('node-unreachable', `cannot reach the node at ${api.base} (${(err as Error).message})`);
  }
}

export interface LoginOptions {
  apiUrl: string;
  userId: string;
  password: string;
  /** Where keystores live; defaults to the directory the node reports (same host). */
  keystoreDir?: string;
  /**
   * The genesis file recipients' keys are checked against (`--genesis`); default `genesis.json` in the
   * keystore directory, else the node's own (unpinned).
   */
  genesisFile?: string;
  /** Other nodes' APIs a record read falls back to when content cannot be read through this one. */
  fallbackApiUrls?: string[];
}

/** Unlocks the user's keystore and checks the keys against the ledger's copy of the user. */
export async function login(opts: LoginOptions): Promise<Session> {
  if (!userIdSchema.safeParse(opts.userId).success) throw new LoginError('invalid-user-id', `"${opts.userId}" is not a valid user id`);
  const api = new ApiClient(opts.apiUrl);
  const status = await nodeStatus(api);
  // The user's own ~/.medledger/keystores by default; the node's directory is only a hint (local cluster, demo).
  const dir = resolveKeystoreDir(opts.keystoreDir, opts.userId, status.keystoreDir);
  let keys;
  try {
    keys = unlockKeystore(dir, opts.userId, opts.password);
  } catch (err) {
    if (isMedLedgerError(err, 'NOT_FOUND')) throw new LoginError('unknown-user', `unknown user ${opts.userId}`);
    if (isMedLedgerError(err, 'WRONG_PASSWORD')) throw new LoginError('wrong-password', 'wrong password');
    if (isMedLedgerError(err, 'TAMPERED')) throw new LoginError('damaged-keystore', `the keystore of ${opts.userId} is damaged or was altered`);
    throw err;
  }
  let onLedger;
  try {
    onLedger = await api.user(opts.userId);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') throw new LoginError('not-registered', `${opts.userId} is not registered on the ledger`);
    throw new LoginError('node-unreachable', (err as Error).message);
  }
  if (!bytesEqual(fromBase64(onLedger.signKey), keys.signPublic))
    throw new LoginError('damaged-keystore', `the keystore of ${opts.userId} does not hold the key the ledger knows`);
  if (!onLedger.active) throw new LoginError('deactivated', `${opts.userId} was deactivated by the hospital's admin`);
  return new Session(api, keys, status.hospital, {
    genesis: pinnedGenesis({ genesisFile: opts.genesisFile, keystoreDir: dir }) ?? pinnedGenesis({ keystoreDir: status.keystoreDir }),
    ...(opts.fallbackApiUrls?.length ? { fallbackApis: opts.fallbackApiUrls } : {}),
  });
}

/** Problems with a new password (policy, confirmation), as short sentences for an inline error. */
export function newPasswordProblems(userId: string, password: string, repeated?: string): string[] {
  const problems = passwordProblems(password, userId);
  if (repeated !== undefined && repeated !== password) problems.push('the two passwords differ');
  return problems;
}

export interface RegisterOptions {
  apiUrl: string;
  userId: string;
  password: string;
  keystoreDir?: string;
  kdf?: ScryptParams;
  /** As in LoginOptions. */
  genesisFile?: string;
}

/**
 * Patient self-registration (PROTOCOL.md §1.2): new keys, a keystore sealed with the patient's
 * password, then the registerPatient transaction through this node. The keystore is written first so
 * that keys of a registered user are never lost; it is removed again if the ledger refuses the user.
 */
export async function registerPatient(
  opts: RegisterOptions,
): Promise<{ session: Session; outcome: ActionOutcome; recoveryCode?: string; backupError?: string }> {
  const idCheck = userIdSchema.safeParse(opts.userId);
  if (!idCheck.success) throw new Error(idCheck.error.issues[0]?.message ?? 'invalid user id');
  const problems = newPasswordProblems(opts.userId, opts.password);
  if (problems.length > 0) throw new Error(`password does not meet the policy: ${problems.join('; ')}`);
  const api = new ApiClient(opts.apiUrl);
  const status = await api.status();
  // Written to the user's own ~/.medledger/keystores unless a directory is given (never the node's by default).
  const dir = opts.keystoreDir ?? defaultKeystoreDir();
  const genesis = pinnedGenesis({ genesisFile: opts.genesisFile, keystoreDir: dir }) ?? pinnedGenesis({ keystoreDir: status.keystoreDir });
  if (await userExists(api, opts.userId)) throw new Error(`user id ${opts.userId} is already taken`);
  const keys = newUserKeys(opts.userId, 'patient', status.hospital);
  const path = writeKeystore(dir, keys, opts.password, opts.kdf);
  const session = new Session(api, keys, status.hospital, { genesis });
  try {
    const outcome = await session.registerPatient();
    if (outcome.denied) {
      rmSync(path, { force: true });
      return { session, outcome };
    }
    // The recovery kit (issue 10): a code made here, shown once; the node gets only the backup sealed to it.
    const recoveryCode = newRecoveryCode();
    try {
      await storeBackup(api, keys, readKeystoreFile(dir, opts.userId), recoveryCode);
    } catch (err) {
      return { session, outcome, backupError: (err as Error).message };
    }
    return { session, outcome, recoveryCode };
  } catch (err) {
    // Refused at admission (e.g. the id was taken meanwhile): these keys will never be on the ledger.
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) rmSync(path, { force: true });
    throw err;
  }
}

async function userExists(api: ApiClient, userId: string): Promise<boolean> {
  try {
    await api.user(userId);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') return false;
    throw err;
  }
}

export interface InviteOptions {
  userId: string;
  role: StaffRole;
  /** Lifetime of the invitation (default 7 days, at most 30). */
  ttlMs?: number;
}

export interface Invitation {
  outcome: ActionOutcome;
  /** The one-time activation code: shown to the admin once, handed over out of band, never logged. */
  code: string;
  expiresAt: number;
}

/**
 * An admin invites a doctor or auditor of their own hospital (issue 10). Nothing secret of the staff member
 * exists here: a fresh activation code, whose public key alone goes on the ledger in `inviteUser`. The
 * staff member generates their keys on their own computer (`activateStaff`).
 */
export async function inviteStaff(admin: Session, opts: InviteOptions): Promise<Invitation> {
  const idCheck = userIdSchema.safeParse(opts.userId);
  if (!idCheck.success) throw new Error(idCheck.error.issues[0]?.message ?? 'invalid user id');
  if (await userExists(admin.api, opts.userId)) throw new Error(`user id ${opts.userId} is already taken`);
  const ttl = Math.min(opts.ttlMs ?? INVITATION_TTL_MS, INVITATION_MAX_TTL_MS);
  const code = newActivationCode();
  const expiresAt = Date.now() + ttl;
  const outcome = await admin.invite(opts.userId, opts.role, activationCodeKey(code, opts.userId), expiresAt);
  return { outcome, code, expiresAt };
}

export interface ActivateOptions {
  apiUrl: string;
  userId: string;
  code: string;
  password: string;
  /** Where to write the new keystore (default: ~/.medledger/keystores). */
  keystoreDir?: string;
  kdf?: ScryptParams;
  genesisFile?: string;
}

/**
 * The invited staff member, on their own computer: checks the code against the invitation, generates keys,
 * seals them under their own password, then submits `activateUser` signed by the new key with the code's
 * signature over the new keys. The keystore is written before submitting (keys of an activated user are never
 * lost) and removed again if the ledger refuses the activation.
 */
export async function activateStaff(opts: ActivateOptions): Promise<{ session: Session; outcome: ActionOutcome }> {
  const idCheck = userIdSchema.safeParse(opts.userId);
  if (!idCheck.success) throw new Error(idCheck.error.issues[0]?.message ?? 'invalid user id');
  if (!isActivationCode(opts.code)) throw new Error('the activation code is 20 letters and digits (groups of four)');
  const problems = newPasswordProblems(opts.userId, opts.password);
  if (problems.length > 0) throw new Error(`password does not meet the policy: ${problems.join('; ')}`);
  const api = new ApiClient(opts.apiUrl);
  const status = await api.status();
  // Like registration: the staff member's own ~/.medledger/keystores unless a directory is given.
  const dir = opts.keystoreDir ?? defaultKeystoreDir();
  const genesis = pinnedGenesis({ genesisFile: opts.genesisFile, keystoreDir: dir }) ?? pinnedGenesis({ keystoreDir: status.keystoreDir });
  let invitation;
  try {
    invitation = await api.invitation(opts.userId);
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') throw new Error(`there is no invitation for ${opts.userId}`);
    throw err;
  }
  if (invitation.activated) throw new Error(`the invitation of ${opts.userId} was already used`);
  if (invitation.expiresAt < Date.now()) throw new Error(`the invitation of ${opts.userId} expired at ${new Date(invitation.expiresAt).toISOString()}`);
  if (!bytesEqual(activationCodeKey(opts.code, opts.userId), fromBase64(invitation.codeKey))) throw new Error(`wrong activation code for ${opts.userId}`);
  if (existsSync(keystorePath(dir, opts.userId))) throw new Error(`a keystore for ${opts.userId} already exists in ${dir}`);
  const keys = newUserKeys(opts.userId, invitation.role, invitation.hospital);
  const path = writeKeystore(dir, keys, opts.password, opts.kdf);
  const session = new Session(api, keys, status.hospital, { genesis });
  try {
    const genesisHash = (await api.identify()).genesisHash;
    const outcome = await session.activate(signActivation(opts.code, opts.userId, keys.signPublic, keys.encPublic!, genesisHash));
    if (outcome.denied) rmSync(path, { force: true });
    return { session, outcome };
  } catch (err) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) rmSync(path, { force: true });
    throw err;
  }
}
