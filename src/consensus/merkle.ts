import { sha256, type Hash32 } from '../records/crypto/hash.js';
import { bytesEqual } from '../records/crypto/bytes.js';

/**
 * RFC 6962 / RFC 9162 Merkle tree: leaf = SHA-256(0x00 ‖ d), node = SHA-256(0x01 ‖ l ‖ r), empty tree =
 * SHA-256(""). Blocks commit to their transactions and audit events this way, so one event can be proven
 * with log2(n) hashes.
 */
const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export function leafHash(data: Uint8Array): Hash32 {
  return sha256(LEAF, data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Hash32 {
  return sha256(NODE, left, right);
}

/** Root over already-hashed leaves. Pairing bottom-up and promoting an odd last node gives RFC 6962's tree. */
export function rootOfLeafHashes(leaves: Uint8Array[]): Hash32 {
  if (leaves.length === 0) return sha256();
  let level = leaves;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

export function merkleRoot(items: Uint8Array[]): Hash32 {
  return rootOfLeafHashes(items.map(leafHash));
}

/** Largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** PATH(m, D[n]) of RFC 6962 §2.1.1: the audit path of leaf `index` in a tree of the given leaf hashes. */
export function inclusionPath(leaves: Uint8Array[], index: number): Hash32[] {
  if (index < 0 || index >= leaves.length) throw new RangeError(`leaf ${index} outside a tree of ${leaves.length}`);
  const path = (lo: number, hi: number, m: number): Hash32[] => {
    const n = hi - lo;
    if (n === 1) return [];
    const k = splitPoint(n);
    return m < k
      ? [...path(lo, lo + k, m), rootOfLeafHashes(leaves.slice(lo + k, hi))]
      : [...path(lo + k, hi, m - k), rootOfLeafHashes(leaves.slice(lo, lo + k))];
  };
  return path(0, leaves.length, index);
}

/** RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its audit path. */
export function rootFromInclusionPath(leaf: Uint8Array, index: number, treeSize: number, path: Uint8Array[]): Hash32 | null {
  if (index < 0 || index >= treeSize) return null;
  let fn = index;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 ? r : null;
}

export function verifyInclusion(leaf: Uint8Array, index: number, treeSize: number, path: Uint8Array[], root: Uint8Array): boolean {
  const computed = rootFromInclusionPath(leaf, index, treeSize, path);
  return computed !== null && bytesEqual(computed, root);
}
