import { ClassicLevel } from 'classic-level';
import { compactAway } from './compaction.js';
import type { AuditEvent } from '../../records/audit.js';
import { bytesEqual, toHex } from '../../records/crypto/bytes.js';
import { decodeCanonical, encodeCanonical } from '../../records/encoding.js';
import { MemoryState } from '../../records/state/memoryState.js';
import { tableNames, type StateChange, type TableName } from '../../records/state/types.js';
import type { AuditFilter } from '../../records/tx/types.js';
import { decodeBlock, encodeBlock, headerHash, type Block, type BlockHeader } from '../../consensus/block.js';
import type { ExecutedBlock } from '../../consensus/blockExecution.js';
import { certificateSchema, type Certificate } from '../../consensus/votes.js';
import { payloadKeys } from '../payloads.js';
import { payloadKind } from '../../records/payloadKind.js';
import { PayloadFiles } from './payloadFiles.js';
import { crashPoint } from './crashPoint.js';
import { indexKey, indexPrefix, K, padTime, parseSeqKey, seqKey, SEQ_LENGTH, timeIndexRoot, type IndexName } from './keys.js';
import { grantPayloadSchema, type WrappedKey } from '../../records/envelope.js';

type Value = Uint8Array;
const EMPTY = new Uint8Array(0);
const MAX_STORED_BLOCK = 64 * 1024 * 1024;

export interface ChainHead {
  height: number;
  hash: Uint8Array;
}

export interface AuditPage {
  events: AuditEvent[];
  /** Pass back to continue with older events; absent at the end of the trail. */
  cursor?: string;
}

/**
 * Writes of one block, collected before the single atomic batch. Reads see the pending writes, so a
 * record created and deleted in the same block is purged correctly.
 */
class PendingBatch {
  readonly ops = new Map<string, Value | null>();
  /** Payload files to write (bytes) or remove (null) together with the batch. */
  private readonly files = new Map<string, Uint8Array | null>();
  constructor(
    private readonly db: ClassicLevel<string, Value>,
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
    for await (const key of this.db.keys({ gte: prefix, lt: `${prefix}\xff` })) keys.add(key);
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
    await this.db.batch([...this.ops].map(([key, value]) => (value === null ? { type: 'del' as const, key } : { type: 'put' as const, key, value })));
    if (height !== undefined) crashPoint('commit:after-batch', height, staged);
    for (const [txIdHex, bytes] of this.files) {
      if (bytes) this.payloadFiles!.promote(txIdHex);
      else this.payloadFiles!.remove(txIdHex);
    }
  }
}

/**
 * The node's LevelDB: the chain, the state, audit events with their indexes, and the purgeable record
 * payloads. One finalized block is one atomic batch, so a crash leaves either all of it or none.
 */
export class LedgerStore {
  private constructor(
    readonly db: ClassicLevel<string, Value>,
    readonly payloadFiles: PayloadFiles,
    private headCache: ChainHead | null,
  ) {}

