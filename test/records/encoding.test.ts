import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decode, encode, rfc8949EncodeOptions } from 'cborg';
import { toHex } from '../../src/records/crypto/bytes.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';

// The direct encoder (encoding.ts) must give exactly cborg's RFC 8949 bytes for every value, whether it
// encodes the value itself or falls back to cborg: compare both on arbitrary values.
const CBORG = { ...rfc8949EncodeOptions, ignoreUndefinedProperties: true };
const reference = (v: unknown): string => toHex(encode(v, CBORG));

const key = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('a', 'b', 'aa', 'sig', 'tx', '0', '10'));
const leaf = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.maxSafeNat(),
  fc.constantFrom(0, -0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -24, -25, -(2 ** 32), -(2 ** 32) - 1, 2 ** 53, 1.5, NaN, Infinity),
  fc.double(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc.string({ minLength: 20, maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, leaf, tie('arr'), tie('obj')),
  arr: fc.array(tie('any'), { maxLength: 30 }),
  obj: fc.dictionary(key, fc.oneof(tie('any'), fc.constant(undefined)), { maxKeys: 30 }),
})).any;

describe('canonical encoder = cborg RFC 8949 encoding', () => {
  it('gives the same bytes on arbitrary values', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(toHex(encodeCanonical(v))).toBe(reference(v));
      }),
      { numRuns: 3000 },
    );
  });

  it('gives the same bytes on the edge cases of heads, keys and strings', () => {
    const cases: unknown[] = [
      [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, -1, -24, -25, -0],
      { b: 1, a: 2, aa: 3, B: 4, '': 5, ['x'.repeat(24)]: 6, ['x'.repeat(23)]: 7, é: 8, '\u{1F600}': 9 },
      { undef: undefined },
      [new Uint8Array(0), new Uint8Array(24), new Uint8Array(70000)],
      ['', 'x'.repeat(23), 'x'.repeat(24), 'é'.repeat(200), '\u{1F600}', 'a\uD800b', '\uDC00'],
      Buffer.from([1, 2, 3]),
      Object.assign(Object.create(null) as object, { z: 1, a: [] }),
      new Map([['a', 1]]),
      [1.5, 2 ** 53, NaN, -Infinity, 10n],
      { deep: JSON.parse('['.repeat(150) + ']'.repeat(150)) as unknown },
    ];
    for (const v of cases) expect(toHex(encodeCanonical(v))).toBe(reference(v));
  });

  it('gives independent results (the shared buffer is copied out)', () => {
    const one = encodeCanonical({ a: new Uint8Array(100).fill(1) });
    const two = encodeCanonical({ a: new Uint8Array(100).fill(2) });
    expect(one[5]).toBe(1);
    expect(two[5]).toBe(2);
    // Larger than the initial buffer, then small again.
    expect(encodeCanonical(new Uint8Array(200_000)).length).toBe(200_005);
    expect(toHex(encodeCanonical([1]))).toBe('8101');
  });

  it('refuses what cborg refuses (a cycle)', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => encodeCanonical(cyclic)).toThrow();
  });
});

describe('decodeCanonical: the canonical check agrees with decode + cborg re-encode', () => {
  const referenceAccepts = (bytes: Uint8Array): boolean => {
    try {
      const v = decode(bytes, {
        strict: true,
        rejectDuplicateMapKeys: true,
        allowUndefined: false,
        allowIndefinite: false,
        allowInfinity: false,
        allowNaN: false,
        useMaps: false,
      });
      return toHex(encode(v, CBORG)) === toHex(bytes);
    } catch {
      return false;
    }
  };
  const accepts = (bytes: Uint8Array): boolean => {
    try {
      decodeCanonical(bytes);
      return true;
    } catch {
      return false;
    }
  };

  it('on canonical encodings and on their byte-level mutations', () => {
    fc.assert(
      fc.property(value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), (v, flips) => {
        const bytes = encode(v, CBORG);
        for (const [at, b] of flips) if (bytes.length > 0) bytes[at % bytes.length] = b;
        // Values nested deeper than MAX_CBOR_NESTING are refused by decodeCanonical alone; the generator stays shallower.
        expect(accepts(bytes)).toBe(referenceAccepts(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a trailing byte and a truncated encoding', () => {
    const good = encodeCanonical({ a: 1, b: 'x' });
    expect(accepts(good)).toBe(true);
    expect(accepts(Uint8Array.from([...good, 0]))).toBe(false);
    expect(accepts(good.subarray(0, good.length - 1))).toBe(false);
  });
});
