import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeKeystorePassword, keystorePath, readKeystoreFile, unlockKeystore, writeKeystore } from '../../src/client/keystoreFiles.js';
import { fromBase64, toBase64, toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { createSigner, generateSigningKeyPair } from '../../src/records/crypto/signature.js';
import { isMedLedgerError, MedLedgerError, type ErrorCode } from '../../src/records/errors.js';
import type { Role } from '../../src/records/ids.js';
import {
  DEFAULT_SCRYPT,
  openKeystore,
  resealKeystore,
  SCRYPT_BOUNDS,
  sealKeystore,
  type KeystoreFile,
  type LegacyKeystoreFile,
  type ScryptParams,
  type UserKeys,
} from '../../src/records/keystore.js';
import { assertPasswordPolicy, passwordProblems } from '../../src/records/password.js';

/** Keystores (PROTOCOL.md §1.5): the user's private keys, sealed under a password with scrypt + AES-256-GCM. */

const FAST: ScryptParams = { N: 1024, r: 8, p: 1 };
const PASSWORD = 'Correct-Horse-9';

function makeKeys(userId = 'pat-1', role: Role = 'patient', hospital = 'hosp-a', withEnc = true): UserKeys {
  const sign = generateSigningKeyPair();
  const enc = generateEncryptionKeyPair();
  return {
    userId,
    role,
    hospital,
    signSecret: sign.secretKey,
    signPublic: sign.publicKey,
    ...(withEnc ? { encSecret: enc.secretKey, encPublic: enc.publicKey } : {}),
  };
}

function catchError(fn: () => unknown): MedLedgerError {
  try {
    fn();
  } catch (err) {
    if (isMedLedgerError(err)) return err;
    throw new Error(`expected a MedLedgerError, got ${String(err)}`);
  }
  throw new Error('expected a MedLedgerError, nothing was thrown');
}

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): MedLedgerError {
  const err = catchError(fn);
  expect(err.code, err.message).toBe(code);
  if (message) expect(err.message).toMatch(message);
  return err;
}

/** A keystore written by the code before issue 10 (format 1, N = 1024), with its test-only password and secrets. */
const fixture = JSON.parse(readFileSync(new URL('../fixtures/keystore-v1.json', import.meta.url), 'utf8')) as {
  password: string;
  signSecret: string;
  encSecret: string;
  file: unknown;
};

/**
 * What an attacker who knows the file format can do: recompute an unkeyed checksum after an edit. It
 * mirrors the format-1 checksum: SHA-256 over the JSON of the clear header fields, then the ciphertext.
 */
function forgeChecksum(f: LegacyKeystoreFile): LegacyKeystoreFile {
  const ad = utf8(JSON.stringify([f.format, f.userId, f.role, f.hospital, f.signPublic, f.encPublic ?? '', f.kdf, f.cipher]));
  return { ...f, checksum: toHex(sha256(ad, utf8(f.ciphertext))) };
}

/**
 * The strongest forgery without the user's secret key: sign the edited file with a key of one's own,
 * put in as the file's signing key (mirrors keystore.ts: tag, then SHA-256 of the header and ciphertext).
 */
function forgeSignature(f: KeystoreFile): KeystoreFile {
  const forger = createSigner(generateSigningKeyPair().secretKey);
  const g = { ...f, signPublic: toBase64(forger.publicKey) };
  const ad = utf8(
    JSON.stringify([
      g.format,
      g.userId,
      g.role,
      g.hospital,
      g.signPublic,
      g.encPublic ?? '',
      [g.kdf.name, g.kdf.N, g.kdf.r, g.kdf.p, g.kdf.salt],
      [g.cipher.name, g.cipher.nonce],
      g.keyCheck,
    ]),
  );
  const message = new Uint8Array([...utf8('medledger/keystore/v2\0'), ...sha256(ad, utf8('\0'), utf8(g.ciphertext))]);
  return { ...g, signature: toBase64(forger.sign(message)) };
}

