import { crashPoint } from './crashPoint.js';
import { K } from './keys.js';
import type { PayloadFiles } from './payloadFiles.js';
import { EMPTY, under, type Level } from './values.js';

type Value = Uint8Array;

/**
 * Writes of one block, collected before the single atomic batch. Reads see the pending writes, so a
 * record created and deleted in the same block is purged correctly.
 */
export class PendingBatch {
  readonly ops = new Map<string, Value | null>();
  /**
   * Writes of keys that no read of a block's batch looks at and that a block writes once each (its audit
   * events, their index entries, transaction locations): appended as batch operations, not kept in `ops`,
   * which would hash every one of these keys (several per event) only to answer reads nobody makes.
   */
  private readonly appended: { type: 'put'; key: string; value: Value }[] = [];
  /** Payload files to write (bytes) or remove (null) together with the batch. */
  private readonly files = new Map<string, Uint8Array | null>();
  constructor(
    private readonly db: Level,
    private readonly payloadFiles?: PayloadFiles,
  ) {}

  putPayload(txIdHex: string, bytes: Uint8Array): void {
    this.put(K.payload(txIdHex), EMPTY);
    this.files.set(txIdHex, bytes);
  }
  delPayload(txIdHex: string): void {
    this.del(K.payload(txIdHex));
    this.del(K.redacted(txIdHex));
    this.files.set(txIdHex, null);
  }
  async getPayload(txIdHex: string): Promise<Uint8Array | undefined> {
    const pending = this.files.get(txIdHex);
    if (pending !== undefined) return pending ?? undefined;
    if ((await this.get(K.payload(txIdHex))) === undefined) return undefined;
    return this.payloadFiles?.read(txIdHex);
  }

  put(key: string, value: Value): void {
    this.ops.set(key, value);
  }
  /** A write that get() and keysWithPrefix() do not see: only for the keys named at `appended`. */
  append(key: string, value: Value): void {
    this.appended.push({ type: 'put', key, value });
  }
  del(key: string): void {
    this.ops.set(key, null);
  }
  async get(key: string): Promise<Value | undefined> {
    const pending = this.ops.get(key);
    if (pending !== undefined) return pending ?? undefined;
    return this.db.get(key);
  }
  async keysWithPrefix(prefix: string): Promise<string[]> {
    const keys = new Set<string>();
    for await (const key of this.db.keys(under(prefix))) keys.add(key);
    for (const [key, value] of this.ops) {
      if (!key.startsWith(prefix)) continue;
      if (value === null) keys.delete(key);
      else keys.add(key);
    }
    return [...keys];
  }
  /** `height`: of the block being committed, for the test-only crash points (crashPoint.ts; never set in production). */
  async write(height?: number): Promise<void> {
    let staged = 0;
    for (const [txIdHex, bytes] of this.files) {
      if (!bytes) continue;
      this.payloadFiles!.stage(txIdHex, bytes);
      staged++;
    }
    if (height !== undefined) crashPoint('commit:after-payload-files', height, staged);
    const operations: ({ type: 'put'; key: string; value: Value } | { type: 'del'; key: string })[] = this.appended;
    for (const [key, value] of this.ops) operations.push(value === null ? { type: 'del', key } : { type: 'put', key, value });
    await this.db.batch(operations);
    if (height !== undefined) crashPoint('commit:after-batch', height, staged);
    for (const [txIdHex, bytes] of this.files) {
      if (bytes) this.payloadFiles!.promote(txIdHex);
      else this.payloadFiles!.remove(txIdHex);
    }
  }
}
