import { concatBytes, utf8 } from './crypto/bytes.js';
import { verifySignature, type Signer } from './crypto/signature.js';
import { domainMessage } from './crypto/signingDomain.js';

/**
 * Key rotation (issue 10). A `rotateKeys` transaction is signed by the user's CURRENT signing key (the
 * ordinary transaction signature) and carries `consent`: the NEW signing key's signature over
 * `medledger/key-consent/v2 ‖ genesis hash ‖ user id ‖ 0 ‖ old signKey ‖ new signKey ‖ new encKey`.
 * So the current key holder names the new keys, and the holder of the new signing key proves possession
 * and agrees to be this user on this network (a key cannot be installed for someone who does not hold it,
 * and a consent cannot be replayed for another user, another old key or another network).
 */
function consentContent(userId: string, oldSignKey: Uint8Array, signKey: Uint8Array, encKey: Uint8Array): Uint8Array {
  return concatBytes(utf8(userId), new Uint8Array([0]), oldSignKey, signKey, encKey);
}

/** The new key's consent, made with the new signing key's signer. */
export function signKeyConsent(newSigner: Signer, userId: string, oldSignKey: Uint8Array, encKey: Uint8Array, genesisHash: Uint8Array): Uint8Array {
  return newSigner.sign(domainMessage('keyConsent', genesisHash, consentContent(userId, oldSignKey, newSigner.publicKey, encKey)));
}

export function verifyKeyConsent(
  consent: Uint8Array,
  userId: string,
  oldSignKey: Uint8Array,
  signKey: Uint8Array,
  encKey: Uint8Array,
  genesisHash: Uint8Array,
): boolean {
  return verifySignature(signKey, domainMessage('keyConsent', genesisHash, consentContent(userId, oldSignKey, signKey, encKey)), consent);
}
