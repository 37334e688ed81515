import type { ExecutedBlock } from '../../consensus/blockExecution.js';
import { decodeCanonical, encodeCanonical } from '../../records/encoding.js';
import { blobPayloadSchema, grantPayloadSchema, type BlobPayload, type WrappedKey } from '../../records/envelope.js';
import { payloadKind } from '../../records/payloadKind.js';
import { payloadKeys } from '../payloads.js';
import { K } from './keys.js';
import type { PayloadFiles } from './payloadFiles.js';
import { decodeBlobTx, decodeWrappedKeyEntry, storePayload, type WrappedKeyEntry } from './payloadWrites.js';
import { PendingBatch } from './pendingBatch.js';
import { decodeStored, EMPTY, under, type Level } from './values.js';

/**
 * Off-chain payloads as this replica holds them: the references and files, the blob indexes (which
 * transaction holds a blob, a record's and a patient's blobs), the wrapped keys, and the healing of
 * damaged or missing payloads.
 */
export class PayloadIndex {
  constructor(
    private readonly db: Level,
    private readonly payloadFiles: PayloadFiles,
  ) {}

  /** Ids of every payload the store references (to reconcile the payload files after a crash). */
  async referencedPayloads(): Promise<Set<string>> {
    const referenced = new Set<string>();
    for await (const key of this.db.keys(under(K.payloadPrefix))) referenced.add(key.slice(K.payloadPrefix.length));
    return referenced;
  }

  async getPayload(txIdHex: string): Promise<{ payload: Uint8Array; redacted: boolean } | undefined> {
    if ((await this.db.get(K.payload(txIdHex))) === undefined) return undefined;
    const payload = this.payloadFiles.read(txIdHex);
    if (!payload) return undefined;
    return { payload, redacted: (await this.db.get(K.redacted(txIdHex))) !== undefined };
  }

  /** The payload file of a transaction, whether the store references it or not (a purge must remove it). */
  payloadFile(txIdHex: string): Uint8Array | undefined {
    return this.payloadFiles.read(txIdHex);
  }

  /** The payload holding a blob's ciphertext (as stored, and checked as a record payload), and the data key wrapped for one user. */
  async getBlob(blob: string, user: string): Promise<{ payload: Uint8Array; sealed: BlobPayload; key: WrappedKey | undefined } | undefined> {
    const tx = await this.db.get(K.blob(blob));
    if (!tx) return undefined;
    const txIdHex = decodeBlobTx(tx, blob);
    const payload = (await this.getPayload(txIdHex))?.payload;
    if (!payload) return undefined;
    const sealed = decodeStored(blobPayloadSchema, payload, `record payload ${txIdHex}`);
    const wk = await this.db.get(K.wrappedKey(blob, user));
    return { payload, sealed, key: wk ? decodeWrappedKeyEntry(wk, blob, user).key : undefined };
  }

  /** Every blob of a patient with the key wrapped for `user` (what a grant re-wraps). */
  async keysOfPatient(patient: string, user: string): Promise<{ blob: string; key: WrappedKey }[]> {
    const out: { blob: string; key: WrappedKey }[] = [];
    const prefix = K.patientBlobPrefix(patient);
    for await (const key of this.db.keys(under(prefix))) {
      const blob = key.slice(prefix.length);
      const wk = await this.db.get(K.wrappedKey(blob, user));
      if (wk) out.push({ blob, key: decodeWrappedKeyEntry(wk, blob, user).key });
    }
    return out;
  }

  /**
   * What this replica holds for one committed payload: the bytes (if its file and reference exist), whether
   * a deletion redacted it, whether it is known missing, and whether its record's blob is still live.
   */
  async payloadHolding(txIdHex: string): Promise<{ bytes: Uint8Array | undefined; referenced: boolean; redacted: boolean; missing: boolean }> {
    const [referenced, redacted, missing] = await this.db.getMany([K.payload(txIdHex), K.redacted(txIdHex), K.missingPayload(txIdHex)]);
    return {
      bytes: referenced !== undefined ? this.payloadFiles.read(txIdHex) : undefined,
      referenced: referenced !== undefined,
      redacted: redacted !== undefined,
      missing: missing !== undefined,
    };
  }

  /** The stored wrapped key of a blob for a user, with the transaction whose payload carried it. */
  async wrappedKeyEntry(blob: string, user: string): Promise<WrappedKeyEntry | undefined> {
    const v = await this.db.get(K.wrappedKey(blob, user));
    return v ? decodeWrappedKeyEntry(v, blob, user) : undefined;
  }

  async blobIsLive(patient: string, blob: string): Promise<boolean> {
    return (await this.db.get(K.patientBlob(patient, blob))) !== undefined;
  }

  /**
   * A payload found damaged or absent: its reference and file go, and it is marked missing, so that readers
   * get "not stored here" instead of bad bytes and the sync manager fetches a verified copy from peers.
   */
  async markPayloadMissing(txIdHex: string): Promise<void> {
    const batch = new PendingBatch(this.db, this.payloadFiles);
    batch.delPayload(txIdHex);
    batch.put(K.missingPayload(txIdHex), EMPTY);
    await batch.write();
  }

  /** A payload that a deletion should have purged but that is still here: removed now. */
  async purgePayload(txIdHex: string): Promise<void> {
    const batch = new PendingBatch(this.db, this.payloadFiles);
    batch.delPayload(txIdHex);
    batch.del(K.missingPayload(txIdHex));
    await batch.write();
  }

  /** Payloads committed but not held here (see LedgerStore.commitBlock), oldest first. */
  async missingPayloads(limit: number): Promise<string[]> {
    const out: string[] = [];
    for await (const key of this.db.keys({ ...under(K.missingPayloadPrefix), limit })) out.push(key.slice(K.missingPayloadPrefix.length));
    return out;
  }

  /**
   * Stores a missing payload that the caller verified against its transaction (by hash, or a redacted grant
   * payload confirmed by enough peers). What a deletion purged since is not brought back: the payload of a
   * deleted record is dropped, and a grant's keys of deleted blobs are redacted out first.
   */
  async repairPayload(txIdHex: string, t: ExecutedBlock['txs'][number]['tx'], payload: Uint8Array, redacted: boolean): Promise<'stored' | 'dropped'> {
    const batch = new PendingBatch(this.db, this.payloadFiles);
    if ((await batch.get(K.missingPayload(txIdHex))) === undefined) return 'dropped';
    batch.del(K.missingPayload(txIdHex));
    const kind = payloadKind(t);
    let result: 'stored' | 'dropped' = 'stored';
    if (!kind || (kind.kind === 'blob' && (await batch.get(K.recordBlob(kind.record, kind.blob))) === undefined)) {
      result = 'dropped';
    } else {
      let bytes = payload;
      if (kind.kind === 'grant') {
        const p = grantPayloadSchema.parse(decodeCanonical(payload));
        let changed = false;
        for (const blob of Object.keys(p.keys)) {
          if ((await batch.get(kind.rekey ? K.blob(blob) : K.patientBlob(kind.patient, blob))) !== undefined) continue;
          delete p.keys[blob];
          changed = true;
        }
        if (changed) bytes = encodeCanonical(p);
      }
      await storePayload(batch, txIdHex, t, { bytes, keys: payloadKeys(kind, bytes) }, redacted || bytes !== payload);
    }
    await batch.write();
    return result;
  }
}
