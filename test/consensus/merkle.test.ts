import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { inclusionPath, leafHash, merkleRoot, verifyInclusion } from '../../src/consensus/merkle.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/rfc6962.json', import.meta.url), 'utf8')) as {
  leavesHex: string[];
  roots: string[];
  inclusion: { treeSize: number; leafIndex: number; leafHex: string; path: string[] }[];
};
const leaves = vectors.leavesHex.map(fromHex);

describe('RFC 6962 Merkle tree', () => {
  it('matches the published roots for the empty tree, one leaf and every size up to 8', () => {
    vectors.roots.forEach((root, n) => expect(toHex(merkleRoot(leaves.slice(0, n)))).toBe(root));
  });

  it('produces and verifies every published inclusion path', () => {
    for (const v of vectors.inclusion) {
      const hashes = leaves.slice(0, v.treeSize).map(leafHash);
      expect(inclusionPath(hashes, v.leafIndex).map(toHex)).toEqual(v.path);
      const root = fromHex(vectors.roots[v.treeSize]!);
      expect(verifyInclusion(leafHash(fromHex(v.leafHex)), v.leafIndex, v.treeSize, v.path.map(fromHex), root)).toBe(true);
    }
  });

  it('rejects a path with a changed byte, a wrong index or a wrong tree size', () => {
    const v = vectors.inclusion.find((x) => x.treeSize === 7 && x.leafIndex === 3)!;
    const root = fromHex(vectors.roots[7]!);
    const leaf = leafHash(fromHex(v.leafHex));
    const path = v.path.map(fromHex);
    const bent = path.map((p) => p.slice());
    bent[1]![0]! ^= 1;
    expect(verifyInclusion(leaf, 3, 7, bent, root)).toBe(false);
    expect(verifyInclusion(leaf, 2, 7, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 3, 4, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 3, 7, path.slice(1), root)).toBe(false);
    expect(verifyInclusion(leaf, 7, 7, path, root)).toBe(false);
  });

  it('agrees with itself on larger trees: the path of every leaf of 129, and of the edges and middle of 1000', () => {
    // inclusionPath costs O(n) per leaf: every leaf of 1000 would take seconds, every leaf of 129 takes ms.
    for (const [size, at] of [
      [129, Array.from({ length: 129 }, (_, i) => i)],
      [1000, [0, 1, 511, 512, 998, 999]],
    ] as const) {
      const items = Array.from({ length: size }, (_, i) => Uint8Array.of(i & 255, i >> 8));
      const hashes = items.map(leafHash);
      const root = merkleRoot(items);
      for (const i of at) expect(verifyInclusion(hashes[i]!, i, size, inclusionPath(hashes, i), root), `leaf ${i} of ${size}`).toBe(true);
    }
  });
});
