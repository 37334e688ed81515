import { blobId, blobPayloadSchema, grantPayloadSchema, parsePayload, type WrappedKey } from '../records/envelope.js';
import { bytesEqual } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { MedLedgerError } from '../records/errors.js';
import type { Tx, UnsignedTx } from '../records/tx/types.js';
import { MAX_PAYLOAD_BYTES } from '../records/tx/types.js';

/**
 * Off-chain payloads: the ciphertext and wrapped keys a transaction commits to by hash. The chain stays
 * verifiable without them, so a deletion can purge them from every replica.
 */
export type PayloadKind =
  | { kind: 'blob'; blob: string; record: string; patient: string; recipients: string[] }
  | { kind: 'grant'; patient: string; grantee: string; rekey?: true };

/** What a transaction's payload is, from the transaction alone (null: it carries none). */
export function payloadKind(t: UnsignedTx): PayloadKind | null {
  const record = t.record ?? '';
  const patient = t.patient ?? '';
  switch (t.type) {
    case 'createRecord':
    case 'copyRecord':
      return { kind: 'blob', blob: blobId(record, 'content', 1), record, patient, recipients: (t as UnsignedTx<'createRecord'>).body.recipients };
    case 'updateRecord': {
      const body = (t as UnsignedTx<'updateRecord'>).body;
      return { kind: 'blob', blob: blobId(record, 'content', body.version), record, patient, recipients: body.recipients };
    }
    case 'attachFile': {
      const body = (t as UnsignedTx<'attachFile'>).body;
      return { kind: 'blob', blob: blobId(record, body.file, 1), record, patient, recipients: body.recipients };
    }
    case 'replaceFile': {
      const body = (t as UnsignedTx<'replaceFile'>).body;
      return { kind: 'blob', blob: blobId(record, body.file, body.version), record, patient, recipients: body.recipients };
    }
    case 'grantAccess':
      return { kind: 'grant', patient, grantee: (t as UnsignedTx<'grantAccess'>).body.grantee };
    case 'approveRequest':
      return { kind: 'grant', patient, grantee: (t as UnsignedTx<'approveRequest'>).body.requester };
    // Key rotation (issue 10): the user's own data keys re-wrapped for their new encryption key, a grant to
    // themselves; the store takes only keys of blobs the user could already open (see storePayload).
    case 'rotateKeys':
      return { kind: 'grant', patient: '', grantee: t.actor, rekey: true };
    default:
      return null;
  }
}

/** Wrapped keys a payload carries, by blob and recipient. */
export function payloadKeys(kind: PayloadKind, payload: Uint8Array): { blob: string; user: string; key: WrappedKey }[] {
  if (kind.kind === 'blob') {
    const p = parsePayload(blobPayloadSchema, payload, 'record payload');
    return Object.entries(p.keys).map(([user, key]) => ({ blob: kind.blob, user, key }));
  }
  const p = parsePayload(grantPayloadSchema, payload, 'grant payload');
  return Object.entries(p.keys).map(([blob, key]) => ({ blob, user: kind.grantee, key }));
}

/**
 * Admission check of a payload against its transaction: size, hash, structure, and for record content
 * that the wrapped keys go to exactly the recipients the transaction names (and so the state checks).
 */
export function checkPayload(tx: Tx, payload: Uint8Array | undefined): void {
  const kind = payloadKind(tx.tx);
  if (!kind) {
    if (payload !== undefined) throw new MedLedgerError('MALFORMED', `${tx.tx.type} carries no payload`);
    return;
  }
  if (payload === undefined) throw new MedLedgerError('MALFORMED', `${tx.tx.type} needs its payload`);
  if (payload.length > MAX_PAYLOAD_BYTES) throw new MedLedgerError('TOO_LARGE', `payload is ${payload.length} bytes (limit ${MAX_PAYLOAD_BYTES})`);
  if (!tx.tx.payload || !bytesEqual(sha256(payload), tx.tx.payload)) throw new MedLedgerError('MALFORMED', 'payload does not match the hash in the transaction');
  const keys = payloadKeys(kind, payload);
  if (kind.kind === 'blob') {
    const users = keys.map((k) => k.user).sort();
    if (users.join(',') !== [...kind.recipients].sort().join(',')) throw new MedLedgerError('MALFORMED', 'payload keys do not match the recipients');
  } else {
    for (const { blob } of keys) {
      if (!blob.startsWith('rec-')) throw new MedLedgerError('MALFORMED', `grant payload names an invalid blob ${blob}`);
    }
  }
}

/**
 * The payloads a block brings (aligned with its transactions; null: none), checked by the same rules as
 * admission, so that a validator votes only for blocks whose payloads the commit path can store.
 */
export function checkBlockPayloads(txs: Tx[], payloads: readonly (Uint8Array | null | undefined)[]): void {
  if (payloads.length !== txs.length) throw new MedLedgerError('INVALID_BLOCK', `${payloads.length} payload slots for ${txs.length} transactions`);
  txs.forEach((tx, i) => {
    try {
      checkPayload(tx, payloads[i] ?? undefined);
    } catch (err) {
      throw new MedLedgerError('INVALID_BLOCK', `payload of transaction ${i} (${tx.idHex.slice(0, 12)}): ${(err as Error).message}`);
    }
  });
}
