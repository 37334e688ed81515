import { existsSync, rmSync } from 'node:fs';
import { bytesEqual, fromBase64 } from '../records/crypto/bytes.js';
import { isMedLedgerError } from '../records/errors.js';
import { userIdSchema, type StaffRole } from '../records/ids.js';
import type { ScryptParams } from '../records/keystore.js';
import { passwordProblems } from '../records/password.js';
import type { StatusResponse } from '../node/api/contract.js';
import { ApiClient, ApiError } from './apiClient.js';
import { defaultKeystoreDir, keystorePath, resolveKeystoreDir, unlockKeystore, writeKeystore } from './keystoreFiles.js';
import { pinnedGenesis } from './recipientKeys.js';
import { Session, type ActionOutcome } from './session.js';
import { newUserKeys } from './userKeys.js';

/**
 * Signing in, self-registration and enrolment, as the TUI and the CLI both do them: keystores on this
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
  if (!bytesEqual(fromBase64(onLedger.signKey), keys.signPublic)) throw new LoginError('damaged-keystore', `the keystore of ${opts.userId} does not hold the key the ledger knows`);
  if (!onLedger.active) throw new LoginError('deactivated', `${opts.userId} was deactivated by the hospital's admin`);
  return new Session(api, keys, status.hospital, { genesis: pinnedGenesis({ genesisFile: opts.genesisFile, keystoreDir: dir }) ?? pinnedGenesis({ keystoreDir: status.keystoreDir }), ...(opts.fallbackApiUrls?.length ? { fallbackApis: opts.fallbackApiUrls } : {}) });
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
 * Patient self-registration (FEATURES A, SPEC §1): new keys, a keystore sealed with the patient's
 * password, then the registerPatient transaction through this node. The keystore is written first so
 * that keys of a registered user are never lost; it is removed again if the ledger refuses the user.
 */
export async function registerPatient(opts: RegisterOptions): Promise<{ session: Session; outcome: ActionOutcome }> {
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
    if (outcome.denied) rmSync(path, { force: true });
    return { session, outcome };
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

export interface EnrolOptions {
  userId: string;
  role: StaffRole;
  /** The initial password the admin sets (policy-checked); the staff member unlocks with it. */
  password: string;
  keystoreDir: string;
  kdf?: ScryptParams;
}

/**
 * An admin enrols a doctor or auditor of their own hospital: keys generated here, the keystore written
 * into the hospital's keystore directory under the initial password, then the enrolUser transaction.
 */
export async function enrolStaff(admin: Session, opts: EnrolOptions): Promise<ActionOutcome> {
  const idCheck = userIdSchema.safeParse(opts.userId);
  if (!idCheck.success) throw new Error(idCheck.error.issues[0]?.message ?? 'invalid user id');
  const problems = newPasswordProblems(opts.userId, opts.password);
  if (problems.length > 0) throw new Error(`password does not meet the policy: ${problems.join('; ')}`);
  if (existsSync(keystorePath(opts.keystoreDir, opts.userId))) throw new Error(`a keystore for ${opts.userId} already exists in ${opts.keystoreDir}`);
  if (await userExists(admin.api, opts.userId)) throw new Error(`user id ${opts.userId} is already taken`);
  const keys = newUserKeys(opts.userId, opts.role, admin.keys.hospital);
  const path = writeKeystore(opts.keystoreDir, keys, opts.password, opts.kdf);
  try {
    const outcome = await admin.enrol(opts.userId, opts.role, keys.signPublic, keys.encPublic!);
    if (outcome.denied) rmSync(path, { force: true });
    return outcome;
  } catch (err) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) rmSync(path, { force: true });
    throw err;
  }
}
