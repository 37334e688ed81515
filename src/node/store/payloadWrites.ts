import { z } from 'zod';
import type { ExecutedBlock } from '../../consensus/blockExecution.js';
import { encodeCanonical } from '../../records/encoding.js';
import { grantPayloadSchema, wrappedKeySchema } from '../../records/envelope.js';
import { payloadKind } from '../../records/payloadKind.js';
import type { CheckedPayload } from '../payloads.js';
import { K } from './keys.js';
import type { PendingBatch } from './pendingBatch.js';
import { stateSchemas } from './stateSchemas.js';
import { decodeStored, decodeStoredText, EMPTY, TX_ID_PATTERN } from './values.js';

/** A wrapped data key of a blob for one user, with the transaction whose payload carried it. */
export const wrappedKeyEntrySchema = z.strictObject({ tx: z.string(), key: wrappedKeySchema });
export type WrappedKeyEntry = z.infer<typeof wrappedKeyEntrySchema>;

export const decodeWrappedKeyEntry = (value: Uint8Array, blob: string, user: string) =>
  decodeStored(wrappedKeyEntrySchema, value, `wrapped key of ${user} for ${blob}`);
/** The id of the transaction whose payload holds a blob (the value under `K.blob`). */
export const decodeBlobTx = (value: Uint8Array, blob: string) => decodeStoredText(TX_ID_PATTERN, value, `payload reference of ${blob}`);

/**
 * The payload a committed transaction brought, with its blob indexes and the wrapped keys it carries (as
 * parsed when the payload was checked), into the batch; a payload that did not come with the block is
 * marked missing (see LedgerStore.commitBlock).
 */
export async function storePayload(
  batch: PendingBatch,
  txIdHex: string,
  t: ExecutedBlock['txs'][number]['tx'],
  payload: CheckedPayload | undefined,
  redacted: boolean,
): Promise<void> {
  const kind = payloadKind(t);
  if (!kind) return;
  if (kind.kind === 'blob') {
    batch.put(K.blob(kind.blob), new TextEncoder().encode(txIdHex));
    batch.put(K.recordBlob(kind.record, kind.blob), EMPTY);
    batch.put(K.patientBlob(kind.patient, kind.blob), EMPTY);
  }
  if (!payload) {
    batch.put(K.missingPayload(txIdHex), EMPTY);
    return;
  }
  batch.putPayload(txIdHex, payload.bytes);
  if (redacted) batch.put(K.redacted(txIdHex), EMPTY);
  for (const { blob, user, key } of payload.keys) {
    // A grant only wraps the granting patient's own existing blobs: a key named after anyone else's blob
    // would overwrite the grantee's real key for it.
    if (kind.kind === 'grant' && !kind.rekey && (await batch.get(K.patientBlob(kind.patient, blob))) === undefined) continue;
    // A rotation re-wraps only what the user could open already: a key for any other blob is not theirs to add.
    if (kind.kind === 'grant' && kind.rekey && (await batch.get(K.wrappedKey(blob, user))) === undefined) continue;
    batch.put(K.wrappedKey(blob, user), encodeCanonical({ tx: txIdHex, key } satisfies WrappedKeyEntry));
    // A later grant to the same user overwrites the wrapped-key entry, so remember every grant payload.
    if (kind.kind === 'grant') batch.put(K.blobGrant(blob, txIdHex), EMPTY);
  }
}

/**
 * Deleting a record purges its ciphertexts and every wrapped key of them, including the copies inside
 * grant payloads (rewritten without them and marked redacted). The chain itself is untouched.
 */
export async function purgeRecord(batch: PendingBatch, record: string): Promise<void> {
  const recordPrefix = K.recordBlobPrefix(record);
  const grantPayloads = new Map<string, Set<string>>();
  let patient: string | undefined;
  for (const rbKey of await batch.keysWithPrefix(recordPrefix)) {
    const blob = rbKey.slice(recordPrefix.length);
    const stored = await batch.get(K.blob(blob));
    const blobTx = stored && decodeBlobTx(stored, blob);
    if (blobTx) {
      batch.delPayload(blobTx);
      batch.del(K.missingPayload(blobTx));
      batch.del(K.blob(blob));
    }
    const wrappedPrefix = K.wrappedKeyPrefix(blob);
    for (const wkKey of await batch.keysWithPrefix(wrappedPrefix)) {
      const wk = await batch.get(wkKey);
      const source = wk ? decodeWrappedKeyEntry(wk, blob, wkKey.slice(wrappedPrefix.length)).tx : undefined;
      if (source && source !== blobTx) {
        if (!grantPayloads.has(source)) grantPayloads.set(source, new Set());
        grantPayloads.get(source)!.add(blob);
      }
      batch.del(wkKey);
    }
    const grantPrefix = K.blobGrantPrefix(blob);
    for (const gbKey of await batch.keysWithPrefix(grantPrefix)) {
      const source = gbKey.slice(grantPrefix.length);
      if (!grantPayloads.has(source)) grantPayloads.set(source, new Set());
      grantPayloads.get(source)!.add(blob);
      batch.del(gbKey);
    }
    batch.del(rbKey);
    patient ??= await findPatientBlobOwner(batch, blob);
    if (patient) batch.del(K.patientBlob(patient, blob));
  }
  for (const [txIdHex, blobs] of grantPayloads) {
    const payload = await batch.getPayload(txIdHex);
    if (!payload) continue;
    const p = decodeStored(grantPayloadSchema, payload, `grant payload ${txIdHex}`);
    for (const blob of blobs) delete p.keys[blob];
    batch.putPayload(txIdHex, encodeCanonical(p));
    batch.put(K.redacted(txIdHex), EMPTY);
  }
}

async function findPatientBlobOwner(batch: PendingBatch, blob: string): Promise<string | undefined> {
  const record = blob.slice(0, blob.indexOf('/'));
  const meta = await batch.get(K.state('records', record));
  return meta ? decodeStored(stateSchemas.records, meta, `state entry ${K.state('records', record)}`).patient : undefined;
}
