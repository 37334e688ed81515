import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AEAD_NONCE_LENGTH, open, randomNonce, seal } from '../../src/records/crypto/aead.js';
import { fromHex, toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { createSigner, generateSigningKeyPair, publicKeyFromSecret, verifySignature } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { isMedLedgerError, type ErrorCode } from '../../src/records/errors.js';

/** Known-answer tests of the primitives every signature, id and ciphertext of MedLedger rests on. */

const rfc8032 = JSON.parse(readFileSync(new URL('../fixtures/ed25519.json', import.meta.url), 'utf8')) as {
  secretKeyHex: string;
  publicKeyHex: string;
  messageHex: string;
  signatureHex: string;
};

/** RFC 8032 §7.1 TEST 2 (one-byte message 0x72): a second vector, with a message that has bits to flip. */
const RFC8032_TEST2 = {
  secretKeyHex: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
  publicKeyHex: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
  messageHex: '72',
  signatureHex: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
};

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected a MedLedgerError ${code}`).toBeDefined();
  expect(isMedLedgerError(thrown), `expected a MedLedgerError, got ${String(thrown)}`).toBe(true);
  if (isMedLedgerError(thrown)) {
    expect(thrown.code).toBe(code);
    if (message) expect(thrown.message).toMatch(message);
  }
}

describe('Ed25519 (signature.ts) against RFC 8032', () => {
  for (const [name, v] of [
    ['TEST 1 (fixture, empty message)', rfc8032],
    ['TEST 2 (message 0x72)', RFC8032_TEST2],
  ] as const) {
    describe(name, () => {
      const secret = fromHex(v.secretKeyHex);
      const publicKey = fromHex(v.publicKeyHex);
      const message = fromHex(v.messageHex);
      const signature = fromHex(v.signatureHex);

      it('publicKeyFromSecret gives the published public key', () => {
        expect(toHex(publicKeyFromSecret(secret))).toBe(v.publicKeyHex);
      });

      it('createSigner produces exactly the published signature, and exposes the public key', () => {
        const signer = createSigner(secret);
        expect(toHex(signer.publicKey)).toBe(v.publicKeyHex);
        expect(toHex(signer.sign(message))).toBe(v.signatureHex);
        // Ed25519 is deterministic: signing again gives the same bytes.
        expect(toHex(signer.sign(message))).toBe(v.signatureHex);
      });

      it('verifySignature accepts the published signature', () => {
        expect(verifySignature(publicKey, message, signature)).toBe(true);
      });

      it('rejects every single flipped bit of the signature', () => {
        for (let bit = 0; bit < signature.length * 8; bit++) {
          expect(verifySignature(publicKey, message, flipBit(signature, bit)), `signature bit ${bit}`).toBe(false);
        }
      });

      it('rejects every single flipped bit of the public key', () => {
        for (let bit = 0; bit < publicKey.length * 8; bit++) {
          expect(verifySignature(flipBit(publicKey, bit), message, signature), `key bit ${bit}`).toBe(false);
        }
      });

      it('rejects another message: every flipped bit, an appended byte', () => {
        for (let bit = 0; bit < message.length * 8; bit++) {
          expect(verifySignature(publicKey, flipBit(message, bit), signature), `message bit ${bit}`).toBe(false);
        }
        expect(verifySignature(publicKey, Uint8Array.from([...message, 0]), signature)).toBe(false);
      });

      it('returns false (never throws) for keys and signatures of the wrong length', () => {
        expect(verifySignature(publicKey.subarray(0, 31), message, signature)).toBe(false);
        expect(verifySignature(Uint8Array.from([...publicKey, 0]), message, signature)).toBe(false);
        expect(verifySignature(publicKey, message, signature.subarray(0, 63))).toBe(false);
        expect(verifySignature(publicKey, message, Uint8Array.from([...signature, 0]))).toBe(false);
        expect(verifySignature(new Uint8Array(0), message, new Uint8Array(0))).toBe(false);
      });
    });
  }

  it('the wrong key for a valid signature is rejected', () => {
    const other = fromHex(RFC8032_TEST2.publicKeyHex);
    expect(verifySignature(other, fromHex(rfc8032.messageHex), fromHex(rfc8032.signatureHex))).toBe(false);
  });

  it('secret keys of the wrong length are refused', () => {
    expect(() => createSigner(new Uint8Array(31))).toThrow(/32 bytes/);
    expect(() => createSigner(new Uint8Array(64))).toThrow(/32 bytes/);
    expect(() => publicKeyFromSecret(new Uint8Array(33))).toThrow(/32 bytes/);
  });

  it('generated key pairs are consistent and distinct', () => {
    const a = generateSigningKeyPair();
    const b = generateSigningKeyPair();
    expect(a.secretKey).toHaveLength(32);
    expect(a.publicKey).toHaveLength(32);
    expect(toHex(publicKeyFromSecret(a.secretKey))).toBe(toHex(a.publicKey));
    expect(toHex(a.secretKey)).not.toBe(toHex(b.secretKey));
    const msg = utf8('medledger');
    const sig = createSigner(a.secretKey).sign(msg);
    expect(verifySignature(a.publicKey, msg, sig)).toBe(true);
    expect(verifySignature(b.publicKey, msg, sig)).toBe(false);
  });
});

describe('SHA-256 (hash.ts) against FIPS 180-2 vectors', () => {
  it('of the empty string', () => {
    expect(toHex(sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(toHex(sha256())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('of "abc"', () => {
    expect(toHex(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('of the 448-bit message "abcdbcde…nopq"', () => {
    expect(toHex(sha256(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('hashes its parts as one concatenated message', () => {
    expect(toHex(sha256(utf8('a'), new Uint8Array(0), utf8('bc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('returns a 32-byte array of its own (not a view into a shared pool)', () => {
    const h = sha256(utf8('abc'));
    expect(h).toBeInstanceOf(Uint8Array);
    expect(h.length).toBe(32);
    expect(h.byteOffset).toBe(0);
    expect(h.buffer.byteLength).toBe(32);
  });
});

describe('canonical CBOR (encoding.ts)', () => {
  it('encodes a small value to the known RFC 8949 bytes', () => {
    // {"a": 1, "b": [2, 3]}: map(2), text(1) "a", 1, text(1) "b", array(2) 2 3
    expect(toHex(encodeCanonical({ a: 1, b: [2, 3] }))).toBe('a26161016162820203');
    // byte strings are major type 2, negative integers major type 1, strings are UTF-8
    expect(toHex(encodeCanonical({ k: Uint8Array.from([1, 2]), n: -1, s: 'é' }))).toBe('a3616b420102616e20617362c3a9');
    // integers take their shortest form
    expect(toHex(encodeCanonical([0, 23, 24, 255, 256, 65536]))).toBe('860017181818ff1901001a00010000');
  });

  it('orders map keys by their encoded bytes (shorter first), whatever the insertion order', () => {
    const one = encodeCanonical({ aa: 1, b: 2, a: 3 });
    const two = encodeCanonical({ b: 2, a: 3, aa: 1 });
    expect(toHex(one)).toBe(toHex(two));
    // "a" (61 61) < "b" (61 62) < "aa" (62 61 61)
    expect(toHex(one)).toBe('a3616103616202626161' + '01');
  });

  it('orders nested maps too, and gives the same bytes on every call', () => {
    const value = { z: { y: 1, x: [{ q: 1, p: 2 }] }, a: 'x' };
    const first = encodeCanonical(value);
    expect(toHex(encodeCanonical(value))).toBe(toHex(first));
    expect(toHex(encodeCanonical({ a: 'x', z: { x: [{ p: 2, q: 1 }], y: 1 } }))).toBe(toHex(first));
  });

  it('omits undefined fields, so an absent and an undefined optional field encode alike', () => {
    expect(toHex(encodeCanonical({ a: 1, b: undefined }))).toBe(toHex(encodeCanonical({ a: 1 })));
    expect(toHex(encodeCanonical({ a: 1, b: undefined }))).toBe('a1616101');
  });

  it('decodes its own encoding back to the same value', () => {
    const value = { a: 1, b: [2, 3], k: Uint8Array.from([9, 8]), s: 'text', t: true, n: null };
    const decoded = decodeCanonical(encodeCanonical(value)) as typeof value;
    expect(decoded).toEqual(value);
    expect(decoded.k).toBeInstanceOf(Uint8Array);
  });

  describe('refuses non-canonical input as MALFORMED', () => {
    const cases: [string, string, RegExp][] = [
      // {"b": 2, "a": 1}: valid CBOR, keys out of order
      ['map keys out of canonical order', 'a2616202616101', /not in canonical CBOR form/],
      // 1 encoded in two bytes (0x18 0x01) instead of one
      ['a non-minimal integer', '1801', /CBOR/],
      // array of indefinite length [_ 1]
      ['an indefinite-length array', '9f01ff', /not valid CBOR/],
      // {"a": 1, "a": 2}
      ['duplicate map keys', 'a2616101616102', /not valid CBOR/],
      // trailing garbage after a complete value
      ['trailing bytes', '0100', /CBOR/],
      // a truncated map
      ['truncated input', 'a26161', /not valid CBOR/],
      // undefined (0xf7)
      ['undefined', 'f7', /not valid CBOR/],
      // a half-precision float 1.0 (f9 3c00) is fine canonically, but 1.0 as a double is not minimal
      ['a non-minimal float', 'fb3ff8000000000000', /CBOR/],
    ];
    for (const [name, hex, message] of cases) {
      it(name, () => expectCode(() => decodeCanonical(fromHex(hex), 'test value'), 'MALFORMED', message));
    }
  });

  it('names what failed to decode', () => {
    expectCode(() => decodeCanonical(fromHex('a2616202616101'), 'block'), 'MALFORMED', /^block is not in canonical CBOR form$/);
  });
});

describe('AES-256-GCM (aead.ts)', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const nonce = Uint8Array.from({ length: AEAD_NONCE_LENGTH }, (_, i) => 0xa0 + i);
  const aad = utf8('medledger/test');
  const plaintext = utf8('blood pressure 120/80');

  it('round-trips, with a 16-byte tag appended', () => {
    const sealed = seal(key, nonce, plaintext, aad);
    expect(sealed.length).toBe(plaintext.length + 16);
    expect(toHex(open(key, nonce, sealed, aad))).toBe(toHex(plaintext));
  });

  it('matches the NIST GCM test case 13 (zero key and IV, empty plaintext): tag 530f8afbc74536b9a963b4f1c4cb738b', () => {
    const sealed = seal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), new Uint8Array(0));
    expect(toHex(sealed)).toBe('530f8afbc74536b9a963b4f1c4cb738b');
  });

  it('refuses every single tampered byte of ciphertext or tag as TAMPERED', () => {
    const sealed = seal(key, nonce, plaintext, aad);
    for (let i = 0; i < sealed.length; i++) {
      const bad = Uint8Array.from(sealed);
      bad[i]! ^= 0x01;
      expectCode(() => open(key, nonce, bad, aad), 'TAMPERED', /wrong key or altered data/);
    }
  });

  it('refuses altered associated data, a wrong key or a wrong nonce', () => {
    const sealed = seal(key, nonce, plaintext, aad);
    expectCode(() => open(key, nonce, sealed, utf8('medledger/tesT')), 'TAMPERED');
    expectCode(() => open(key, nonce, sealed, new Uint8Array(0)), 'TAMPERED');
    const otherKey = Uint8Array.from(key);
    otherKey[31]! ^= 0x80;
    expectCode(() => open(otherKey, nonce, sealed, aad), 'TAMPERED');
    expectCode(() => open(key, randomNonce(), sealed, aad), 'TAMPERED');
  });

  it('refuses truncated input: a dropped byte, and anything shorter than a tag', () => {
    const sealed = seal(key, nonce, plaintext, aad);
    expectCode(() => open(key, nonce, sealed.subarray(0, sealed.length - 1), aad), 'TAMPERED');
    expectCode(() => open(key, nonce, sealed.subarray(1), aad), 'TAMPERED');
    expectCode(() => open(key, nonce, new Uint8Array(15), aad), 'TAMPERED', /too short/);
  });

  it('random nonces are 12 bytes and differ', () => {
    const a = randomNonce();
    expect(a.length).toBe(AEAD_NONCE_LENGTH);
    expect(toHex(a)).not.toBe(toHex(randomNonce()));
  });
});
