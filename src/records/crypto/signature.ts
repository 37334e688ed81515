import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { activeBackend, privateKeyObject, type Ed25519Backend, type Ed25519BackendName } from './ed25519Backends.js';

/**
 * Ed25519: verification and signing through the fastest backend that loads here (libsodium, else
 * node:crypto; `ed25519Backends.ts`), which accept and produce exactly the same signatures. Keys travel
 * as raw 32-byte seeds / public keys.
 */
export const SIGNATURE_LENGTH = 64;
export const PUBLIC_KEY_LENGTH = 32;

/** Which Ed25519 implementation this process uses. */
export function signatureBackend(): Ed25519BackendName {
  return activeBackend.name;
}

export interface SigningKeyPair {
  /** 32-byte Ed25519 seed (RFC 8032 secret key). */
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const secretKey = new Uint8Array(der.subarray(der.length - 32));
  return { secretKey, publicKey: publicKeyFromSecret(secretKey) };
}

export function publicKeyFromSecret(secretKey: Uint8Array): Uint8Array {
  const spki = createPublicKey(privateKeyObject(secretKey)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/** A signer keeps its prepared key so that repeated signing (validators, load generators) skips that work. */
export interface Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export function createSigner(secretKey: Uint8Array): Signer {
  const publicKey = publicKeyFromSecret(secretKey);
  return { publicKey, sign: activeBackend.signer(secretKey) };
}

/** `verifySignature`, or one that may know some signatures to be valid already (a pre-check on workers). */
export type SignatureVerifier = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

/** Returns false (never throws) for malformed keys or signatures: callers turn that into a typed rejection. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return verifyWith(activeBackend, publicKey, message, signature);
}

/** `verifySignature` through a given backend (tests and benchmarks compare them). */
export function verifyWith(backend: Ed25519Backend, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false;
  try {
    return backend.verify(publicKey, message, signature);
  } catch {
    return false;
  }
}