function flipBase64Byte(b64: string, index: number): string {
  const bytes = fromBase64(b64);
  bytes[index]! ^= 0x01;
  return toBase64(bytes);
}

function expectSameKeys(actual: UserKeys, expected: UserKeys): void {
  expect(actual.userId).toBe(expected.userId);
  expect(actual.role).toBe(expected.role);
  expect(actual.hospital).toBe(expected.hospital);
  expect(toHex(actual.signSecret)).toBe(toHex(expected.signSecret));
  expect(toHex(actual.signPublic)).toBe(toHex(expected.signPublic));
  expect(actual.encSecret && toHex(actual.encSecret)).toBe(expected.encSecret && toHex(expected.encSecret));
  expect(actual.encPublic && toHex(actual.encPublic)).toBe(expected.encPublic && toHex(expected.encPublic));
}

describe('sealKeystore / openKeystore', () => {
  const keys = makeKeys();
  const file = sealKeystore(keys, PASSWORD, FAST);

  it('round-trips a patient’s signing and encryption keys', () => {
    expectSameKeys(openKeystore(file, PASSWORD), keys);
  });

  it('round-trips through JSON text, as the file is stored', () => {
    expectSameKeys(openKeystore(JSON.parse(JSON.stringify(file)), PASSWORD), keys);
  });

  it('round-trips an admin’s keys, which have no encryption key', () => {
    const admin = makeKeys('admin-a', 'admin', 'hosp-a', false);
    const opened = openKeystore(sealKeystore(admin, PASSWORD, FAST), PASSWORD);
    expectSameKeys(opened, admin);
    expect(opened.encSecret).toBeUndefined();
    expect('encPublic' in opened).toBe(false);
  });

  it('stores the scrypt parameters and a fresh salt and nonce in the file', () => {
    expect(file.format).toBe('medledger-keystore/2');
    expect(file.kdf).toMatchObject({ name: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(fromBase64(file.kdf.salt)).toHaveLength(16);
    expect(fromBase64(file.cipher.nonce)).toHaveLength(12);
    const again = sealKeystore(keys, PASSWORD, FAST);
    expect(again.kdf.salt).not.toBe(file.kdf.salt);
    expect(again.cipher.nonce).not.toBe(file.cipher.nonce);
    expect(again.ciphertext).not.toBe(file.ciphertext);
  });

  it('uses DEFAULT_SCRYPT, the hardened N = 2^17, r = 8, p = 1 (128 MiB), when no parameters are given, and still round-trips', () => {
    expect(DEFAULT_SCRYPT).toEqual({ N: 2 ** 17, r: 8, p: 1 });
    const slow = sealKeystore(keys, PASSWORD);
    expect(slow.kdf).toMatchObject({ name: 'scrypt', N: 2 ** 17, r: 8, p: 1 });
    expectSameKeys(openKeystore(slow, PASSWORD), keys);
    expectCode(() => openKeystore(slow, 'Wrong-Horse-9x'), 'WRONG_PASSWORD');
  });

  it('a wrong password is WRONG_PASSWORD with a clear message that does not echo the password', () => {
    for (const wrong of ['Correct-Horse-8', 'correct-horse-9', '', PASSWORD + ' ']) {
      const err = expectCode(() => openKeystore(file, wrong), 'WRONG_PASSWORD', /^wrong password for pat-1$/);
      if (wrong) expect(err.message).not.toContain(wrong);
    }
  });

  it('passwords are NFKC-normalized: a composed and a decomposed "é" unlock the same keystore', () => {
    const composed = 'Caf\u00e9-Strong-9x';
    const decomposed = 'Cafe\u0301-Strong-9x';
    expect(composed).not.toBe(decomposed);
    const sealed = sealKeystore(keys, composed, FAST);
    expectSameKeys(openKeystore(sealed, decomposed), keys);
  });

  it('refuses to seal under a weak password (WEAK_PASSWORD)', () => {
    expectCode(() => sealKeystore(keys, 'short', FAST), 'WEAK_PASSWORD', /shorter than 12 characters/);
    expectCode(() => sealKeystore(keys, 'Password123!', FAST), 'WEAK_PASSWORD', /too easy to guess/);
  });

  describe('any edit of the header or the ciphertext is TAMPERED, before any KDF work (the signature by the user’s key)', () => {
    const cases: [string, (f: KeystoreFile) => KeystoreFile][] = [
      ['one ciphertext byte', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, 3) })],
      ['the last ciphertext byte (the tag)', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, fromBase64(f.ciphertext).length - 1) })],
      ['a truncated ciphertext', (f) => ({ ...f, ciphertext: toBase64(fromBase64(f.ciphertext).subarray(0, 20)) })],
      ['the userId', (f) => ({ ...f, userId: 'pat-2' })],
      ['the role (patient → admin)', (f) => ({ ...f, role: 'admin' })],
      ['the hospital', (f) => ({ ...f, hospital: 'hosp-b' })],
      ['the signing public key', (f) => ({ ...f, signPublic: toBase64(generateSigningKeyPair().publicKey) })],
      ['the encryption public key', (f) => ({ ...f, encPublic: toBase64(generateEncryptionKeyPair().publicKey) })],
      [
        'the encryption public key removed',
        (f) => {
          const { encPublic: _drop, ...rest } = f;
          return rest as KeystoreFile;
        },
      ],
      ['the kdf N (a downgrade)', (f) => ({ ...f, kdf: { ...f.kdf, N: 2048 } })],
      ['the kdf r', (f) => ({ ...f, kdf: { ...f.kdf, r: 4 } })],
      ['the kdf salt', (f) => ({ ...f, kdf: { ...f.kdf, salt: flipBase64Byte(f.kdf.salt, 0) } })],
      ['the cipher nonce', (f) => ({ ...f, cipher: { ...f.cipher, nonce: flipBase64Byte(f.cipher.nonce, 0) } })],
      ['the key check', (f) => ({ ...f, keyCheck: flipBase64Byte(f.keyCheck, 0) })],
      ['the signature itself', (f) => ({ ...f, signature: flipBase64Byte(f.signature, 5) })],
    ];
    for (const [what, edit] of cases) {
      it(what, () => {
        // Even the right password does not open it, a wrong one neither, and the error names the alteration.
        for (const pw of [PASSWORD, 'Wrong-Horse-9x'])
          expectCode(() => openKeystore(edit(file), pw), 'TAMPERED', /^keystore file of pat-[12] was altered \(its signature does not verify\)$/);
      });
    }
  });

  describe('a forgery re-signed with the forger’s own key: the right password proves it TAMPERED (the key check matches, AES-GCM does not)', () => {
    const cases: [string, (f: KeystoreFile) => KeystoreFile][] = [
      ['one ciphertext byte', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, 3) })],
      ['the userId (associated data)', (f) => ({ ...f, userId: 'pat-2' })],
      ['the role (patient → admin)', (f) => ({ ...f, role: 'admin' })],
      ['the hospital', (f) => ({ ...f, hospital: 'hosp-b' })],
      ['the encryption public key', (f) => ({ ...f, encPublic: toBase64(generateEncryptionKeyPair().publicKey) })],
      ['the cipher nonce', (f) => ({ ...f, cipher: { ...f.cipher, nonce: flipBase64Byte(f.cipher.nonce, 0) } })],
      ['only the signing key replaced', (f) => f],
    ];
    for (const [what, edit] of cases) {
      it(what, () => {
        expectCode(
          () => openKeystore(forgeSignature(edit(file)), PASSWORD),
          'TAMPERED',
          /^keystore file of pat-[12] was altered \(authentication failed with the right password\)$/,
        );
        expectCode(() => openKeystore(forgeSignature(edit(file)), 'Wrong-Horse-9x'), 'WRONG_PASSWORD', /^wrong password for pat-[12]$/);
      });
    }
    it('a forged salt or KDF cost with a key of the forger’s own is a different keystore: WRONG_PASSWORD here (login then finds the file’s key differs from the ledger’s)', () => {
      expectCode(() => openKeystore(forgeSignature({ ...file, kdf: { ...file.kdf, salt: flipBase64Byte(file.kdf.salt, 0) } }), PASSWORD), 'WRONG_PASSWORD');
    });
  });

  describe('a crafted file asking for a huge KDF cost is refused at once (TAMPERED), before any derivation', () => {
    const bombs: [string, Partial<ScryptParams>][] = [
      ['N = 2^30', { N: 2 ** 30 }],
      ['r = 2^20', { r: 2 ** 20 }],
      ['N = 2^20, r = 32, p = 16 (4 GiB, which the old bounds allowed)', { N: 2 ** 20, r: 32, p: 16 }],
      ['N = 2^18, r = 16 (512 MiB)', { N: 2 ** 18, r: 16 }],
      ['p = 2', { p: 2 }],
      ['N = 1025 (not a power of two)', { N: 1025 }],
      ['N = 512 (below the minimum)', { N: 512 }],
    ];
    for (const [what, params] of bombs) {
      it(what, () => {
        const crafted = { ...file, kdf: { ...file.kdf, ...params } };
        const rss = process.memoryUsage().rss;
        const started = performance.now();
        expectCode(() => openKeystore(crafted, PASSWORD), 'TAMPERED', /^keystore file of pat-1 asks for KDF parameters out of bounds: /);
        expect(performance.now() - started).toBeLessThan(100);
        expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 2 ** 20);
        // the same for an old-format file
        const legacy = { ...(fixture.file as LegacyKeystoreFile), kdf: { ...(fixture.file as LegacyKeystoreFile).kdf, ...params } };
        expectCode(() => openKeystore(forgeChecksum(legacy), fixture.password), 'TAMPERED', /out of bounds/);
      });
    }
    it('the bounds: N from 2^10 to 2^18, r ≤ 16, p = 1, at most 256 MiB', () => {
      expect(SCRYPT_BOUNDS).toEqual({ minLog2N: 10, maxLog2N: 18, maxR: 16, maxP: 1, maxMemoryBytes: 256 * 2 ** 20 });
      expectCode(() => sealKeystore(keys, PASSWORD, { N: 2 ** 30, r: 8, p: 1 }), 'TAMPERED', /out of bounds/);
    });
  });

  describe('old keystore files (format 1, written before issue 10) still open', () => {
    const legacy = fixture.file as LegacyKeystoreFile;
    it('with the right password, giving the same keys', () => {
      const opened = openKeystore(legacy, fixture.password);
      expect(toBase64(opened.signSecret)).toBe(fixture.signSecret);
      expect(toBase64(opened.encSecret!)).toBe(fixture.encSecret);
    });
    it('a wrong password is WRONG_PASSWORD; an edit without the checksum is TAMPERED', () => {
      expectCode(() => openKeystore(legacy, 'Wrong-Horse-9x'), 'WRONG_PASSWORD');
      expectCode(() => openKeystore({ ...legacy, role: 'admin' }, fixture.password), 'TAMPERED', /checksum mismatch/);
    });
    it('a password change rewrites it in format 2 under the current parameters', () => {
      const { keys: opened, file: resealed } = resealKeystore(legacy, fixture.password, 'Quartz-Lantern-Ferry-31', FAST);
      expect(resealed.format).toBe('medledger-keystore/2');
      expectSameKeys(openKeystore(resealed, 'Quartz-Lantern-Ferry-31'), opened);
      expectCode(() => openKeystore(resealed, fixture.password), 'WRONG_PASSWORD');
    });
  });

  describe('a file that is not a keystore at all is TAMPERED (malformed), never a crash', () => {
    const cases: [string, () => unknown][] = [
      [
        'missing ciphertext',
        () => {
          const { ciphertext: _drop, ...rest } = file;
          return rest;
        },
      ],
      [
        'missing signature',
        () => {
          const { signature: _drop, ...rest } = file;
          return rest;
        },
      ],
      [
        'missing key check',
        () => {
          const { keyCheck: _drop, ...rest } = file;
          return rest;
        },
      ],
      [
        'missing kdf',
        () => {
          const { kdf: _drop, ...rest } = file;
          return rest;
        },
      ],
      ['missing kdf salt', () => ({ ...file, kdf: { name: 'scrypt', N: 1024, r: 8, p: 1 } })],
      ['an extra field', () => ({ ...file, note: 'hello' })],
      ['an unknown format version', () => ({ ...file, format: 'medledger-keystore/3' })],
      ['format 1 with format-2 fields', () => ({ ...file, format: 'medledger-keystore/1' })],
      ['another KDF name', () => ({ ...file, kdf: { ...file.kdf, name: 'pbkdf2' } })],
      ['a KDF cost that is not a number', () => ({ ...file, kdf: { ...file.kdf, N: '1024' } })],
      ['a role that does not exist', () => ({ ...file, role: 'superuser' })],
      ['ciphertext that is not base64', () => ({ ...file, ciphertext: '!!!' })],
      ['null', () => null],
      ['a string', () => 'keystore'],
      ['an array', () => [file]],
    ];
    for (const [what, make] of cases) {
      it(what, () => expectCode(() => openKeystore(make(), PASSWORD), 'TAMPERED', /^keystore file is malformed: /));
    }
  });
});

