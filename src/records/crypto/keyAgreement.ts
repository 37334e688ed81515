import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { MedLedgerError } from '../errors.js';
import { AEAD_NONCE_LENGTH, open, seal } from './aead.js';
import { concatBytes } from './bytes.js';

/** X25519 key pairs for wrapping record data keys (@noble/curves: not on a hot path). */
export interface EncryptionKeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateEncryptionKeyPair(): EncryptionKeyPair {
  const { secretKey, publicKey } = x25519.keygen();
  return { secretKey, publicKey };
}

export function encryptionPublicKey(secretKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(secretKey);
}

export function sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519.getSharedSecret(secretKey, publicKey);
}

const ZERO_NONCE = new Uint8Array(AEAD_NONCE_LENGTH); // safe: every derived key is used exactly once

function derivedKey(shared: Uint8Array, epk: Uint8Array, recipientKey: Uint8Array, info: Uint8Array): Uint8Array {
  return hkdf(nobleSha256, shared, concatBytes(epk, recipientKey), info, 32);
}

/**
 * The one sealing pipeline to an X25519 public key (record data keys, statistics input shares): a fresh
 * ephemeral key, HKDF-SHA256 (salt = epk ‖ recipient key, `info` names the use and context), AES-256-GCM
 * with a zero nonce under that single-use key and `aad` bound in. Output: epk and ciphertext ‖ tag.
 */
export function sealToKey(recipientKey: Uint8Array, info: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): { epk: Uint8Array; sealed: Uint8Array } {
  const eph = generateEncryptionKeyPair();
  const key = derivedKey(sharedSecret(eph.secretKey, recipientKey), eph.publicKey, recipientKey, info);
  return { epk: eph.publicKey, sealed: seal(key, ZERO_NONCE, plaintext, aad) };
}

/** Opens what sealToKey sealed; TAMPERED on a wrong key, other info/aad, or any altered byte. */
export function openWithKey(secretKey: Uint8Array, publicKey: Uint8Array, epk: Uint8Array, sealed: Uint8Array, info: Uint8Array, aad: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = sharedSecret(secretKey, epk);
  } catch {
    // A low-order ephemeral key (all-zero shared secret) is refused by X25519: altered data.
    throw new MedLedgerError('TAMPERED', 'sealed data has an invalid ephemeral public key');
  }
  return open(derivedKey(shared, epk, publicKey, info), ZERO_NONCE, sealed, aad);
}
