import { blobId } from './envelope.js';
import type { UnsignedTx } from './tx/types.js';

/**
 * Off-chain payloads: the ciphertext and wrapped keys a transaction commits to by hash. The chain stays
 * verifiable without them, so a deletion can purge them from every replica.
 */
export type PayloadKind =
  { kind: 'blob'; blob: string; record: string; patient: string; recipients: string[] } | { kind: 'grant'; patient: string; grantee: string; rekey?: true };

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
