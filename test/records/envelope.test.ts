import { describe, expect, it } from 'vitest';
import { open } from '../../src/records/crypto/aead.js';
import { toBase64, toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair, type EncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { bloodPressureSchema, fileContentSchema, recordContentSchema, vitalSignsSchema, type RecordContent } from '../../src/records/content.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import {
  blobId,
  blobPayloadSchema,
  grantPayloadSchema,
  openBlob,
  parsePayload,
  rewrapForGrantee,
  sealBlob,
  unwrapKey,
  wrapKey,
  type BlobPayload,
  type WrappedKey,
} from '../../src/records/envelope.js';
import { isMedLedgerError, MedLedgerError, type ErrorCode } from '../../src/records/errors.js';

/** Envelope encryption (PROTOCOL.md §4.2): a fresh data key per blob, wrapped for each recipient with X25519 + HKDF + AES-GCM. */

interface Person {
  id: string;
  keys: EncryptionKeyPair;
}
const person = (id: string): Person => ({ id, keys: generateEncryptionKeyPair() });
const me = (p: Person) => ({ id: p.id, secretKey: p.keys.secretKey, publicKey: p.keys.publicKey });
const recipient = (p: Person) => ({ id: p.id, encKey: p.keys.publicKey });

function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): MedLedgerError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (!isMedLedgerError(thrown)) throw new Error(`expected a MedLedgerError ${code}, got ${String(thrown)}`);
  expect(thrown.code, thrown.message).toBe(code);
  if (message) expect(thrown.message).toMatch(message);
  return thrown;
}

function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1;
}

const CANARY = 'CANARY-6b1f0e2d-do-not-leak';
const content: RecordContent = {
  title: 'Check-up',
  vitals: { temperature: 37.2, bloodPressure: '120/80', heartRate: 72 },
  notes: `Patient reports mild headache. ${CANARY}`,
};
const plaintext = encodeCanonical(recordContentSchema.parse(content));

