import { randomBytes } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { open, randomNonce, seal } from './crypto/aead.js';
import { concatBytes, fromBase64, toBase64, utf8 } from './crypto/bytes.js';
import { encryptionPublicKey, generateEncryptionKeyPair, sharedSecret } from './crypto/keyAgreement.js';
import { createSigner, publicKeyFromSecret, verifySignature, type Signer } from './crypto/signature.js';
import { decodeCanonical, encodeCanonical } from './encoding.js';
import { MedLedgerError } from './errors.js';
import { bytes, userIdSchema } from './ids.js';
import type { UserKeys } from './keystore.js';

/**
 * Recovery kit and key backup (issue 10).
 *
 * - The recovery code: 24 base32 characters (120 bits from the OS CSPRNG), made on the patient's computer
 *   at registration, shown once in groups of four, never sent to a node and never logged.
 * - From the code alone, with HKDF-SHA256 (salted with a domain tag and the user id; no key stretching: the
 *   code is 120 random bits, so guessing it offline is out of reach whatever a guess costs), two keys:
 *   an Ed25519 `auth` key, whose public half the node keeps to check that a reader of the backup knows the
 *   code, and an X25519 `seal` key, whose public half is in the backup so that the owner can re-wrap the
 *   password copy after a password change without the code.
 * - The backup holds the patient's secret keys sealed twice: `codeCopy` (the secrets, sealed to the seal
 *   key) and `passwordCopy` (the patient's keystore file — scrypt N=2^17 and AES-GCM under the password —
 *   itself wrapped to the seal key too, so that the node's operator, who can read their own disk, holds
 *   nothing to guess passwords against). Each copy: ephemeral X25519, HKDF, AES-256-GCM.
 * - The whole backup is signed by the patient's own signing key; the node stores it only when the signature
 *   verifies against the ledger's key of the user, and a recovering client checks it the same way.
 */
export const RECOVERY_CODE_LENGTH = 24;
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const BACKUP_FORMAT = 'medledger-backup/1';
/** Largest backup a node stores (a keystore is about 1 KiB). */
export const BACKUP_MAX_BYTES = 16 * 1024;

export function newRecoveryCode(): string {
  let code = '';
  for (const b of randomBytes(RECOVERY_CODE_LENGTH)) code += ALPHABET[b & 31]; // 256 is a multiple of 32: uniform
  return formatRecoveryCode(code);
}

/** Upper case, spaces and dashes removed, O→0 and I/L→1. */
export function normalizeRecoveryCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

export function formatRecoveryCode(code: string): string {
  return normalizeRecoveryCode(code)
    .match(/.{1,4}/g)!
    .join('-');
}

export function isRecoveryCode(code: string): boolean {
  const n = normalizeRecoveryCode(code);
  return n.length === RECOVERY_CODE_LENGTH && [...n].every((c) => ALPHABET.includes(c));
}

export interface RecoveryKeys {
  authSecret: Uint8Array;
  authKey: Uint8Array;
  sealSecret: Uint8Array;
  sealKey: Uint8Array;
}

/** The keys of a recovery code for one user id. */
export function recoveryKeys(code: string, userId: string): RecoveryKeys {
  if (!isRecoveryCode(code)) throw new MedLedgerError('MALFORMED', `a recovery code is ${RECOVERY_CODE_LENGTH} letters and digits (groups of four)`);
  const ikm = utf8(normalizeRecoveryCode(code));
  const salt = utf8('medledger/recovery-code/v1');
  const authSecret = hkdf(nobleSha256, ikm, salt, utf8(`auth\0${userId}`), 32);
  const sealSecret = hkdf(nobleSha256, ikm, salt, utf8(`seal\0${userId}`), 32);
  return { authSecret, authKey: publicKeyFromSecret(authSecret), sealSecret, sealKey: encryptionPublicKey(sealSecret) };
}

/** The signer of requests that prove knowledge of the code (GET /v1/backup/:id). */
export function recoverySigner(code: string, userId: string): Signer {
  return createSigner(recoveryKeys(code, userId).authSecret);
}

const b64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/);
const sealedSchema = z.strictObject({ epk: b64(64), nonce: b64(32), ciphertext: b64(12_000) });
type Sealed = z.infer<typeof sealedSchema>;

export const backupSchema = z.strictObject({
  format: z.literal(BACKUP_FORMAT),
  userId: userIdSchema,
  /** Ed25519 public key of the code's auth key: the node serves the backup to requests it signed. */
  authKey: b64(64),
  /** X25519 public key of the code's seal key: both copies are sealed to it. */
  sealKey: b64(64),
  codeCopy: sealedSchema,
  passwordCopy: sealedSchema,
  /** The owner's Ed25519 signature over everything above. */
  signature: b64(128),
});
export type Backup = z.infer<typeof backupSchema>;

function aad(userId: string, what: string, sealKey: string): Uint8Array {
  return utf8(JSON.stringify([BACKUP_FORMAT, userId, what, sealKey]));
}

