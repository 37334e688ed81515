import { randomBytes, scryptSync } from 'node:crypto';
import { z } from 'zod';
import { open, randomNonce, seal } from './crypto/aead.js';
import { bytesEqual, fromBase64, toBase64, toHex, utf8 } from './crypto/bytes.js';
import { sha256 } from './crypto/hash.js';
import { encryptionPublicKey } from './crypto/keyAgreement.js';
import { publicKeyFromSecret } from './crypto/signature.js';
import { decodeCanonical, encodeCanonical } from './encoding.js';
import { MedLedgerError } from './errors.js';
import { bytes, hospitalIdSchema, roleSchema, userIdSchema, type Role } from './ids.js';
import { assertPasswordPolicy } from './password.js';

/**
 * A user's keystore (SPEC §1): the Ed25519 signing seed and the X25519 secret, sealed with AES-256-GCM
 * under a key derived from the password with scrypt. Everything in clear in the file (id, role, public
 * keys, KDF parameters) is the AEAD's associated data, so any edit to the file is detected.
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
/** ~100 ms and 32 MiB per unlock on this machine: slow for guessing, fine for a login. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
export const keystoreFileSchema = z.strictObject({
  format: z.literal('medledger-keystore/1'),
  userId: userIdSchema,
  role: roleSchema,
  hospital: hospitalIdSchema,
  signPublic: b64,
  encPublic: b64.optional(),
  kdf: z.strictObject({ name: z.literal('scrypt'), N: z.number().int().min(2 ** 10).max(2 ** 20), r: z.number().int().min(1).max(32), p: z.number().int().min(1).max(16), salt: b64 }),
  cipher: z.strictObject({ name: z.literal('aes-256-gcm'), nonce: b64 }),
  ciphertext: b64,
  /** SHA-256 over the rest of the file: tells an edited file from a wrong password before any KDF work. */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
});
export type KeystoreFile = z.infer<typeof keystoreFileSchema>;

const secretsSchema = z.strictObject({ sign: bytes(32), enc: bytes(32).optional() });

function deriveKey(password: string, salt: Uint8Array, kdf: ScryptParams): Uint8Array {
  return new Uint8Array(scryptSync(password.normalize('NFKC'), salt, 32, { ...kdf, maxmem: 256 * kdf.N * kdf.r + 1024 * 1024 }));
}

type KeystoreHeader = Omit<KeystoreFile, 'ciphertext' | 'checksum'>;

function associatedData(file: KeystoreHeader): Uint8Array {
  return utf8(JSON.stringify([file.format, file.userId, file.role, file.hospital, file.signPublic, file.encPublic ?? '', file.kdf, file.cipher]));
}

function checksumOf(header: KeystoreHeader, ciphertext: string): string {
  return toHex(sha256(associatedData(header), utf8(ciphertext)));
}

export function sealKeystore(keys: UserKeys, password: string, kdf: ScryptParams = DEFAULT_SCRYPT): KeystoreFile {
  assertPasswordPolicy(password, keys.userId);
  const salt = new Uint8Array(randomBytes(16));
  const nonce = randomNonce();
  const header: KeystoreHeader = {
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
  const ciphertext = seal(deriveKey(password, salt, kdf), nonce, secrets, associatedData(header));
  const sealed = toBase64(ciphertext);
  return { ...header, ciphertext: sealed, checksum: checksumOf(header, sealed) };
}

/** Opens a keystore: WRONG_PASSWORD when the password is wrong, TAMPERED when the file was altered. */
export function openKeystore(raw: unknown, password: string): UserKeys {
  const parsed = keystoreFileSchema.safeParse(raw);
  if (!parsed.success) throw new MedLedgerError('TAMPERED', `keystore file is malformed: ${parsed.error.issues[0]?.message}`);
  const file = parsed.data;
  const { ciphertext, checksum, ...header } = file;
  if (checksumOf(header, ciphertext) !== checksum) throw new MedLedgerError('TAMPERED', `keystore file of ${file.userId} was altered (checksum mismatch)`);
  let plain: Uint8Array;
  try {
    plain = open(deriveKey(password, fromBase64(file.kdf.salt), file.kdf), fromBase64(file.cipher.nonce), fromBase64(ciphertext), associatedData(header));
  } catch {
    // The checksum matched, so the file is as written (short of a deliberate forgery, which AES-GCM
    // also refuses): the password is wrong.
    throw new MedLedgerError('WRONG_PASSWORD', `wrong password for ${file.userId}`);
  }
  const secrets = secretsSchema.parse(decodeCanonical(plain, 'keystore secrets'));
  const keys: UserKeys = {
    userId: file.userId,
    role: file.role,
    hospital: file.hospital,
    signSecret: secrets.sign,
    signPublic: publicKeyFromSecret(secrets.sign),
    ...(secrets.enc ? { encSecret: secrets.enc, encPublic: encryptionPublicKey(secrets.enc) } : {}),
  };
  if (!bytesEqual(keys.signPublic, fromBase64(file.signPublic)) || (file.encPublic && keys.encPublic && !bytesEqual(keys.encPublic, fromBase64(file.encPublic)))) {
    throw new MedLedgerError('TAMPERED', 'keystore public keys do not match its secrets');
  }
  return keys;
}