describe('sealBlob / openBlob', () => {
  const patient = person('pat-1');
  const doctor = person('doc-1');
  const outsider = person('doc-2');
  const record = 'rec-00000000000000a1';
  const blob = blobId(record, 'content', 1);
  const sealed = sealBlob(plaintext, blob, [recipient(patient), recipient(doctor)]);
  const payload = parsePayload(blobPayloadSchema, sealed.payload, 'record payload');

  it('names blobs record/part/version', () => {
    expect(blob).toBe('rec-00000000000000a1/content/1');
    expect(blobId(record, 'file-0000000000000001', 3)).toBe('rec-00000000000000a1/file-0000000000000001/3');
  });

  it('the payload is canonical CBOR with a key for each recipient, and its hash is SHA-256 of the bytes', () => {
    expect(Object.keys(payload.keys).sort()).toEqual(['doc-1', 'pat-1']);
    expect(toHex(sealed.hash)).toBe(toHex(sha256(sealed.payload)));
    expect(toHex(encodeCanonical(decodeCanonical(sealed.payload)))).toBe(toHex(sealed.payload));
    expect(payload.n).toHaveLength(12);
    expect(payload.c.length).toBe(plaintext.length + 16);
  });

  it('opens for the patient and for the doctor, giving back the exact content', () => {
    for (const p of [patient, doctor]) {
      const opened = openBlob(payload, payload.keys[p.id]!, blob, me(p));
      expect(toHex(opened)).toBe(toHex(plaintext));
      expect(recordContentSchema.parse(decodeCanonical(opened))).toEqual(content);
    }
  });

  it('each recipient’s wrapped key uses its own ephemeral key', () => {
    expect(toHex(payload.keys['pat-1']!.epk)).not.toBe(toHex(payload.keys['doc-1']!.epk));
  });

  it('sealing the same content twice gives unrelated ciphertexts (fresh data key and nonce)', () => {
    const again = parsePayload(blobPayloadSchema, sealBlob(plaintext, blob, [recipient(patient)]).payload, 'record payload');
    expect(toHex(again.n)).not.toBe(toHex(payload.n));
    expect(toHex(again.c)).not.toBe(toHex(payload.c));
  });

  it('a non-recipient with another X25519 key cannot open it with any wrapped key (TAMPERED)', () => {
    for (const key of Object.values(payload.keys)) {
      expectCode(() => openBlob(payload, key, blob, me(outsider)), 'TAMPERED');
      // nor by claiming a recipient's id
      expectCode(() => openBlob(payload, key, blob, { ...me(outsider), id: 'pat-1' }), 'TAMPERED');
      expectCode(() => openBlob(payload, key, blob, { ...me(outsider), id: 'doc-1' }), 'TAMPERED');
    }
  });

  it('a recipient cannot use another recipient’s wrapped key', () => {
    expectCode(() => openBlob(payload, payload.keys['pat-1']!, blob, me(doctor)), 'TAMPERED');
    expectCode(() => openBlob(payload, payload.keys['doc-1']!, blob, me(patient)), 'TAMPERED');
  });

  it('a wrapped key moved to another blob id fails (the blob id is bound into the wrap)', () => {
    for (const other of [blobId(record, 'content', 2), blobId('rec-00000000000000a2', 'content', 1), blobId(record, 'file-0000000000000001', 1)]) {
      expectCode(() => openBlob(payload, payload.keys['pat-1']!, other, me(patient)), 'TAMPERED');
    }
  });

  it('a wrapped key moved to another recipient id fails, even for the same X25519 key pair', () => {
    // The same key pair known under two ids: the recipient id is in the HKDF info, so the wrap does not transfer.
    const wrapped = wrapKey(new Uint8Array(32).fill(7), blob, 'pat-1', patient.keys.publicKey);
    expect(toHex(unwrapKey(wrapped, blob, 'pat-1', patient.keys.secretKey, patient.keys.publicKey))).toBe('07'.repeat(32));
    expectCode(() => unwrapKey(wrapped, blob, 'pat-2', patient.keys.secretKey, patient.keys.publicKey), 'TAMPERED');
    expectCode(() => openBlob(payload, payload.keys['pat-1']!, blob, { ...me(patient), id: 'pat-2' }), 'TAMPERED');
  });

  it('content sealed under one blob id does not open under another, even with a correctly wrapped data key', () => {
    const dataKey = unwrapKey(payload.keys['pat-1']!, blob, 'pat-1', patient.keys.secretKey, patient.keys.publicKey);
    const other = blobId(record, 'content', 2);
    const rewrapped = wrapKey(dataKey, other, 'pat-1', patient.keys.publicKey);
    // the key unwraps under the new name, but the content's associated data still names the old one
    expect(toHex(unwrapKey(rewrapped, other, 'pat-1', patient.keys.secretKey, patient.keys.publicKey))).toBe(toHex(dataKey));
    expectCode(() => openBlob(payload, rewrapped, other, me(patient)), 'TAMPERED');
    // and the data key opens the content under its own name only
    expect(toHex(open(dataKey, payload.n, payload.c, utf8(`medledger/blob/v1|${blob}`)))).toBe(toHex(plaintext));
  });

  it('a tampered ciphertext, nonce or wrapped key is TAMPERED', () => {
    const c = Uint8Array.from(payload.c);
    c[0]! ^= 1;
    expectCode(() => openBlob({ n: payload.n, c }, payload.keys['pat-1']!, blob, me(patient)), 'TAMPERED');
    const n = Uint8Array.from(payload.n);
    n[11]! ^= 1;
    expectCode(() => openBlob({ n, c: payload.c }, payload.keys['pat-1']!, blob, me(patient)), 'TAMPERED');
    const w = Uint8Array.from(payload.keys['pat-1']!.w);
    w[5]! ^= 1;
    expectCode(() => openBlob(payload, { epk: payload.keys['pat-1']!.epk, w }, blob, me(patient)), 'TAMPERED');
    const epk = Uint8Array.from(payload.keys['pat-1']!.epk);
    epk[0]! ^= 1;
    expectCode(() => openBlob(payload, { epk, w: payload.keys['pat-1']!.w }, blob, me(patient)), 'TAMPERED');
  });

  it('a wrapped key with a low-order ephemeral public key is TAMPERED, not an untyped X25519 error', () => {
    const w = payload.keys['pat-1']!.w;
    // 0 and 1 are points of small order: X25519 gives an all-zero shared secret, which must be refused.
    for (const epk of [new Uint8Array(32), Uint8Array.from([1, ...new Array<number>(31).fill(0)])]) {
      expectCode(() => openBlob(payload, { epk, w }, blob, me(patient)), 'TAMPERED', /invalid ephemeral public key/);
      expectCode(() => rewrapForGrantee([{ blob, key: { epk, w } }], me(patient), recipient(doctor)), 'TAMPERED');
    }
  });

  it('the canary in the plaintext never appears in the payload bytes (raw, hex or base64)', () => {
    expect(containsBytes(plaintext, utf8(CANARY))).toBe(true); // the check below can fail
    expect(containsBytes(sealed.payload, utf8(CANARY))).toBe(false);
    expect(containsBytes(sealed.payload, utf8('headache'))).toBe(false);
    expect(containsBytes(sealed.payload, utf8('120/80'))).toBe(false);
    expect(toHex(sealed.payload)).not.toContain(toHex(utf8(CANARY)));
    expect(toBase64(sealed.payload)).not.toContain('CANARY');
    // nor do the recipients' secret keys
    for (const p of [patient, doctor]) expect(containsBytes(sealed.payload, p.keys.secretKey)).toBe(false);
  });
});