describe('password policy (length, user id, and the zxcvbn strength estimator: score ≥ 3)', () => {
  it('accepts strong passwords', () => {
    for (const pw of ['Correct-Horse-9', 'Correct-Horse-42!', 'correct horse battery staple', 'Quartz-Lantern-Ferry-31', 'Tr0ub4dor&3xx']) {
      expect(passwordProblems(pw, 'pat-1'), pw).toEqual([]);
      expect(() => assertPasswordPolicy(pw, 'pat-1')).not.toThrow();
    }
  });

  const weak: [string, string, RegExp][] = [
    ['too short', 'Abcdefgh1!x', /shorter than 12 characters/],
    ['empty', '', /shorter than 12 characters/],
    ['Password123! (four classes, but a common password)', 'Password123!', /too easy to guess \(strength [0-2]\/4, needs 3\): .*commonly used password/],
    ['a keyboard walk', 'Qwertyuiop123!', /too easy to guess/],
    ['a common password with a year', 'iloveyou2024!', /too easy to guess/],
    ['a repeated pattern', 'Aa1!Aa1!Aa1!', /too easy to guess/],
    ['lowercase word only', 'correcthorses', /too easy to guess/],
    ['digits only', '123456789012345', /too easy to guess/],
    ['contains the user id', 'xPat-1-Strong-Pass9', /contains the user id/],
    ['longer than 256 characters', `Aa1!${'x'.repeat(253)}`, /longer than 256 characters/],
  ];
  for (const [what, pw, message] of weak) {
    it(`rejects a password that is ${what}, saying why without echoing it (WEAK_PASSWORD)`, () => {
      expect(passwordProblems(pw, 'pat-1').length).toBeGreaterThan(0);
      const err = expectCode(() => assertPasswordPolicy(pw, 'pat-1'), 'WEAK_PASSWORD', new RegExp(`^password does not meet the policy: .*${message.source}`));
      if (pw.length > 3) expect(err.message).not.toContain(pw);
    });
  }

  it('lists every problem at once', () => {
    expect(passwordProblems('pat1', 'pat1')).toEqual(['shorter than 12 characters', 'contains the user id', expect.stringMatching(/^too easy to guess/)]);
  });

  it('the length limits are exact: 12 and 256 characters pass, 11 and 257 do not', () => {
    expect(passwordProblems('Vq7-mZ2k!pLw', 'pat-1')).toEqual([]);
    expect(passwordProblems('Vq7-mZ2k!pL', 'pat-1')).toEqual(['shorter than 12 characters']);
    const long = 'Quartz-Lantern-Ferry-31 '.repeat(10);
    expect(passwordProblems(`${long}${'Z'.repeat(256 - long.length)}`, 'pat-1')).toEqual([]);
    expect(passwordProblems(`${long}${'Z'.repeat(257 - long.length)}`, 'pat-1')).toEqual(['longer than 256 characters']);
  });
});