  /** Opens the LevelDB at `dir`; payload files live in `<dir>-payloads`. */
  static async open(dir: string): Promise<LedgerStore> {
    // LevelDB maps every table file it keeps open; the integrity monitor reads the whole history each pass,
    // and with the default (1,000 open files) the mapped pages of the entire database would stay resident.
    const db = new ClassicLevel<string, Value>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', maxOpenFiles: 50 });
    await db.open();
    const head = await db.get(K.head);
    const parsed = head ? (decodeCanonical(head) as ChainHead) : null;
    const payloadFiles = new PayloadFiles(`${dir}-payloads`);
    const referenced = new Set<string>();
    for await (const key of db.keys({ gte: 'p/', lt: 'p/\xff' })) referenced.add(key.slice(2));
    payloadFiles.reconcile((txIdHex) => referenced.has(txIdHex));
    return new LedgerStore(db, payloadFiles, parsed);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  head(): ChainHead | null {
    return this.headCache;
  }

  // ---- genesis -------------------------------------------------------------------------------

  /** Binds the directory to one genesis: a node never mixes two networks' data. */
  async initGenesis(genesisHash: Uint8Array, block0: Block, changes: StateChange[]): Promise<void> {
    const existing = await this.db.get(K.genesis);
    if (existing) {
      if (!bytesEqual(existing, genesisHash)) throw new Error('data directory belongs to a different genesis file');
      return;
    }
    const batch = new PendingBatch(this.db, this.payloadFiles);
    batch.put(K.genesis, genesisHash);
    const hash = headerHash(block0.header);
    batch.put(K.block(0), encodeBlock(block0));
    batch.put(K.blockByHash(toHex(hash)), encodeCanonical(0));
    for (const c of changes) batch.put(K.state(c.table, c.key), encodeCanonical(c.value));
    const head: ChainHead = { height: 0, hash };
    batch.put(K.head, encodeCanonical(head));
    await batch.write();
    this.headCache = head;
  }

  // ---- chain ---------------------------------------------------------------------------------

  async getBlockBytes(height: number): Promise<Uint8Array | undefined> {
    return this.db.get(K.block(height));
  }

  async getBlock(height: number): Promise<Block | undefined> {
    const bytes = await this.getBlockBytes(height);
    return bytes ? decodeBlock(bytes, MAX_STORED_BLOCK) : undefined;
  }

  async getHeader(height: number): Promise<{ header: BlockHeader; hash: Uint8Array } | undefined> {
    const block = await this.getBlock(height);
    return block ? { header: block.header, hash: headerHash(block.header) } : undefined;
  }

  async getCertificate(height: number): Promise<Certificate | undefined> {
    const bytes = await this.db.get(K.cert(height));
    return bytes ? certificateSchema.parse(decodeCanonical(bytes)) : undefined;
  }

  async heightOfHash(hashHex: string): Promise<number | undefined> {
    const v = await this.db.get(K.blockByHash(hashHex));
    return v ? (decodeCanonical(v) as number) : undefined;
  }

  async txLocation(txIdHex: string): Promise<{ height: number; index: number } | undefined> {
    const v = await this.db.get(K.txLocation(txIdHex));
    return v ? parseSeqKey(new TextDecoder().decode(v)) : undefined;
  }

  /**
   * Persists a finalized block with its certificate, the state changes and audit events it produced,
   * the indexes, and the payloads it brought — purging the payloads of records it deleted.
   */
  async commitBlock(executed: ExecutedBlock, cert: Certificate, payloads: ReadonlyMap<string, Uint8Array>, redacted: ReadonlySet<string> = new Set()): Promise<void> {
    // A payload the block commits to but that did not come with it (sync from a peer that lacked or altered
    // it) is marked missing in the same batch, and its blob indexes are written all the same, so later grants
    // and deletions treat it like any other; the sync manager repairs it from other peers.
    const { block, hash, hashHex, txs, events, changes } = executed;
    const h = block.header.height;
    const head = this.headCache;
    if (!head || head.height !== h - 1 || !bytesEqual(head.hash, block.header.parent)) {
      throw new Error(`block ${h} does not extend the stored head ${head?.height}`);
    }
    const batch = new PendingBatch(this.db, this.payloadFiles);
    batch.put(K.block(h), encodeBlock(block));
    batch.put(K.cert(h), encodeCanonical(cert));
    batch.put(K.blockByHash(hashHex), encodeCanonical(h));
    for (const c of changes) {
      if (c.value === null) batch.del(K.state(c.table, c.key));
      else batch.put(K.state(c.table, c.key), encodeCanonical(c.value));
    }
    for (let i = 0; i < txs.length; i++) {
      const tx = txs[i]!;
      const event = events[i]!;
      const seq = seqKey(h, i);
      batch.put(K.txLocation(tx.idHex), new TextEncoder().encode(seq));
      batch.put(K.event(seq), executed.eventBytes[i]!);
      for (const [index, value] of indexEntries(event)) batch.put(indexKey(index, value, seq), EMPTY);
      if (event.outcome !== 'success') continue;
      await storePayload(batch, tx.idHex, tx.tx, payloads.get(tx.idHex), redacted.has(tx.idHex));
      if (tx.tx.type === 'deleteRecord' && tx.tx.record) await purgeRecord(batch, tx.tx.record);
    }
    const newHead: ChainHead = { height: h, hash };
    batch.put(K.head, encodeCanonical(newHead));
    await batch.write(h);
    this.headCache = newHead;
  }

  // ---- state ---------------------------------------------------------------------------------

  async loadState(): Promise<MemoryState> {
    const state = new MemoryState();
    const changes: StateChange[] = [];
    for await (const [key, value] of this.db.iterator({ gte: K.statePrefix, lt: `${K.statePrefix}\xff` })) {
      const rest = key.slice(K.statePrefix.length);
      const slash = rest.indexOf('/');
      const table = rest.slice(0, slash) as TableName;
      if (!tableNames.includes(table)) continue;
      changes.push({ table, key: rest.slice(slash + 1), value: decodeCanonical(value) } as StateChange);
    }
    state.write(changes);
    return state;
  }

  // ---- audit queries -------------------------------------------------------------------------

  async getEvent(height: number, index: number): Promise<AuditEvent | undefined> {
    const v = await this.db.get(K.event(seqKey(height, index)));
    return v ? (decodeCanonical(v) as AuditEvent) : undefined;
  }

  /**
   * Audit trail, newest first, through the most selective index for the filter; the other filter
   * fields are checked on the events read. `staffOnly` keeps admins to staff actions.
   */
  async queryEvents(filter: AuditFilter & { staffOnly?: boolean; atHeight?: number }, opts: { limit: number; cursor?: string }): Promise<AuditPage> {
    const { range, index, root } = this.rangeFor(filter, opts.cursor);
    const events: AuditEvent[] = [];
    let last: string | undefined;
    let more = false;
    // Index keys a page at a time and their events in one getMany: one native round trip per page
    // instead of one per event (a patient's events lie all over the store).
    const keys = this.db.keys({ ...range, reverse: true });
    try {
      scan: for (;;) {
        const page = await keys.nextv(Math.min(1_000, Math.max(16, opts.limit - events.length + 1)));
        if (page.length === 0) break;
        const values = await this.db.getMany(page.map((key) => K.event(key.slice(key.length - SEQ_LENGTH))));
        for (const [i, key] of page.entries()) {
          if (events.length >= opts.limit) {
            more = true;
            break scan;
          }
          last = key.slice(root.length);
          const value = values[i];
          if (!value) continue; // the integrity monitor reports index entries without events
          const event = decodeCanonical(value) as AuditEvent;
          if (matches(event, filter)) events.push(event);
          // Blocks follow time within the transaction window, so a scan by patient/user may stop early.
          if (index !== 'time' && filter.from !== undefined && event.recorded < filter.from - 15 * 60_000) break scan;
        }
      }
    } finally {
      await keys.close();
    }
    return more && last ? { events, cursor: last } : { events };
  }

  private rangeFor(filter: AuditFilter, cursor: string | undefined): { range: { gte: string; lt: string }; index: IndexName; root: string } {
    const chosen: [IndexName, string] | null = filter.record
      ? ['record', filter.record]
      : filter.patient
        ? ['patient', filter.patient]
        : filter.user
          ? ['user', filter.user]
          : filter.hospital
            ? ['hospital', filter.hospital]
            : null;
    if (chosen) {
      const root = indexPrefix(chosen[0], chosen[1]);
      return { index: chosen[0], root, range: { gte: root, lt: cursor ? `${root}${cursor}` : `${root}\xff` } };
    }
    const root = timeIndexRoot;
    const upper = cursor ?? (filter.to !== undefined ? padTime(filter.to + 1) : '\xff');
    return { index: 'time', root, range: { gte: `${root}${padTime(filter.from ?? 0)}`, lt: `${root}${upper}` } };
  }

  // ---- payloads and keys ---------------------------------------------------------------------

  async getPayload(txIdHex: string): Promise<{ payload: Uint8Array; redacted: boolean } | undefined> {
    if ((await this.db.get(K.payload(txIdHex))) === undefined) return undefined;
    const payload = this.payloadFiles.read(txIdHex);
    if (!payload) return undefined;
    return { payload, redacted: (await this.db.get(K.redacted(txIdHex))) !== undefined };
  }

  /** The payload holding a blob's ciphertext, and the data key wrapped for one user. */
  async getBlob(blob: string, user: string): Promise<{ payload: Uint8Array; key: WrappedKey | undefined } | undefined> {
    const tx = await this.db.get(K.blob(blob));
    if (!tx) return undefined;
    const payload = (await this.getPayload(new TextDecoder().decode(tx)))?.payload;
    if (!payload) return undefined;
    const wk = await this.db.get(K.wrappedKey(blob, user));
    return { payload, key: wk ? (decodeCanonical(wk) as { key: WrappedKey }).key : undefined };
  }

  /** Every blob of a patient with the key wrapped for `user` (what a grant re-wraps). */
  async keysOfPatient(patient: string, user: string): Promise<{ blob: string; key: WrappedKey }[]> {
    const out: { blob: string; key: WrappedKey }[] = [];
    const prefix = K.patientBlobPrefix(patient);
    for await (const key of this.db.keys({ gte: prefix, lt: `${prefix}\xff` })) {
      const blob = key.slice(prefix.length);
      const wk = await this.db.get(K.wrappedKey(blob, user));
      if (wk) out.push({ blob, key: (decodeCanonical(wk) as { key: WrappedKey }).key });
    }
    return out;
  }

  /**
   * LevelDB keeps a deleted value in its log and table files until a compaction passes over it: after a
   * record deletion, the ranges that held its ciphertext (undecided proposals) and its wrapped keys are
   * compacted, so the bytes leave the disk, not only the index.
   */
  async compactPurged(records: string[]): Promise<void> {
    await compactAway(this.db, K.consensusBlockPrefix);
    for (const record of records) await compactAway(this.db, K.wrappedKeyRecordPrefix(record));
  }

  /**
   * What this replica holds for one committed payload: the bytes (if its file and reference exist), whether
   * a deletion redacted it, whether it is known missing, and whether its record's blob is still live.
   */
  async payloadHolding(txIdHex: string): Promise<{ bytes: Uint8Array | undefined; referenced: boolean; redacted: boolean; missing: boolean }> {
    const [referenced, redacted, missing] = await this.db.getMany([K.payload(txIdHex), K.redacted(txIdHex), K.missingPayload(txIdHex)]);
    return { bytes: referenced !== undefined ? this.payloadFiles.read(txIdHex) : undefined, referenced: referenced !== undefined, redacted: redacted !== undefined, missing: missing !== undefined };
  }

  /** The stored wrapped key of a blob for a user, with the transaction whose payload carried it. */
  async wrappedKeyEntry(blob: string, user: string): Promise<{ tx: string; key: WrappedKey } | undefined> {
    const v = await this.db.get(K.wrappedKey(blob, user));
    return v ? (decodeCanonical(v) as { tx: string; key: WrappedKey }) : undefined;
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

  /** Payloads committed but not held here (see commitBlock), oldest first. */
  async missingPayloads(limit: number): Promise<string[]> {
    const out: string[] = [];
    for await (const key of this.db.keys({ gte: K.missingPayloadPrefix, lt: `${K.missingPayloadPrefix}\xff`, limit })) out.push(key.slice(K.missingPayloadPrefix.length));
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
      await storePayload(batch, txIdHex, t, bytes, redacted || bytes !== payload);
    }
    await batch.write();
    return result;
  }

  // ---- consensus persistence -----------------------------------------------------------------

  async getMeta(key: string): Promise<unknown | undefined> {
    const v = await this.db.get(key);
    return v ? decodeCanonical(v) : undefined;
  }

  async putMeta(entries: [string, unknown | null][]): Promise<void> {
    await this.db.batch(entries.map(([key, value]) => (value === null ? { type: 'del' as const, key } : { type: 'put' as const, key, value: encodeCanonical(value) })));
  }

  async listMeta(prefix: string): Promise<[string, unknown][]> {
    const out: [string, unknown][] = [];
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: `${prefix}\xff` })) out.push([key, decodeCanonical(value)]);
    return out;
  }
}

