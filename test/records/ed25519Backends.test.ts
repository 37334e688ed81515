import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { availableBackends, nodeCryptoBackend, type Ed25519Backend } from '../../src/records/crypto/ed25519Backends.js';
import { fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { generateSigningKeyPair, publicKeyFromSecret, verifyWith } from '../../src/records/crypto/signature.js';

/**
 * Every Ed25519 backend (libsodium when sodium-native loads, node:crypto always) signs exactly as RFC 8032
 * says and gives node:crypto's verdict on every input: a node on either backend accepts the same blocks.
 */
const fixture = JSON.parse(readFileSync(new URL('../fixtures/ed25519.json', import.meta.url), 'utf8')) as Record<
  'secretKeyHex' | 'publicKeyHex' | 'messageHex' | 'signatureHex',
  string
>;

/** RFC 8032 §7.1 TEST 1 (the fixture), TEST 2, TEST 3 and TEST SHA(abc). */
const RFC8032 = [
  fixture,
  {
    secretKeyHex: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKeyHex: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    messageHex: '72',
    signatureHex: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    secretKeyHex: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKeyHex: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    messageHex: 'af82',
    signatureHex: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
  {
    secretKeyHex: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    publicKeyHex: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    messageHex: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    signatureHex: 'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704',
  },
];

/** The y coordinates of the small-order points and their non-canonical spellings (libsodium's list). */
const SMALL_ORDER_Y = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].flatMap((hex) => [fromHex(hex), Uint8Array.from(fromHex(hex), (b, i) => (i === 31 ? b | 0x80 : b))]);

const L = fromHex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010');

/** S + L (little-endian), which fits in 32 bytes for every S < L: the same signature, non-canonical. */
function plusL(s: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = s[i]! + L[i]! + carry;
    out[i] = v & 0xff;
    carry = v >> 8;
  }
  return out;
}

const concat = (a: Uint8Array, b: Uint8Array) => Uint8Array.from([...a, ...b]);
const flip = (bytes: Uint8Array, bit: number) => Uint8Array.from(bytes, (b, i) => (i === bit >> 3 ? b ^ (1 << (bit & 7)) : b));

