import { randomBytes } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './crypto/bytes.js';
import { createSigner, publicKeyFromSecret, verifySignature } from './crypto/signature.js';
import { domainMessage } from './crypto/signingDomain.js';

/**
 * Staff activation codes (issue 10). Enrolment is an invitation: the admin's `inviteUser` names the new
 * user id, role and expiry, and the public key `codeKey` of an Ed25519 key derived from a one-time code the
 * admin hands over out of band. The staff member's own computer generates the keys, and the `activateUser`
 * transaction is signed by the NEW signing key (so it proves possession of it) and carries `codeSig`: a
 * signature by the code-derived key over `tag ‖ genesis hash ‖ user id ‖ signKey ‖ encKey`.
 *
 * Why this shape:
 * - The code never appears on chain nor at any node; only its public key does. Seeing a pending activation
 *   does not let anyone front-run it with their own keys: `codeSig` covers the keys it installs, and signing
 *   over other keys needs the code.
 * - The code is 20 base32 characters = 100 bits from the OS CSPRNG. With `codeKey` public, an attacker can
 *   guess codes offline, so the code needs no key stretching but must be unguessable: 2^100 Ed25519 key
 *   derivations are out of reach within any invitation lifetime (at most 30 days).
 * - The seed is HKDF-SHA256 of the normalized code, salted with a domain tag and the user id, so one code
 *   gives a different key for every user id and the derivation is used for nothing else.
 * - The admin never holds the staff member's private keys or password; the admin can still invite a second,
 *   fake account, but not act as an existing one, and every invitation and activation is audited.
 */
export const ACTIVATION_CODE_LENGTH = 20;
/** Crockford-style base32 without I, L, O, U: easy to read aloud and to type. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODE_SALT = utf8('medledger/activation-code/v1');

/** A fresh code, shown to the admin as groups of four (`ABCD-EFGH-…`). */
export function newActivationCode(): string {
  const raw = randomBytes(ACTIVATION_CODE_LENGTH);
  let code = '';
  for (const b of raw) code += ALPHABET[b & 31]; // 256 is a multiple of 32: uniform
  return formatActivationCode(code);
}

export function formatActivationCode(code: string): string {
  return normalizeActivationCode(code)
    .match(/.{1,4}/g)!
    .join('-');
}

/** Upper case, separators and spaces removed, the usual misreadings (O→0, I/L→1) mapped. */
export function normalizeActivationCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
}

export function isActivationCode(code: string): boolean {
  const n = normalizeActivationCode(code);
  return n.length === ACTIVATION_CODE_LENGTH && [...n].every((c) => ALPHABET.includes(c));
}

function codeSeed(code: string, userId: string): Uint8Array {
  if (!isActivationCode(code)) throw new TypeError(`an activation code is ${ACTIVATION_CODE_LENGTH} characters of ${ALPHABET}`);
  return hkdf(nobleSha256, utf8(normalizeActivationCode(code)), CODE_SALT, utf8(userId), 32);
}

/** The public key an invitation carries for this code and user id. */
export function activationCodeKey(code: string, userId: string): Uint8Array {
  return publicKeyFromSecret(codeSeed(code, userId));
}

/** What the code-derived key signs: the user id and the keys the activation installs (both 32 bytes, last). */
function activationContent(userId: string, signKey: Uint8Array, encKey: Uint8Array): Uint8Array {
  return concatBytes(utf8(userId), signKey, encKey);
}

export function signActivation(code: string, userId: string, signKey: Uint8Array, encKey: Uint8Array, genesisHash: Uint8Array): Uint8Array {
  return createSigner(codeSeed(code, userId)).sign(domainMessage('activation', genesisHash, activationContent(userId, signKey, encKey)));
}

export function verifyActivation(
  codeKey: Uint8Array,
  codeSig: Uint8Array,
  userId: string,
  signKey: Uint8Array,
  encKey: Uint8Array,
  genesisHash: Uint8Array,
): boolean {
  return verifySignature(codeKey, domainMessage('activation', genesisHash, activationContent(userId, signKey, encKey)), codeSig);
}

/** Default and longest lifetime of an invitation. */
export const INVITATION_TTL_MS = 7 * 86_400_000;
export const INVITATION_MAX_TTL_MS = 30 * 86_400_000;