/** The audit index entries of one event (the integrity monitor checks them both ways). */
export function indexEntries(event: AuditEvent): [IndexName, string | number][] {
  const entries: [IndexName, string | number][] = [
    ['user', event.agent.user],
    ['hospital', event.agent.hospital],
    ['time', event.recorded],
  ];
  if (event.patient) entries.push(['patient', event.patient]);
  if (event.record) entries.push(['record', event.record]);
  return entries;
}

function matches(e: AuditEvent, f: AuditFilter & { staffOnly?: boolean; atHeight?: number }): boolean {
  if (f.atHeight !== undefined && e.height > f.atHeight) return false;
  if (f.patient !== undefined && e.patient !== f.patient) return false;
  if (f.user !== undefined && e.agent.user !== f.user) return false;
  if (f.record !== undefined && e.record !== f.record) return false;
  if (f.hospital !== undefined && e.agent.hospital !== f.hospital) return false;
  if (f.action !== undefined && e.action !== f.action) return false;
  if (f.outcome !== undefined && e.outcome !== f.outcome) return false;
  if (f.from !== undefined && e.recorded < f.from) return false;
  if (f.to !== undefined && e.recorded > f.to) return false;
  if (f.staffOnly && e.agent.role === 'patient') return false;
  return true;
}

async function storePayload(batch: PendingBatch, txIdHex: string, t: ExecutedBlock['txs'][number]['tx'], payload: Uint8Array | undefined, redacted: boolean): Promise<void> {
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
  batch.putPayload(txIdHex, payload);
  if (redacted) batch.put(K.redacted(txIdHex), EMPTY);
  for (const { blob, user, key } of payloadKeys(kind, payload)) {
    // A grant only wraps the granting patient's own existing blobs: a key named after anyone else's blob
    // would overwrite the grantee's real key for it.
    if (kind.kind === 'grant' && !kind.rekey && (await batch.get(K.patientBlob(kind.patient, blob))) === undefined) continue;
    // A rotation re-wraps only what the user could open already: a key for any other blob is not theirs to add.
    if (kind.kind === 'grant' && kind.rekey && (await batch.get(K.wrappedKey(blob, user))) === undefined) continue;
    batch.put(K.wrappedKey(blob, user), encodeCanonical({ tx: txIdHex, key }));
    // A later grant to the same user overwrites the wrapped-key entry, so remember every grant payload.
    if (kind.kind === 'grant') batch.put(K.blobGrant(blob, txIdHex), EMPTY);
  }
}

