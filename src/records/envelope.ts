import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { open, randomNonce, seal, AEAD_NONCE_LENGTH } from './crypto/aead.js';
import { utf8 } from './crypto/bytes.js';
import { sha256 } from './crypto/hash.js';
import { openWithKey, sealToKey } from './crypto/keyAgreement.js';
import { decodeCanonical, encodeCanonical } from './encoding.js';
import { MedLedgerError } from './errors.js';
import { bytes, userIdSchema } from './ids.js';

/**
 * Envelope encryption of record contents and files (PROTOCOL.md §4.2), run on the client: each blob (one version
 * of a record's content or of a file) gets a fresh data key; the data key is wrapped for each recipient
 * with X25519 + HKDF-SHA256 + AES-256-GCM. Nodes only ever see the sealed payload.
 *
 * A blob is named `record/part/version` (part = 'content' or a file id); the name is the associated data
 * of both the content and every wrapped key, so a ciphertext or key cannot be replayed under another name.
 */
export function blobId(record: string, part: string, version: number): string {
  return `${record}/${part}/${version}`;
}

export const wrappedKeySchema = z.strictObject({ epk: bytes(32), w: bytes(48) });
export type WrappedKey = z.infer<typeof wrappedKeySchema>;

/** Payload of createRecord/updateRecord/copyRecord/attachFile/replaceFile. */
export const blobPayloadSchema = z.strictObject({
  n: bytes(AEAD_NONCE_LENGTH),
  c: bytes(),
  keys: z.record(userIdSchema, wrappedKeySchema),
});
export type BlobPayload = z.infer<typeof blobPayloadSchema>;

/** Payload of grantAccess/approveRequest: the data keys of the patient's existing blobs, wrapped for the grantee. */
export const grantPayloadSchema = z.strictObject({
  keys: z.record(z.string().max(120), wrappedKeySchema),
});
export type GrantPayload = z.infer<typeof grantPayloadSchema>;

const WRAP_INFO = 'medledger/wrap/v1';
const BLOB_AAD = 'medledger/blob/v1';

const wrapInfo = (blob: string, recipient: string) => utf8(`${WRAP_INFO}|${blob}|${recipient}`);

export function wrapKey(dataKey: Uint8Array, blob: string, recipient: string, recipientKey: Uint8Array): WrappedKey {
  const { epk, sealed } = sealToKey(recipientKey, wrapInfo(blob, recipient), dataKey, utf8(blob));
  return { epk, w: sealed };
}

export function unwrapKey(wrapped: WrappedKey, blob: string, recipient: string, secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return openWithKey(secretKey, publicKey, wrapped.epk, wrapped.w, wrapInfo(blob, recipient), utf8(blob));
}

export interface Recipient {
  id: string;
  encKey: Uint8Array;
}

/** Seals plaintext for a set of recipients; returns the canonical payload bytes and their hash for the tx. */
export function sealBlob(plaintext: Uint8Array, blob: string, recipients: Recipient[]): { payload: Uint8Array; hash: Uint8Array } {
  const dataKey = new Uint8Array(randomBytes(32));
  const n = randomNonce();
  const c = seal(dataKey, n, plaintext, utf8(`${BLOB_AAD}|${blob}`));
  const keys: Record<string, WrappedKey> = {};
  for (const r of recipients) keys[r.id] = wrapKey(dataKey, blob, r.id, r.encKey);
  dataKey.fill(0);
  const payload = encodeCanonical({ n, c, keys } satisfies BlobPayload);
  return { payload, hash: sha256(payload) };
}

export function openBlob(
  sealed: { n: Uint8Array; c: Uint8Array },
  key: WrappedKey,
  blob: string,
  me: { id: string; secretKey: Uint8Array; publicKey: Uint8Array },
): Uint8Array {
  const dataKey = unwrapKey(key, blob, me.id, me.secretKey, me.publicKey);
  try {
    return open(dataKey, sealed.n, sealed.c, utf8(`${BLOB_AAD}|${blob}`));
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps the data keys a user can open for a new grantee (granting access, PROTOCOL.md §4.5). */
export function rewrapForGrantee(
  blobs: { blob: string; key: WrappedKey }[],
  me: { id: string; secretKey: Uint8Array; publicKey: Uint8Array },
  grantee: Recipient,
): { payload: Uint8Array; hash: Uint8Array } {
  const keys: Record<string, WrappedKey> = {};
  for (const { blob, key } of blobs) {
    const dataKey = unwrapKey(key, blob, me.id, me.secretKey, me.publicKey);
    keys[blob] = wrapKey(dataKey, blob, grantee.id, grantee.encKey);
    dataKey.fill(0);
  }
  const payload = encodeCanonical({ keys } satisfies GrantPayload);
  return { payload, hash: sha256(payload) };
}

export function parsePayload<T>(schema: z.ZodType<T>, payload: Uint8Array, what: string): T {
  const parsed = schema.safeParse(decodeCanonical(payload, what));
  if (!parsed.success) throw new MedLedgerError('MALFORMED', `malformed ${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
