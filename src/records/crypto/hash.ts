import { hash } from 'node:crypto';
import { concatBytes } from './bytes.js';

export type Hash32 = Uint8Array;

/**
 * SHA-256 through node:crypto's one-shot hash: about twice as fast as a Hash object per call, and several
 * transactions' worth of hashes (id, Merkle leaves, event leaves) are computed per event.
 */
export function sha256(...parts: Uint8Array[]): Hash32 {
  const data = parts.length === 1 ? parts[0]! : concatBytes(...parts);
  return new Uint8Array(hash('sha256', data, 'buffer') as unknown as Buffer);
}