/**
 * Deleting a record purges its ciphertexts and every wrapped key of them, including the copies inside
 * grant payloads (rewritten without them and marked redacted). The chain itself is untouched.
 */
async function purgeRecord(batch: PendingBatch, record: string): Promise<void> {
  const recordPrefix = K.recordBlobPrefix(record);
  const grantPayloads = new Map<string, Set<string>>();
  let patient: string | undefined;
  for (const rbKey of await batch.keysWithPrefix(recordPrefix)) {
    const blob = rbKey.slice(recordPrefix.length);
    const blobTx = await batch.get(K.blob(blob));
    if (blobTx) {
      const txIdHex = new TextDecoder().decode(blobTx);
      batch.delPayload(txIdHex);
      batch.del(K.missingPayload(txIdHex));
      batch.del(K.blob(blob));
    }
    for (const wkKey of await batch.keysWithPrefix(K.wrappedKeyPrefix(blob))) {
      const wk = await batch.get(wkKey);
      const source = wk ? (decodeCanonical(wk) as { tx: string }).tx : undefined;
      if (source && source !== (blobTx && new TextDecoder().decode(blobTx))) {
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
    const p = decodeCanonical(payload) as { keys: Record<string, unknown> };
    for (const blob of blobs) delete p.keys[blob];
    batch.putPayload(txIdHex, encodeCanonical(p));
    batch.put(K.redacted(txIdHex), EMPTY);
  }
}

async function findPatientBlobOwner(batch: PendingBatch, blob: string): Promise<string | undefined> {
  const record = blob.slice(0, blob.indexOf('/'));
  const meta = await batch.get(K.state('records', record));
  return meta ? (decodeCanonical(meta) as { patient: string }).patient : undefined;
}
