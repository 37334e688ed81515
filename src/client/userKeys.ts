import { generateEncryptionKeyPair } from '../records/crypto/keyAgreement.js';
import { generateSigningKeyPair } from '../records/crypto/signature.js';
import type { UserKeys } from '../records/keystore.js';

/** Fresh keys for a new user: Ed25519 for signing, and X25519 for record keys (all but admins). */
export function newUserKeys(userId: string, role: UserKeys['role'], hospital: string, withEncryption = true): UserKeys {
  const sign = generateSigningKeyPair();
  const enc = withEncryption ? generateEncryptionKeyPair() : undefined;
  return {
    userId,
    role,
    hospital,
    signSecret: sign.secretKey,
    signPublic: sign.publicKey,
    ...(enc ? { encSecret: enc.secretKey, encPublic: enc.publicKey } : {}),
  };
}
