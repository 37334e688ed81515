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

  // The full path as it was before the one-pass reader: what decodeCanonical must return or throw, exactly.
  const referenceDecode = (bytes: Uint8Array, requireCanonical: boolean): { value: unknown } | { error: string } => {
    let v: unknown;
    try {
      v = decode(bytes, {
        strict: true,
        rejectDuplicateMapKeys: true,
        allowUndefined: false,
        allowIndefinite: false,
        allowInfinity: false,
        allowNaN: false,
        useMaps: false,
      });
    } catch (err) {
      return { error: `x is not valid CBOR: ${(err as Error).message}` };
    }
    if (depthOf(v) > 64) return { error: 'x nests arrays or maps deeper than 64 levels' };
    if (requireCanonical && toHex(encode(v, CBORG)) !== toHex(bytes)) return { error: 'x is not in canonical CBOR form' };
    return { value: v };
  };
  const depthOf = (v: unknown): number =>
    v === null || typeof v !== 'object' || v instanceof Uint8Array ? 0 : 1 + Math.max(0, ...Object.values(v as object).map(depthOf));
  const outcome = (bytes: Uint8Array, requireCanonical: boolean): { value: unknown } | { error: string } => {
    try {
      return { value: decodeCanonical(bytes, 'x', { requireCanonical }) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  const same = (bytes: Uint8Array): void => {
    for (const rc of [true, false]) expect(outcome(bytes, rc)).toEqual(referenceDecode(bytes, rc));
  };

  it('returns the same value or the same error as the full path, canonical or not', () => {
    fc.assert(
      fc.property(value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), (v, flips) => {
        const bytes = encode(v, CBORG);
        same(bytes);
        for (const [at, b] of flips) if (bytes.length > 0) bytes[at % bytes.length] = b;
        same(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees on the edge cases: integer bounds, key order, text, nesting, other types', () => {
    const hex = [
      '1bffffffffffffffff',
      '1b001fffffffffffff',
      '1b0020000000000000',
      '3b001ffffffffffffe',
      '3b001fffffffffffff',
      '3b0020000000000000',
      '1817',
      '190017',
      '1a0000ffff',
      '1b00000000ffffffff',
      '5801ff',
      '7801' + '61',
      'a2616101616102',
      'a2616201616101',
      'a2616101616101',
      'a26161016261610102',
      'a2626161016162',
      'a1015f',
      'a169__proto__'.replace('__proto__', Buffer.from('__proto__').toString('hex')) + '01',
      '63efbbbf',
      '66efbbbf616263',
      '62c3a9',
      '61ff',
      '62c328',
      '63eda080',
      '64f09f9880',
      'f4',
      'f5',
      'f6',
      'f7',
      'f93c00',
      'fb3ff8000000000000',
      'c24101',
      '9f01ff',
      'bf6161ff',
      '80',
      'a0',
      '40',
      '60',
      '8201',
      '820102ff',
      '00ff',
      '',
      '1c',
      '5b0000000100000000',
      '9b0000000100000000',
      '81'.repeat(64) + '00',
      '81'.repeat(65) + '00',
      '81'.repeat(63) + 'a0',
      '81'.repeat(64) + 'a0',
    ];
    for (const h of hex) same(Buffer.from(h, 'hex'));
  });

  it('refuses a trailing byte and a truncated encoding', () => {
    const good = encodeCanonical({ a: 1, b: 'x' });
    expect(accepts(good)).toBe(true);
    expect(accepts(Uint8Array.from([...good, 0]))).toBe(false);
    expect(accepts(good.subarray(0, good.length - 1))).toBe(false);
  });
});
