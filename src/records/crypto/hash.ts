import { hash } from 'node:crypto';

export type Hash32 = Uint8Array;

/** Parts of a multi-part message are copied here rather than into a fresh array per call (Merkle leaves and nodes). */
let joined = new Uint8Array(16 * 1024);

/**
 * SHA-256 through node:crypto's one-shot hash: about twice as fast as a Hash object per call, and several
 * transactions' worth of hashes (id, Merkle leaves, event leaves) are computed per event.
 */
export function sha256(...parts: Uint8Array[]): Hash32 {
  let data: Uint8Array;
  if (parts.length === 1) data = parts[0]!;
  else {
    let length = 0;
    for (const p of parts) length += p.length;
    if (length > joined.length) joined = new Uint8Array(Math.max(length, joined.length * 2));
    let offset = 0;
    for (const p of parts) {
      joined.set(p, offset);
      offset += p.length;
    }
    // hash() is synchronous and done with the input when it returns, so the buffer is free again.
    data = joined.subarray(0, length);
  }
  const digest = hash('sha256', data, 'buffer') as unknown as Buffer;
  // A plain Uint8Array over the digest's own 32-byte memory (not a pooled slab: checked below), not a copy.
  if (digest.byteOffset === 0 && digest.buffer.byteLength === 32) return new Uint8Array(digest.buffer, 0, 32);
  return new Uint8Array(digest);
}