describe('keystore files on disk', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'medledger-keystore-test-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writeKeystore writes <userId>.keystore.json with mode 0600 in a 0700 directory, and unlockKeystore opens it', () => {
    const keys = makeKeys('pat-1');
    const sub = join(dir, 'fresh');
    const path = writeKeystore(sub, keys, PASSWORD, FAST);
    expect(path).toBe(join(sub, 'pat-1.keystore.json'));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(sub).mode & 0o777).toBe(0o700);
    expect(readdirSync(sub)).toEqual(['pat-1.keystore.json']); // no temporary file left behind
    expectSameKeys(unlockKeystore(sub, 'pat-1', PASSWORD), keys);
    expectCode(() => unlockKeystore(sub, 'pat-1', 'Wrong-Horse-9'), 'WRONG_PASSWORD', /^wrong password for pat-1$/);
  });

  it('refuses to overwrite an existing keystore (USER_EXISTS) and leaves it intact', () => {
    const first = makeKeys('doc-1', 'doctor');
    const path = writeKeystore(dir, first, PASSWORD, FAST);
    const before = readFileSync(path, 'utf8');
    expectCode(() => writeKeystore(dir, makeKeys('doc-1', 'doctor'), 'Other-Horse-77', FAST), 'USER_EXISTS', /already exists/);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expectSameKeys(unlockKeystore(dir, 'doc-1', PASSWORD), first);
  });

  it('writes nothing under a weak password', () => {
    expectCode(() => writeKeystore(dir, makeKeys('pat-weak'), 'weak', FAST), 'WEAK_PASSWORD');
    expect(existsSync(join(dir, 'pat-weak.keystore.json'))).toBe(false);
  });

  it('the secret key bytes never appear in the file, in raw, hex or base64 form', () => {
    const keys = makeKeys('pat-secret');
    const path = writeKeystore(dir, keys, PASSWORD, FAST);
    const raw = readFileSync(path);
    const text = raw.toString('utf8');
    for (const secret of [keys.signSecret, keys.encSecret!]) {
      expect(raw.indexOf(Buffer.from(secret))).toBe(-1);
      expect(text).not.toContain(toHex(secret));
      expect(text).not.toContain(toBase64(secret));
      expect(text).not.toContain(Buffer.from(secret).toString('base64url'));
      // any 8-byte window of the secret, in base64 at each alignment
      for (let i = 0; i + 9 <= secret.length; i += 3) expect(text).not.toContain(toBase64(secret.subarray(i, i + 9)));
    }
    expect(text).not.toContain(PASSWORD);
    // the public keys are there, in clear, as the header
    expect(text).toContain(toBase64(keys.signPublic));
  });

  it('a truncated file is TAMPERED (not valid JSON), never a crash', () => {
    const path = writeKeystore(dir, makeKeys('pat-trunc'), PASSWORD, FAST);
    const text = readFileSync(path, 'utf8');
    writeFileSync(path, text.slice(0, text.length / 2));
    expectCode(() => unlockKeystore(dir, 'pat-trunc', PASSWORD), 'TAMPERED', /^keystore of pat-trunc is not valid JSON$/);
    writeFileSync(path, '');
    expectCode(() => unlockKeystore(dir, 'pat-trunc', PASSWORD), 'TAMPERED', /not valid JSON/);
  });

  it('an edited file on disk is TAMPERED', () => {
    const path = writeKeystore(dir, makeKeys('pat-edit'), PASSWORD, FAST);
    const file = JSON.parse(readFileSync(path, 'utf8')) as KeystoreFile;
    writeFileSync(path, JSON.stringify({ ...file, role: 'admin' }));
    expectCode(() => unlockKeystore(dir, 'pat-edit', PASSWORD), 'TAMPERED', /signature does not verify/);
    writeFileSync(path, JSON.stringify({ ...file, ciphertext: undefined }));
    expectCode(() => unlockKeystore(dir, 'pat-edit', PASSWORD), 'TAMPERED', /malformed/);
  });

  it('another user’s keystore copied under this user’s name does not unlock as this user (TAMPERED)', () => {
    const other = makeKeys('pat-other');
    writeKeystore(dir, other, PASSWORD, FAST);
    copyFileSync(keystorePath(dir, 'pat-other'), keystorePath(dir, 'pat-victim'));
    expect((readKeystoreFile(dir, 'pat-victim') as KeystoreFile).userId).toBe('pat-other');
    expectCode(() => unlockKeystore(dir, 'pat-victim', PASSWORD), 'TAMPERED', /^keystore file of pat-victim holds the keys of pat-other$/);
    expectCode(() => unlockKeystore(dir, 'pat-victim', 'Wrong-Horse-9'), 'TAMPERED', /holds the keys of pat-other/);
    expectSameKeys(unlockKeystore(dir, 'pat-other', PASSWORD), other);
  });

  it('an unknown user is NOT_FOUND; an id that is not a user id (path traversal) is MALFORMED', () => {
    expectCode(() => unlockKeystore(dir, 'nobody', PASSWORD), 'NOT_FOUND', /unknown user nobody/);
    expectCode(() => unlockKeystore(dir, '../etc/passwd', PASSWORD), 'MALFORMED', /invalid user id/);
    expectCode(() => keystorePath(dir, 'Pat-1'), 'MALFORMED');
    expectCode(() => writeKeystore(dir, makeKeys('../escape'), PASSWORD, FAST), 'MALFORMED');
  });

  it('changeKeystorePassword re-seals under the new password atomically (mode 0600, no temporary file): the new one opens, the old one no longer does', () => {
    const keys = makeKeys('pat-passwd');
    const sub = join(dir, 'passwd');
    const path = writeKeystore(sub, keys, PASSWORD, FAST);
    const before = JSON.parse(readFileSync(path, 'utf8')) as KeystoreFile;
    expectCode(() => changeKeystorePassword(sub, 'pat-passwd', 'Wrong-Horse-9x', 'Quartz-Lantern-Ferry-31', FAST), 'WRONG_PASSWORD');
    expectCode(() => changeKeystorePassword(sub, 'pat-passwd', PASSWORD, 'Password123!', FAST), 'WEAK_PASSWORD', /too easy to guess/);
    expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(before, null, 2)}\n`);
    changeKeystorePassword(sub, 'pat-passwd', PASSWORD, 'Quartz-Lantern-Ferry-31', FAST);
    const after = JSON.parse(readFileSync(path, 'utf8')) as KeystoreFile;
    expect(after.kdf.salt).not.toBe(before.kdf.salt);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(sub)).toEqual(['pat-passwd.keystore.json']);
    expectSameKeys(unlockKeystore(sub, 'pat-passwd', 'Quartz-Lantern-Ferry-31'), keys);
    expectCode(() => unlockKeystore(sub, 'pat-passwd', PASSWORD), 'WRONG_PASSWORD');
  });
});
