import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { open, randomNonce, seal } from './crypto/aead.js';
import { bytesEqual, concatBytes, fromBase64, toBase64, toHex, utf8 } from './crypto/bytes.js';
import { sha256 } from './crypto/hash.js';
import { encryptionPublicKey } from './crypto/keyAgreement.js';
import { createSigner, publicKeyFromSecret, verifySignature } from './crypto/signature.js';
import { decodeCanonical, encodeCanonical } from './encoding.js';
import { MedLedgerError } from './errors.js';
import { bytes, hospitalIdSchema, roleSchema, userIdSchema, type Role } from './ids.js';
import { assertPasswordPolicy } from './password.js';

/**
 * A user's keystore (PROTOCOL.md §1.5): the Ed25519 signing seed and the X25519 secret, sealed with AES-256-GCM
 * under a key derived from the password with scrypt.
 *
 * Format 2 (`medledger-keystore/2`, written since issue 10):
 * - master = scrypt(NFKC(password), salt, N, r, p); from it, with HKDF-SHA256, two independent keys:
 *   the AES key and a 32-byte key-check value stored in the file.
 * - The whole clear header (format, user, role, hospital, public keys, KDF parameters and salt, nonce,
 *   key check) is the AEAD's associated data, and is signed, with the ciphertext, by the user's own
 *   Ed25519 key (tag `medledger/keystore/v2`).
 *
 * How an opener tells TAMPERED from WRONG_PASSWORD, soundly:
 * 1. KDF parameters outside fixed bounds are refused (TAMPERED) before any derivation, so a crafted file
 *    cannot make the opener allocate gigabytes or spin for minutes.
 * 2. The signature is checked against the file's signing key (no password needed): any edit of any field
 *    by someone without the user's secret key is TAMPERED. To get past this step a forger must put in a
 *    signing key of their own, and then the secrets inside (ours) no longer match it (step 5), or the
 *    ciphertext is theirs too: a whole other keystore, which login tells apart by comparing the file's
 *    signing key with the ledger's.
 * 3. The key-check value derived from the password is compared with the stored one: a mismatch means the
 *    password is wrong (WRONG_PASSWORD). It depends only on the password, the salt and the parameters,
 *    which step 2 vouches for.
 * 4. With the key check matching, the password is right, so an AES-GCM failure can only mean that the
 *    header or the ciphertext differ from what was sealed: TAMPERED, never "wrong password".
 * 5. The secrets must yield the public keys of the header: else TAMPERED.
 * The key-check value lets an attacker who has the file test guesses without AES-GCM, at the same scrypt
 * cost per guess: it gives nothing that a trial decryption does not.
 *
 * Format 1 (`medledger-keystore/1`, before issue 10): an unkeyed SHA-256 checksum over the header and
 * ciphertext, no key check. Such files still open (same bounds on their parameters); an edit with the
 * checksum recomputed is then reported as a wrong password. `medledger passwd` (or the TUI's
 * "Change password") rewrites a keystore in format 2 under the current parameters.
 */