describe('rewrapForGrantee: granting access to blobs sealed before the grant', () => {
  const patient = person('pat-1');
  const oldDoctor = person('doc-1');
  const grantee = person('doc-2');
  const outsider = person('doc-3');
  const blobs = [
    { name: blobId('rec-00000000000000b1', 'content', 1), text: encodeCanonical({ vitals: { temperature: 36.6 }, notes: CANARY }) },
    { name: blobId('rec-00000000000000b1', 'content', 2), text: encodeCanonical({ vitals: { bloodPressure: '130/85' } }) },
    { name: blobId('rec-00000000000000b1', 'file-00000000000000f1', 1), text: encodeCanonical({ name: 'scan.png', mime: 'image/png', data: utf8(CANARY) }) },
  ].map((b) => ({
    ...b,
    payload: parsePayload(blobPayloadSchema, sealBlob(b.text, b.name, [recipient(patient), recipient(oldDoctor)]).payload, 'record payload'),
  }));

  it('the grantee cannot open the old blobs before the grant', () => {
    for (const b of blobs) {
      for (const key of Object.values(b.payload.keys)) expectCode(() => openBlob(b.payload, key, b.name, me(grantee)), 'TAMPERED');
    }
  });

  const grant = rewrapForGrantee(
    blobs.map((b) => ({ blob: b.name, key: b.payload.keys['pat-1']! })),
    me(patient),
    recipient(grantee),
  );
  const grantPayload = parsePayload(grantPayloadSchema, grant.payload, 'grant payload');

  it('the grant payload holds one wrapped key per blob, keyed by blob id, and its hash is SHA-256 of the bytes', () => {
    expect(Object.keys(grantPayload.keys).sort()).toEqual(blobs.map((b) => b.name).sort());
    expect(toHex(grant.hash)).toBe(toHex(sha256(grant.payload)));
  });

  it('gives the new grantee access to every old blob', () => {
    for (const b of blobs) {
      expect(toHex(openBlob(b.payload, grantPayload.keys[b.name]!, b.name, me(grantee)))).toBe(toHex(b.text));
    }
  });

  it('the rewrapped keys open nothing for anyone else, nor under another blob id', () => {
    for (const b of blobs) {
      const key = grantPayload.keys[b.name]!;
      for (const p of [patient, oldDoctor, outsider]) expectCode(() => openBlob(b.payload, key, b.name, me(p)), 'TAMPERED');
    }
    // the key of blob 0 moved onto blob 1
    expectCode(() => openBlob(blobs[1]!.payload, grantPayload.keys[blobs[0]!.name]!, blobs[1]!.name, me(grantee)), 'TAMPERED');
  });

  it('a doctor who received the keys can re-grant too (the data key is the same)', () => {
    const second = parsePayload(
      grantPayloadSchema,
      rewrapForGrantee([{ blob: blobs[0]!.name, key: blobs[0]!.payload.keys['doc-1']! }], me(oldDoctor), recipient(outsider)).payload,
      'grant payload',
    );
    expect(toHex(openBlob(blobs[0]!.payload, second.keys[blobs[0]!.name]!, blobs[0]!.name, me(outsider)))).toBe(toHex(blobs[0]!.text));
  });

  it('someone who cannot unwrap a key cannot re-grant it (TAMPERED)', () => {
    expectCode(() => rewrapForGrantee([{ blob: blobs[0]!.name, key: blobs[0]!.payload.keys['pat-1']! }], me(outsider), recipient(outsider)), 'TAMPERED');
  });

  it('the grant payload holds no plaintext', () => {
    expect(containsBytes(grant.payload, utf8(CANARY))).toBe(false);
    for (const b of blobs) expect(containsBytes(b.payload.c, utf8(CANARY))).toBe(false);
  });
});

describe('parsePayload', () => {
  const patient = person('pat-1');
  const blob = blobId('rec-00000000000000c1', 'content', 1);
  const good = sealBlob(plaintext, blob, [recipient(patient)]);

  it('refuses a payload that is not canonical CBOR, or not of the schema (MALFORMED)', () => {
    expectCode(() => parsePayload(blobPayloadSchema, utf8('not cbor'), 'record payload'), 'MALFORMED', /record payload/);
    expectCode(
      () => parsePayload(blobPayloadSchema, encodeCanonical({ n: new Uint8Array(11), c: new Uint8Array(20), keys: {} }), 'record payload'),
      'MALFORMED',
      /12 bytes/,
    );
    const parsed = parsePayload(blobPayloadSchema, good.payload, 'record payload') as BlobPayload;
    const shortW: WrappedKey = { epk: parsed.keys['pat-1']!.epk, w: parsed.keys['pat-1']!.w.subarray(0, 47) };
    expectCode(() => parsePayload(blobPayloadSchema, encodeCanonical({ ...parsed, keys: { 'pat-1': shortW } }), 'record payload'), 'MALFORMED');
    expectCode(() => parsePayload(blobPayloadSchema, encodeCanonical({ ...parsed, extra: 1 }), 'record payload'), 'MALFORMED');
    expectCode(
      () => parsePayload(blobPayloadSchema, encodeCanonical({ ...parsed, keys: { 'Not A User': parsed.keys['pat-1'] } }), 'record payload'),
      'MALFORMED',
    );
    expectCode(() => parsePayload(grantPayloadSchema, good.payload, 'grant payload'), 'MALFORMED', /grant payload/);
  });
});