describe('Ed25519 backends', () => {
  it('libsodium loads here (sodium-native installed), besides node:crypto', () => {
    expect(availableBackends.map((b) => b.name)).toContain('node:crypto');
    if (!availableBackends.some((b) => b.name === 'libsodium')) console.warn('sodium-native is not installed: only node:crypto is tested');
  });

  for (const backend of availableBackends) {
    describe(backend.name, () => {
      it('signs the RFC 8032 vectors exactly and accepts them; refuses every flipped bit', () => {
        for (const v of RFC8032) {
          const secret = fromHex(v.secretKeyHex);
          const key = fromHex(v.publicKeyHex);
          const message = fromHex(v.messageHex);
          const sig = fromHex(v.signatureHex);
          expect(toHex(publicKeyFromSecret(secret))).toBe(v.publicKeyHex);
          expect(toHex(backend.signer(secret)(message))).toBe(v.signatureHex);
          expect(verifyWith(backend, key, message, sig)).toBe(true);
          for (let bit = 0; bit < 512; bit += 7) expect(verifyWith(backend, key, message, flip(sig, bit)), `bit ${bit}`).toBe(false);
          expect(verifyWith(backend, flip(key, 3), message, sig)).toBe(false);
          if (message.length > 0) expect(verifyWith(backend, key, flip(message, 0), sig)).toBe(false);
        }
      });

      it('returns false, never throws, for malformed keys and signatures', () => {
        const v = RFC8032[1]!;
        const key = fromHex(v.publicKeyHex);
        const sig = fromHex(v.signatureHex);
        const message = fromHex(v.messageHex);
        for (const [k, s] of [
          [key.subarray(1), sig],
          [concat(key, Uint8Array.of(0)), sig],
          [key, sig.subarray(1)],
          [key, concat(sig, Uint8Array.of(0))],
          [new Uint8Array(0), new Uint8Array(0)],
          [new Uint8Array(32).fill(0xff), sig],
          [key, new Uint8Array(64).fill(0xff)],
        ] as const) {
          expect(() => verifyWith(backend, k, message, s)).not.toThrow();
          expect(verifyWith(backend, k, message, s)).toBe(false);
        }
      });
    });
  }

  /** The verdict of node:crypto, the reference every backend must match. */
  const reference = (key: Uint8Array, message: Uint8Array, sig: Uint8Array) => verifyWith(nodeCryptoBackend, key, message, sig);
  const others: Ed25519Backend[] = availableBackends.filter((b) => b !== nodeCryptoBackend);

  it.skipIf(others.length === 0)('agrees with node:crypto on random keys and messages, and on their forgeries', () => {
    for (let i = 0; i < 200; i++) {
      const { secretKey, publicKey } = generateSigningKeyPair();
      const message = randomBytes(i % 3 === 0 ? 0 : 1 + (i % 300));
      const sig = nodeCryptoBackend.signer(secretKey)(message);
      const cases: [Uint8Array, Uint8Array][] = [
        [publicKey, sig],
        [publicKey, flip(sig, i % 512)],
        [publicKey, concat(sig.subarray(0, 32), plusL(sig.subarray(32)))],
        [flip(publicKey, i % 256), sig],
        [randomBytes(32), sig],
        [publicKey, randomBytes(64)],
      ];
      for (const backend of others) {
        expect(toHex(backend.signer(secretKey)(message))).toBe(toHex(sig));
        for (const [key, s] of cases) expect(verifyWith(backend, key, message, s)).toBe(reference(key, message, s));
      }
    }
  });

  it.skipIf(others.length === 0)('agrees with node:crypto on small-order and non-canonical keys and R, where libsodium alone would refuse', () => {
    const message = Uint8Array.of(1, 2, 3);
    const honest = generateSigningKeyPair();
    const honestSig = nodeCryptoBackend.signer(honest.secretKey)(message);
    let acceptedByReference = 0;
    for (const point of SMALL_ORDER_Y) {
      // A small-order key with R = that point (or the identity) and S = 0: [S]B - [h]A = -[h]A, which OpenSSL's
      // cofactorless check accepts whenever it equals R; libsodium refuses such keys outright.
      for (const r of [point, SMALL_ORDER_Y[2]!, fromHex('01'.padEnd(64, '0'))]) {
        for (const s of [new Uint8Array(32), honestSig.subarray(32)]) {
          const sig = concat(r, s);
          const want = reference(point, message, sig);
          if (want) acceptedByReference++;
          for (const backend of others) expect(verifyWith(backend, point, message, sig), `key ${toHex(point)}`).toBe(want);
        }
      }
      // An honest key with a small-order R.
      const sig = concat(point, honestSig.subarray(32));
      for (const backend of others) expect(verifyWith(backend, honest.publicKey, message, sig)).toBe(reference(honest.publicKey, message, sig));
    }
    // The case that matters is there: node:crypto accepts some of these (so libsodium's verdict alone would differ).
    expect(acceptedByReference).toBeGreaterThan(0);
  });

  it('MEDLEDGER_ED25519 picks the backend', async () => {
    const before = process.env.MEDLEDGER_ED25519;
    try {
      for (const name of ['node:crypto', ...others.map((b) => b.name)]) {
        process.env.MEDLEDGER_ED25519 = name;
        vi.resetModules();
        const fresh = await import('../../src/records/crypto/signature.js');
        expect(fresh.signatureBackend()).toBe(name);
      }
    } finally {
      if (before === undefined) delete process.env.MEDLEDGER_ED25519;
      else process.env.MEDLEDGER_ED25519 = before;
      vi.resetModules();
    }
  });
});