export interface UserKeys {
  userId: string;
  role: Role;
  hospital: string;
  signSecret: Uint8Array;
  signPublic: Uint8Array;
  encSecret?: Uint8Array;
  encPublic?: Uint8Array;
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
/**
 * scrypt N = 2^17, r = 8, p = 1: 128 MiB and ~0.3 s per unlock on this machine (measured 270–350 ms on
 * the 2-core development VM, Node 20; `node:crypto` scryptSync). Slow and memory-hard for guessing, fine
 * for a login. Was N = 2^15 (~90 ms, 32 MiB) before issue 10.
 */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

/**
 * What a keystore file may ask for: N a power of two in [2^10, 2^18], r in [1, 16], p = 1, and at most
 * 256 MiB (128·N·r bytes). 2^10 exists for tests (test/support/testNetwork.ts FAST_KDF); new keystores use
 * DEFAULT_SCRYPT. Anything else is refused as TAMPERED before any derivation.
 */
export const SCRYPT_BOUNDS = { minLog2N: 10, maxLog2N: 18, maxR: 16, maxP: 1, maxMemoryBytes: 256 * 1024 * 1024 } as const;

export function scryptParamsProblem(kdf: ScryptParams): string | undefined {
  const { N, r, p } = kdf;
  if (!Number.isSafeInteger(N) || N < 2 ** SCRYPT_BOUNDS.minLog2N || N > 2 ** SCRYPT_BOUNDS.maxLog2N || (N & (N - 1)) !== 0)
    return `N must be a power of two from 2^${SCRYPT_BOUNDS.minLog2N} to 2^${SCRYPT_BOUNDS.maxLog2N}`;
  if (!Number.isSafeInteger(r) || r < 1 || r > SCRYPT_BOUNDS.maxR) return `r must be from 1 to ${SCRYPT_BOUNDS.maxR}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > SCRYPT_BOUNDS.maxP) return `p must be ${SCRYPT_BOUNDS.maxP}`;
  if (128 * N * r > SCRYPT_BOUNDS.maxMemoryBytes) return `N·r asks for more than ${SCRYPT_BOUNDS.maxMemoryBytes / 2 ** 20} MiB`;
  return undefined;
}

export const KEYSTORE_FORMAT = 'medledger-keystore/2';
const SIGNATURE_TAG = utf8('medledger/keystore/v2\0');

const b64 = z
  .string()
  .max(4096)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/);
/** Loose number checks only: the bounds are checked by scryptParamsProblem, with a clear message. */
const kdfSchema = z.strictObject({ name: z.literal('scrypt'), N: z.number(), r: z.number(), p: z.number(), salt: b64 });
const commonFields = {
  userId: userIdSchema,
  role: roleSchema,
  hospital: hospitalIdSchema,
  signPublic: b64,
  encPublic: b64.optional(),
  kdf: kdfSchema,
  cipher: z.strictObject({ name: z.literal('aes-256-gcm'), nonce: b64 }),
  ciphertext: b64,
};
export const keystoreFileSchema = z.strictObject({
  format: z.literal(KEYSTORE_FORMAT),
  ...commonFields,
  /** HKDF(master, "key check"): tells a wrong password from an altered file (see above). */
  keyCheck: b64,
  /** Ed25519 signature by the user's key over the header and the ciphertext. */
  signature: b64,
});
export type KeystoreFile = z.infer<typeof keystoreFileSchema>;

/** The format before issue 10, still opened (and rewritten as format 2 by a password change). */
export const legacyKeystoreFileSchema = z.strictObject({
  format: z.literal('medledger-keystore/1'),
  ...commonFields,
  /** SHA-256 over the rest of the file (unkeyed: anyone who edits the file can recompute it). */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
});
export type LegacyKeystoreFile = z.infer<typeof legacyKeystoreFileSchema>;

const anyKeystoreSchema = z.discriminatedUnion('format', [keystoreFileSchema, legacyKeystoreFileSchema]);

const secretsSchema = z.strictObject({ sign: bytes(32), enc: bytes(32).optional() });

function scrypt(password: string, salt: Uint8Array, kdf: ScryptParams): Uint8Array {
  const problem = scryptParamsProblem(kdf);
  if (problem) throw new MedLedgerError('TAMPERED', `keystore KDF parameters out of bounds: ${problem}`);
  // maxmem: node refuses above 32 MiB by default; the bounds above cap what is asked for at 256 MiB.
  return new Uint8Array(scryptSync(password.normalize('NFKC'), salt, 32, { ...kdf, maxmem: 128 * kdf.N * kdf.r + 2 * 1024 * 1024 }));
}

function subKeys(master: Uint8Array, salt: Uint8Array): { aesKey: Uint8Array; keyCheck: Uint8Array } {
  return {
    aesKey: hkdf(nobleSha256, master, salt, utf8('medledger/keystore/v2/aes-key'), 32),
    keyCheck: hkdf(nobleSha256, master, salt, utf8('medledger/keystore/v2/key-check'), 32),
  };
}

type Header = Omit<KeystoreFile, 'ciphertext' | 'signature'>;
type LegacyHeader = Omit<LegacyKeystoreFile, 'ciphertext' | 'checksum'>;

function associatedData(h: Header): Uint8Array {
  return utf8(
    JSON.stringify([
      h.format,
      h.userId,
      h.role,
      h.hospital,
      h.signPublic,
      h.encPublic ?? '',
      [h.kdf.name, h.kdf.N, h.kdf.r, h.kdf.p, h.kdf.salt],
      [h.cipher.name, h.cipher.nonce],
      h.keyCheck,
    ]),
  );
}

function signedMessage(h: Header, ciphertext: string): Uint8Array {
  return concatBytes(SIGNATURE_TAG, sha256(associatedData(h), utf8('\0'), utf8(ciphertext)));
}

function legacyAssociatedData(file: LegacyHeader): Uint8Array {
  return utf8(JSON.stringify([file.format, file.userId, file.role, file.hospital, file.signPublic, file.encPublic ?? '', file.kdf, file.cipher]));
}

export function sealKeystore(keys: UserKeys, password: string, kdf: ScryptParams = DEFAULT_SCRYPT): KeystoreFile {
  assertPasswordPolicy(password, keys.userId);
  const salt = new Uint8Array(randomBytes(16));
  const nonce = randomNonce();
  const { aesKey, keyCheck } = subKeys(scrypt(password, salt, kdf), salt);
  const header: Header = {
    format: KEYSTORE_FORMAT,
    userId: keys.userId,
    role: keys.role,
    hospital: keys.hospital,
    signPublic: toBase64(keys.signPublic),
    ...(keys.encPublic ? { encPublic: toBase64(keys.encPublic) } : {}),
    kdf: { name: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, salt: toBase64(salt) },
    cipher: { name: 'aes-256-gcm', nonce: toBase64(nonce) },
    keyCheck: toBase64(keyCheck),
  };
  const secrets = encodeCanonical({ sign: keys.signSecret, enc: keys.encSecret });
  const ciphertext = toBase64(seal(aesKey, nonce, secrets, associatedData(header)));
  const signature = toBase64(createSigner(keys.signSecret).sign(signedMessage(header, ciphertext)));
  return { ...header, ciphertext, signature };
}

/** Opens a keystore (format 2 or 1): WRONG_PASSWORD when the password is wrong, TAMPERED when the file was altered. */
export function openKeystore(raw: unknown, password: string): UserKeys {
  const parsed = anyKeystoreSchema.safeParse(raw);
  if (!parsed.success) throw new MedLedgerError('TAMPERED', `keystore file is malformed: ${parsed.error.issues[0]?.message}`);
  const file = parsed.data;
  const problem = scryptParamsProblem(file.kdf);
  if (problem) throw new MedLedgerError('TAMPERED', `keystore file of ${file.userId} asks for KDF parameters out of bounds: ${problem}`);
  const plain = file.format === KEYSTORE_FORMAT ? openV2(file, password) : openV1(file, password);
  const secrets = secretsSchema.safeParse(safeDecode(plain));
  if (!secrets.success) throw new MedLedgerError('TAMPERED', `keystore secrets of ${file.userId} are malformed`);
  const keys: UserKeys = {
    userId: file.userId,
    role: file.role,
    hospital: file.hospital,
    signSecret: secrets.data.sign,
    signPublic: publicKeyFromSecret(secrets.data.sign),
    ...(secrets.data.enc ? { encSecret: secrets.data.enc, encPublic: encryptionPublicKey(secrets.data.enc) } : {}),
  };
  if (
    !bytesEqual(keys.signPublic, fromBase64(file.signPublic)) ||
    (file.encPublic && keys.encPublic && !bytesEqual(keys.encPublic, fromBase64(file.encPublic))) ||
    !!file.encPublic !== !!keys.encPublic
  ) {
    throw new MedLedgerError('TAMPERED', 'keystore public keys do not match its secrets');
  }
  return keys;
}

function safeDecode(plain: Uint8Array): unknown {
  try {
    return decodeCanonical(plain, 'keystore secrets');
  } catch {
    return undefined;
  }
}

function openV2(file: KeystoreFile, password: string): Uint8Array {
  const { ciphertext, signature, ...header } = file;
  if (!verifySignature(fromBase64(file.signPublic), signedMessage(header, ciphertext), fromBase64(signature))) {
    throw new MedLedgerError('TAMPERED', `keystore file of ${file.userId} was altered (its signature does not verify)`);
  }
  const salt = fromBase64(file.kdf.salt);
  const { aesKey, keyCheck } = subKeys(scrypt(password, salt, file.kdf), salt);
  const stored = fromBase64(file.keyCheck);
  if (stored.length !== keyCheck.length || !timingSafeEqual(stored, keyCheck)) throw new MedLedgerError('WRONG_PASSWORD', `wrong password for ${file.userId}`);
  try {
    return open(aesKey, fromBase64(file.cipher.nonce), fromBase64(ciphertext), associatedData(header));
  } catch {
    // The key check matched: the password is right, so the sealed data or its header changed.
    throw new MedLedgerError('TAMPERED', `keystore file of ${file.userId} was altered (authentication failed with the right password)`);
  }
}

function openV1(file: LegacyKeystoreFile, password: string): Uint8Array {
  const { ciphertext, checksum, ...header } = file;
  if (toHex(sha256(legacyAssociatedData(header), utf8(ciphertext))) !== checksum)
    throw new MedLedgerError('TAMPERED', `keystore file of ${file.userId} was altered (checksum mismatch)`);
  try {
    return open(scrypt(password, fromBase64(file.kdf.salt), file.kdf), fromBase64(file.cipher.nonce), fromBase64(ciphertext), legacyAssociatedData(header));
  } catch {
    // Format 1 cannot tell a forged edit (checksum recomputed) from a wrong password.
    throw new MedLedgerError('WRONG_PASSWORD', `wrong password for ${file.userId}`);
  }
}

/**
 * Re-seals a keystore under a new password (new salt and nonce, current KDF parameters, format 2): the
 * old password must open it first. The new password is policy-checked.
 */
export function resealKeystore(
  raw: unknown,
  oldPassword: string,
  newPassword: string,
  kdf: ScryptParams = DEFAULT_SCRYPT,
): { keys: UserKeys; file: KeystoreFile } {
  const keys = openKeystore(raw, oldPassword);
  return { keys, file: sealKeystore(keys, newPassword, kdf) };
}

/**
 * For tests of old files: seals in format 1 exactly as the code before issue 10 did.
 * @internal
 */
export function sealLegacyKeystore(keys: UserKeys, password: string, kdf: ScryptParams): LegacyKeystoreFile {
  const salt = new Uint8Array(randomBytes(16));
  const nonce = randomNonce();
  const header: LegacyHeader = {
    format: 'medledger-keystore/1',
    userId: keys.userId,
    role: keys.role,
    hospital: keys.hospital,
    signPublic: toBase64(keys.signPublic),
    ...(keys.encPublic ? { encPublic: toBase64(keys.encPublic) } : {}),
    kdf: { name: 'scrypt', ...kdf, salt: toBase64(salt) },
    cipher: { name: 'aes-256-gcm', nonce: toBase64(nonce) },
  };
  const secrets = encodeCanonical({ sign: keys.signSecret, enc: keys.encSecret });
  const sealed = toBase64(seal(scrypt(password, salt, kdf), nonce, secrets, legacyAssociatedData(header)));
  return { ...header, ciphertext: sealed, checksum: toHex(sha256(legacyAssociatedData(header), utf8(sealed))) };
}
