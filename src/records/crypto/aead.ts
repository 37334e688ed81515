import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MedLedgerError } from '../errors.js';

/** AES-256-GCM (node:crypto). Output is ciphertext ‖ 16-byte tag. */
export const AEAD_NONCE_LENGTH = 12;
const TAG_LENGTH = 16;

export function randomNonce(): Uint8Array {
  return new Uint8Array(randomBytes(AEAD_NONCE_LENGTH));
}

export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const final = cipher.final();
  return new Uint8Array(Buffer.concat([body, final, cipher.getAuthTag()]));
}

/** Throws TAMPERED when the key is wrong or any byte of ciphertext, tag or associated data changed. */
export function open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  if (sealed.length < TAG_LENGTH) throw new MedLedgerError('TAMPERED', 'ciphertext too short');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
    const body = decipher.update(sealed.subarray(0, sealed.length - TAG_LENGTH));
    return new Uint8Array(Buffer.concat([body, decipher.final()]));
  } catch {
    throw new MedLedgerError('TAMPERED', 'decryption failed: wrong key or altered data');
  }
}
