import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keystorePath, readKeystoreFile, unlockKeystore, writeKeystore } from '../../src/client/keystoreFiles.js';
import { fromBase64, toBase64, toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { generateSigningKeyPair } from '../../src/records/crypto/signature.js';
import { isMedLedgerError, MedLedgerError, type ErrorCode } from '../../src/records/errors.js';
import type { Role } from '../../src/records/ids.js';
import { DEFAULT_SCRYPT, openKeystore, sealKeystore, type KeystoreFile, type ScryptParams, type UserKeys } from '../../src/records/keystore.js';
import { assertPasswordPolicy, passwordProblems } from '../../src/records/password.js';

/** Keystores (SPEC §1): the user's private keys, sealed under a password with scrypt + AES-256-GCM. */

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

/**
 * What an attacker who knows the file format can do: recompute the (unkeyed) checksum after an edit. It
 * mirrors keystore.ts: SHA-256 over the JSON of the clear header fields, then the ciphertext.
 */
function forgeChecksum(f: KeystoreFile): KeystoreFile {
  const ad = utf8(JSON.stringify([f.format, f.userId, f.role, f.hospital, f.signPublic, f.encPublic ?? '', f.kdf, f.cipher]));
  return { ...f, checksum: toHex(sha256(ad, utf8(f.ciphertext))) };
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
    expect(file.format).toBe('medledger-keystore/1');
    expect(file.kdf).toMatchObject({ name: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(fromBase64(file.kdf.salt)).toHaveLength(16);
    expect(fromBase64(file.cipher.nonce)).toHaveLength(12);
    const again = sealKeystore(keys, PASSWORD, FAST);
    expect(again.kdf.salt).not.toBe(file.kdf.salt);
    expect(again.cipher.nonce).not.toBe(file.cipher.nonce);
    expect(again.ciphertext).not.toBe(file.ciphertext);
  });

  it('uses DEFAULT_SCRYPT (N = 2^15) when no parameters are given, and still round-trips', () => {
    expect(DEFAULT_SCRYPT).toEqual({ N: 2 ** 15, r: 8, p: 1 });
    const slow = sealKeystore(keys, PASSWORD);
    expect(slow.kdf).toMatchObject({ name: 'scrypt', N: 32768, r: 8, p: 1 });
    expectSameKeys(openKeystore(slow, PASSWORD), keys);
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
  });

  it('the forgeChecksum helper reproduces the real checksum of an unmodified file', () => {
    expect(forgeChecksum(file).checksum).toBe(file.checksum);
  });

  describe('tampering without recomputing the checksum is TAMPERED before any KDF work', () => {
    const cases: [string, (f: KeystoreFile) => KeystoreFile][] = [
      ['one ciphertext byte', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, 3) })],
      ['the last ciphertext byte (the tag)', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, fromBase64(f.ciphertext).length - 1) })],
      ['the userId', (f) => ({ ...f, userId: 'pat-2' })],
      ['the role (patient → admin)', (f) => ({ ...f, role: 'admin' })],
      ['the hospital', (f) => ({ ...f, hospital: 'hosp-b' })],
      ['the signing public key', (f) => ({ ...f, signPublic: toBase64(generateSigningKeyPair().publicKey) })],
      ['the encryption public key', (f) => ({ ...f, encPublic: toBase64(generateEncryptionKeyPair().publicKey) })],
      ['the kdf N (a downgrade)', (f) => ({ ...f, kdf: { ...f.kdf, N: 2048 } })],
      ['the kdf r', (f) => ({ ...f, kdf: { ...f.kdf, r: 4 } })],
      ['the kdf salt', (f) => ({ ...f, kdf: { ...f.kdf, salt: flipBase64Byte(f.kdf.salt, 0) } })],
      ['the cipher nonce', (f) => ({ ...f, cipher: { ...f.cipher, nonce: flipBase64Byte(f.cipher.nonce, 0) } })],
      ['the checksum itself', (f) => ({ ...f, checksum: (f.checksum[0] === '0' ? '1' : '0') + f.checksum.slice(1) })],
    ];
    for (const [what, edit] of cases) {
      it(what, () => {
        // Even the right password does not open it, and the error names the alteration.
        expectCode(() => openKeystore(edit(file), PASSWORD), 'TAMPERED', /^keystore file of pat-[12] was altered \(checksum mismatch\)$/);
      });
    }
  });

  describe('tampering with the checksum recomputed (a deliberate forgery): AES-GCM refuses it, reported as WRONG_PASSWORD since the file is then indistinguishable from a wrong password', () => {
    const cases: [string, (f: KeystoreFile) => KeystoreFile][] = [
      ['one ciphertext byte', (f) => ({ ...f, ciphertext: flipBase64Byte(f.ciphertext, 3) })],
      ['a truncated ciphertext', (f) => ({ ...f, ciphertext: toBase64(fromBase64(f.ciphertext).subarray(0, 20)) })],
      ['the userId (its associated data)', (f) => ({ ...f, userId: 'pat-2' })],
      ['the role (patient → admin, its associated data)', (f) => ({ ...f, role: 'admin' })],
      ['the hospital', (f) => ({ ...f, hospital: 'hosp-b' })],
      ['the signing public key', (f) => ({ ...f, signPublic: toBase64(generateSigningKeyPair().publicKey) })],
      ['the encryption public key removed', (f) => {
        const { encPublic: _drop, ...rest } = f;
        return rest as KeystoreFile;
      }],
      ['the kdf N (a downgrade to the minimum: another derived key)', (f) => ({ ...f, kdf: { ...f.kdf, N: 2048 } })],
      ['the kdf N set to a non-power of two (scrypt refuses it: still no crash)', (f) => ({ ...f, kdf: { ...f.kdf, N: 1025 } })],
      ['the kdf salt', (f) => ({ ...f, kdf: { ...f.kdf, salt: flipBase64Byte(f.kdf.salt, 0) } })],
      ['the cipher nonce', (f) => ({ ...f, cipher: { ...f.cipher, nonce: flipBase64Byte(f.cipher.nonce, 0) } })],
    ];
    for (const [what, edit] of cases) {
      it(what, () => {
        expectCode(() => openKeystore(forgeChecksum(edit(file)), PASSWORD), 'WRONG_PASSWORD', /^wrong password for pat-[12]$/);
      });
    }
  });

  describe('a file that is not a keystore at all is TAMPERED (malformed), never a crash', () => {
    const cases: [string, () => unknown][] = [
      ['missing ciphertext', () => {
        const { ciphertext: _drop, ...rest } = file;
        return rest;
      }],
      ['missing checksum', () => {
        const { checksum: _drop, ...rest } = file;
        return rest;
      }],
      ['missing kdf', () => {
        const { kdf: _drop, ...rest } = file;
        return rest;
      }],
      ['missing kdf salt', () => ({ ...file, kdf: { name: 'scrypt', N: 1024, r: 8, p: 1 } })],
      ['an extra field', () => ({ ...file, note: 'hello' })],
      ['an unknown format version', () => ({ ...file, format: 'medledger-keystore/2' })],
      ['another KDF name', () => ({ ...file, kdf: { ...file.kdf, name: 'pbkdf2' } })],
      ['a KDF cost below the minimum (N = 512)', () => ({ ...file, kdf: { ...file.kdf, N: 512 } })],
      ['a KDF cost above the maximum (N = 2^21: a memory bomb)', () => ({ ...file, kdf: { ...file.kdf, N: 2 ** 21 } })],
      ['a role that does not exist', () => ({ ...file, role: 'superuser' })],
      ['a checksum that is not hex', () => ({ ...file, checksum: 'z'.repeat(64) })],
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

describe('password policy', () => {
  it('accepts strong passwords: 12+ characters with three or four classes', () => {
    for (const pw of ['Correct-Horse-9', 'CorrectHorse9', 'correct-horse-9', 'CORRECT-HORSE-9', 'Abcdefghij1!']) {
      expect(passwordProblems(pw, 'pat-1'), pw).toEqual([]);
      expect(() => assertPasswordPolicy(pw, 'pat-1')).not.toThrow();
    }
  });

  const weak: [string, string, RegExp][] = [
    ['too short (11 characters, all four classes)', 'Abcdefgh1!x', /shorter than 12 characters/],
    ['empty', '', /shorter than 12 characters/],
    ['lowercase only', 'correcthorsebattery', /needs three of: lowercase, uppercase, digit, symbol/],
    ['uppercase only', 'CORRECTHORSEBATTERY', /needs three of/],
    ['digits only', '123456789012345', /needs three of/],
    ['lower + upper only', 'CorrectHorseBattery', /needs three of/],
    ['lower + digit only', 'correcthorse99', /needs three of/],
    ['lower + symbol only', 'correct-horse-battery', /needs three of/],
    ['contains the user id', 'xPat-1-Strong-Pass9', /contains the user id/],
    ['longer than 256 characters', `Aa1!${'x'.repeat(253)}`, /longer than 256 characters/],
  ];
  for (const [what, pw, message] of weak) {
    it(`rejects a password that is ${what}, saying why (WEAK_PASSWORD)`, () => {
      expect(passwordProblems(pw, 'pat-1').length).toBeGreaterThan(0);
      expectCode(() => assertPasswordPolicy(pw, 'pat-1'), 'WEAK_PASSWORD', new RegExp(`^password does not meet the policy: .*${message.source}`));
    });
  }

  it('lists every problem at once', () => {
    expect(passwordProblems('pat1', 'pat1')).toEqual(['shorter than 12 characters', 'needs three of: lowercase, uppercase, digit, symbol', 'contains the user id']);
  });

  it('the length limits are exact: 12 and 256 characters pass, 11 and 257 do not', () => {
    expect(passwordProblems('Abcdefghij1!', 'pat-1')).toEqual([]);
    expect(passwordProblems('Abcdefghij1', 'pat-1')).toEqual(['shorter than 12 characters']);
    expect(passwordProblems(`Aa1${'x'.repeat(253)}`, 'pat-1')).toEqual([]);
    expect(passwordProblems(`Aa1${'x'.repeat(254)}`, 'pat-1')).toEqual(['longer than 256 characters']);
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
    expectCode(() => unlockKeystore(dir, 'pat-edit', PASSWORD), 'TAMPERED', /checksum mismatch/);
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
});
