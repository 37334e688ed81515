import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * The Ed25519 implementations behind `signature.ts`: libsodium through the native `sodium-native` package
 * when it loads (about 1.7x faster verification), node:crypto (OpenSSL) otherwise. Both sign identically
 * (Ed25519 is deterministic) and give the same verdict on every input, malformed ones included: consensus
 * depends on it, since every node must accept exactly the same signatures whatever its backend.
 *
 * `MEDLEDGER_ED25519=node:crypto` (or `libsodium`) in the environment picks one (benchmarks, tests, or to
 * rule out the native module); worker threads inherit it, so they pick what the main thread picked.
 */
export type Ed25519BackendName = 'libsodium' | 'node:crypto';

export interface Ed25519Backend {
  readonly name: Ed25519BackendName;
  /** Caller checked the lengths (32-byte key, 64-byte signature); may throw on other malformed input. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** Signs with a 32-byte seed (RFC 8032 secret key); the key material is prepared once. */
  signer(secretKey: Uint8Array): (message: Uint8Array) => Uint8Array;
}

const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

export function privateKeyObject(secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== 32) throw new TypeError('Ed25519 secret key must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
}

const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 50_000;

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  let key = publicKeyCache.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyCache.clear();
    publicKeyCache.set(id, key);
  }
  return key;
}

/** OpenSSL; KeyObjects are built once per public key and cached (DER parsing costs about a verification). */
export const nodeCryptoBackend: Ed25519Backend = {
  name: 'node:crypto',
  verify: (publicKey, message, signature) => verify(null, message, publicKeyObject(publicKey), signature),
  signer(secretKey) {
    const key = privateKeyObject(secretKey);
    return (message) => new Uint8Array(sign(null, message, key));
  },
};

/** The part of sodium-native used here. */
interface SodiumNative {
  crypto_sign_verify_detached(sig: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  crypto_sign_detached(sig: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_seed_keypair(publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void;
}

/**
 * The y coordinates (sign bit of x cleared) of the points of order 1, 2, 4 and 8, and their non-canonical
 * spellings p and p+1: libsodium's list in `ge25519_has_small_order`.
 */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => Buffer.from(hex, 'hex'));

/** An encoded point libsodium refuses before verifying: y ≥ p (not canonical), or of small order. */
function refusedPoint(p: Uint8Array): boolean {
  // y ≥ p = 2^255 - 19: bytes 1..30 all 0xff, byte 31 (sign bit cleared) 0x7f, byte 0 ≥ 0xed.
  let high = (p[31]! & 0x7f) === 0x7f;
  for (let i = 30; high && i > 0; i--) high = p[i] === 0xff;
  if (high && p[0]! >= 0xed) return true;
  return SMALL_ORDER.some((q) => {
    for (let i = 0; i < 31; i++) if (p[i] !== q[i]) return false;
    return (p[31]! & 0x7f) === q[31];
  });
}

/** The group order L, little-endian: S must be below it. */
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

function nonCanonicalScalar(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    if (s[i]! !== L[i]!) return s[i]! > L[i]!;
  }
  return true; // S = L
}

/**
 * Where libsodium (cofactorless, like OpenSSL) is stricter than OpenSSL: it refuses small-order and
 * non-canonical public keys and small-order R before checking the equation, where OpenSSL checks the
 * equation (so that, say, the identity key with R = identity and S = 0 verifies any message there). A
 * signature libsodium refuses for one of those reasons is decided by OpenSSL, so that a node on either
 * backend accepts exactly the same set; none of them occurs in signatures made by honest keys.
 */
function decidedByOpenSsl(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return refusedPoint(publicKey) || refusedPoint(signature.subarray(0, 32)) || nonCanonicalScalar(signature.subarray(32));
}

function sodiumBackend(sodium: SodiumNative): Ed25519Backend {
  return {
    name: 'libsodium',
    verify(publicKey, message, signature) {
      if (sodium.crypto_sign_verify_detached(signature, message, publicKey)) return true;
      return decidedByOpenSsl(publicKey, signature) && nodeCryptoBackend.verify(publicKey, message, signature);
    },
    signer(secretKey) {
      if (secretKey.length !== 32) throw new TypeError('Ed25519 secret key must be 32 bytes');
      const sk = new Uint8Array(64);
      sodium.crypto_sign_seed_keypair(new Uint8Array(32), sk, secretKey);
      return (message) => {
        const sig = new Uint8Array(64);
        sodium.crypto_sign_detached(sig, message, sk);
        return sig;
      };
    },
  };
}

/** Why libsodium is not in use, when it is not (for the log line at node start). */
export let libsodiumUnavailable: string | undefined;

function loadLibsodium(): Ed25519Backend | undefined {
  try {
    // Through CJS resolution: an optional native package, absent on some installs.
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumNative;
    if (typeof sodium.crypto_sign_verify_detached !== 'function') throw new Error('sodium-native lacks crypto_sign_verify_detached');
    return sodiumBackend(sodium);
  } catch (err) {
    libsodiumUnavailable = (err as Error).message.split('\n')[0];
    return undefined;
  }
}

/** Every backend that loads on this machine, fastest first. */
export const availableBackends: readonly Ed25519Backend[] = [loadLibsodium(), nodeCryptoBackend].filter((b): b is Ed25519Backend => b !== undefined);

function choose(): Ed25519Backend {
  const wanted = process.env.MEDLEDGER_ED25519;
  if (wanted) {
    const found = availableBackends.find((b) => b.name === wanted);
    if (found) return found;
    if (wanted !== 'libsodium') throw new Error(`MEDLEDGER_ED25519=${wanted}: not one of libsodium, node:crypto`);
  }
  return availableBackends[0]!;
}

/** The backend in use in this thread (every thread of a process chooses the same). */
export const activeBackend: Ed25519Backend = choose();
