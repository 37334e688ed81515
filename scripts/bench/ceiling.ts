/**
 * The ceiling every figure is compared with: Ed25519 verifications per second on one core, with the
 * implementation the nodes use (records/crypto/signature.ts `verifySignature`, which picks the fastest
 * backend that loads), measured in the same run as the figures. Every node verifies every user-signed
 * transaction once, so on this machine a network of n nodes cannot finalise more than cores × rate ÷ n
 * events per second, and one verifier (sync, `medledger verify`) no more than cores × rate.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import * as signature from '../../src/records/crypto/signature.js';
import { createSigner, generateSigningKeyPair, verifySignature } from '../../src/records/crypto/signature.js';

export interface Ed25519Ceiling {
  /** The backend verifySignature uses in this process (signature.ts names it when it can choose). */
  implementation: string;
  cores: number;
  verifyPerSecondPerCore: number;
  microsPerVerify: number;
  /** Messages and keys of the measurement. */
  count: number;
  keys: number;
  messageBytes: number;
}

/** The backend's name, from `signatureBackend()` where signature.ts has one (several backends), else node:crypto. */
export function ed25519Implementation(): string {
  const named = (signature as unknown as { signatureBackend?: () => string }).signatureBackend;
  return typeof named === 'function' ? named() : 'node:crypto';
}

/**
 * Verifications per second on one core: `count` signatures of `messageBytes`-byte messages (the size of what
 * MedLedger signs) under `keys` keys, best of three timed rounds after a warm-up. Bounded by `count`.
 */
export function measureEd25519(opts: { count: number; keys?: number; messageBytes?: number }): Ed25519Ceiling {
  const keys = Math.max(1, Math.min(opts.keys ?? 1_000, opts.count));
  const messageBytes = opts.messageBytes ?? 100;
  const pairs = Array.from({ length: keys }, () => generateSigningKeyPair());
  const signers = pairs.map((k) => createSigner(k.secretKey));
  const items = Array.from({ length: opts.count }, (_, i) => {
    const message = new Uint8Array(randomBytes(messageBytes));
    return { key: pairs[i % keys]!.publicKey, message, sig: signers[i % keys]!.sign(message) };
  });
  const round = (): number => {
    const t0 = performance.now();
    let valid = 0;
    for (const { key, message, sig } of items) if (verifySignature(key, message, sig)) valid++;
    const ms = performance.now() - t0;
    if (valid !== items.length) throw new Error(`verifySignature refused ${items.length - valid} valid signatures`);
    return ms;
  };
  round();
  const best = Math.min(round(), round(), round());
  const rate = Math.round(opts.count / (best / 1000));
  return {
    implementation: ed25519Implementation(),
    cores: availableParallelism(),
    verifyPerSecondPerCore: rate,
    microsPerVerify: Number((1e6 / rate).toFixed(1)),
    count: opts.count,
    keys,
    messageBytes,
  };
}

/** Events per second that n nodes on this machine could finalise if they did nothing but verify signatures. */
export function networkCeiling(c: Ed25519Ceiling, nodes: number): number {
  return Math.round((c.cores * c.verifyPerSecondPerCore) / nodes);
}