function sealTo(sealKey: Uint8Array, plain: Uint8Array, ad: Uint8Array): Sealed {
  const eph = generateEncryptionKeyPair();
  const key = hkdf(nobleSha256, sharedSecret(eph.secretKey, sealKey), concatBytes(eph.publicKey, sealKey), utf8('medledger/backup/v1'), 32);
  const nonce = randomNonce();
  return { epk: toBase64(eph.publicKey), nonce: toBase64(nonce), ciphertext: toBase64(seal(key, nonce, plain, ad)) };
}

function openFrom(sealSecret: Uint8Array, s: Sealed, ad: Uint8Array): Uint8Array {
  const epk = fromBase64(s.epk);
  const sealKey = encryptionPublicKey(sealSecret);
  const key = hkdf(nobleSha256, sharedSecret(sealSecret, epk), concatBytes(epk, sealKey), utf8('medledger/backup/v1'), 32);
  return open(key, fromBase64(s.nonce), fromBase64(s.ciphertext), ad);
}

function signedPart(b: Omit<Backup, 'signature'>): Uint8Array {
  return concatBytes(utf8('medledger/backup/v1\0'), utf8(JSON.stringify([b.format, b.userId, b.authKey, b.sealKey, b.codeCopy, b.passwordCopy])));
}

/**
 * A new backup for `keys` with the public keys of a recovery code (`authKey`, `sealKey`): the secrets and the
 * password-sealed keystore file, each sealed to `sealKey`, signed by the user.
 */
export function buildBackup(keys: UserKeys, keystoreFile: unknown, pub: { authKey: Uint8Array; sealKey: Uint8Array }): Backup {
  const sealKey = toBase64(pub.sealKey);
  const secrets = encodeCanonical({ sign: keys.signSecret, enc: keys.encSecret });
  const body = {
    format: BACKUP_FORMAT,
    userId: keys.userId,
    authKey: toBase64(pub.authKey),
    sealKey,
    codeCopy: sealTo(pub.sealKey, secrets, aad(keys.userId, 'code', sealKey)),
    passwordCopy: sealTo(pub.sealKey, utf8(JSON.stringify(keystoreFile)), aad(keys.userId, 'password', sealKey)),
  } as const;
  return { ...body, signature: toBase64(createSigner(keys.signSecret).sign(signedPart(body))) };
}

/** The backup, parsed, with its signature checked against the user's signing key (MALFORMED / TAMPERED otherwise). */
export function checkBackup(raw: unknown, signKey: Uint8Array): Backup {
  const parsed = backupSchema.safeParse(raw);
  if (!parsed.success) throw new MedLedgerError('MALFORMED', `backup is malformed: ${parsed.error.issues[0]?.message}`);
  const { signature, ...body } = parsed.data;
  if (!verifySignature(signKey, signedPart(body), fromBase64(signature)))
    throw new MedLedgerError('TAMPERED', `the backup of ${body.userId} is not signed by its owner's key`);
  return parsed.data;
}

const secretsSchema = z.strictObject({ sign: bytes(32), enc: bytes(32).optional() });

/** The secrets of the code-sealed copy (WRONG_PASSWORD for a code that does not open it). */
export function openCodeCopy(backup: Backup, code: string): { signSecret: Uint8Array; encSecret?: Uint8Array } {
  const rk = recoveryKeys(code, backup.userId);
  let plain: Uint8Array;
  try {
    plain = openFrom(rk.sealSecret, backup.codeCopy, aad(backup.userId, 'code', backup.sealKey));
  } catch {
    throw new MedLedgerError('WRONG_PASSWORD', `wrong recovery code for ${backup.userId}`);
  }
  const s = secretsSchema.safeParse(decodeCanonical(plain, 'backup secrets'));
  if (!s.success) throw new MedLedgerError('TAMPERED', `the backup secrets of ${backup.userId} are malformed`);
  return { signSecret: s.data.sign, ...(s.data.enc ? { encSecret: s.data.enc } : {}) };
}

/** The password-sealed keystore file of the backup (still sealed under the password). */
export function openPasswordCopy(backup: Backup, code: string): unknown {
  const rk = recoveryKeys(code, backup.userId);
  try {
    return JSON.parse(new TextDecoder().decode(openFrom(rk.sealSecret, backup.passwordCopy, aad(backup.userId, 'password', backup.sealKey))));
  } catch {
    throw new MedLedgerError('WRONG_PASSWORD', `wrong recovery code for ${backup.userId}`);
  }
}

/** The same backup with a new password copy (after a password change): needs only the public seal key. */
export function replacePasswordCopy(backup: Backup, keys: UserKeys, keystoreFile: unknown): Backup {
  const fresh = buildBackup(keys, keystoreFile, { authKey: fromBase64(backup.authKey), sealKey: fromBase64(backup.sealKey) });
  const body = { ...backup, passwordCopy: fresh.passwordCopy };
  const { signature: _old, ...unsigned } = body;
  return { ...unsigned, signature: toBase64(createSigner(keys.signSecret).sign(signedPart(unsigned))) };
}