describe('record content schema', () => {
  it('accepts a normal reading', () => {
    expect(recordContentSchema.parse(content)).toEqual(content);
    expect(vitalSignsSchema.safeParse({}).success).toBe(true);
  });

  it('blood pressure: 120/80 and the edges of the range are accepted', () => {
    for (const bp of ['120/80', '90/60', '300/299', '21/20', '99/20']) expect(bloodPressureSchema.safeParse(bp).success, bp).toBe(true);
  });

  const badPressures: [string, RegExp][] = [
    ['80/120', /systolic must exceed diastolic/],
    ['120/120', /systolic must exceed diastolic/],
    ['120-80', /must look like 120\/80/],
    ['1200/80', /must look like 120\/80/],
    ['120/8', /must look like 120\/80/],
    ['120/80 ', /must look like 120\/80/],
    [' 120/80', /must look like 120\/80/],
    ['120/80/60', /must look like 120\/80/],
    ['abc/def', /must look like 120\/80/],
    ['', /must look like 120\/80/],
    ['301/80', /within 20-300/],
    ['40/19', /within 20-300/],
  ];
  for (const [bp, message] of badPressures) {
    it(`blood pressure ${JSON.stringify(bp)} is rejected`, () => {
      const r = bloodPressureSchema.safeParse(bp);
      expect(r.success).toBe(false);
      if (!r.success) expect(r.error.issues.map((i) => i.message).join('; ')).toMatch(message);
      expect(recordContentSchema.safeParse({ vitals: { bloodPressure: bp } }).success).toBe(false);
    });
  }

  it('temperature: 25 to 45 °C inclusive', () => {
    for (const t of [25, 36.6, 37, 45]) expect(vitalSignsSchema.safeParse({ temperature: t }).success, String(t)).toBe(true);
    const low = vitalSignsSchema.safeParse({ temperature: 24.9 });
    expect(low.success).toBe(false);
    if (!low.success) expect(low.error.issues[0]!.message).toBe('temperature below 25 °C');
    const high = vitalSignsSchema.safeParse({ temperature: 45.1 });
    expect(high.success).toBe(false);
    if (!high.success) expect(high.error.issues[0]!.message).toBe('temperature above 45 °C');
    for (const t of [Number.NaN, Number.POSITIVE_INFINITY, '37', null]) expect(vitalSignsSchema.safeParse({ temperature: t }).success, String(t)).toBe(false);
  });

  it('heart rate: an integer from 20 to 250', () => {
    for (const hr of [20, 72, 250]) expect(vitalSignsSchema.safeParse({ heartRate: hr }).success).toBe(true);
    for (const hr of [19, 251, 72.5]) expect(vitalSignsSchema.safeParse({ heartRate: hr }).success, String(hr)).toBe(false);
  });

  it('is strict: unknown fields, a missing vitals object and oversized notes are rejected', () => {
    expect(recordContentSchema.safeParse({ vitals: {}, diagnosis: 'x' }).success).toBe(false);
    expect(vitalSignsSchema.safeParse({ weight: 80 }).success).toBe(false);
    expect(recordContentSchema.safeParse({ notes: 'x' }).success).toBe(false);
    expect(recordContentSchema.safeParse({ vitals: {}, notes: 'x'.repeat(20_000) }).success).toBe(true);
    expect(recordContentSchema.safeParse({ vitals: {}, notes: 'x'.repeat(20_001) }).success).toBe(false);
  });

  it('file content needs a name and bytes', () => {
    expect(fileContentSchema.safeParse({ name: 'scan.png', mime: 'image/png', data: new Uint8Array(3) }).success).toBe(true);
    expect(fileContentSchema.safeParse({ name: '', mime: 'image/png', data: new Uint8Array(3) }).success).toBe(false);
    expect(fileContentSchema.safeParse({ name: 'scan.png', mime: 'image/png', data: 'AAAA' }).success).toBe(false);
  });
});
