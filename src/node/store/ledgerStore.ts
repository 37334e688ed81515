import { ClassicLevel } from 'classic-level';
import { compactAway } from './compaction.js';
import type { AuditEvent } from '../../records/audit.js';
import { bytesEqual } from '../../records/crypto/bytes.js';
import type { WrappedKey } from '../../records/envelope.js';
import type { MemoryState } from '../../records/state/memoryState.js';
import type { StateChange } from '../../records/state/types.js';
import { headerHash, type Block, type BlockHeader } from '../../consensus/block.js';
import type { ExecutedBlock } from '../../consensus/blockExecution.js';
import type { FinalizedBlock } from '../finalizedBlock.js';
import type { Proposal } from '../../consensus/proposal.js';
import type { Certificate } from '../../consensus/votes.js';
import { AuditIndex, type AuditPage, type EventFilter } from './auditIndex.js';
import { BlockStore } from './blocks.js';
import { ConsensusLog, type EvidenceRef, type SavedRoundState, type StoredEvidence } from './consensusLog.js';
import { IndexCheck, type IndexFamily } from './indexCheck.js';
import { K, seqKey } from './keys.js';
import { PayloadFiles } from './payloadFiles.js';
import { PayloadIndex } from './payloadIndex.js';
import { purgeRecord, storePayload, type WrappedKeyEntry } from './payloadWrites.js';
import { PendingBatch } from './pendingBatch.js';
import { StateStore } from './state.js';
import { StatsIndex, type StoredStatsReport } from './statsIndex.js';
import type { MeasureName } from '../../records/stats/measures.js';
import type { Tx } from '../../records/tx/types.js';
import { StoreSnapshot, type ChainHead, type Level, type ReadOptions, type StoreDamage } from './values.js';

export type { AuditPage, EventFilter } from './auditIndex.js';
export type { EvidenceRef, SavedRoundState, StoredEvidence } from './consensusLog.js';
export { expectedIndexEntries, INDEX_FAMILIES, type IndexFamily } from './indexCheck.js';
export { stateEntryId } from './state.js';
export { StoreDamage, StoreSnapshot, type ChainHead, type ReadOptions } from './values.js';
export type { StoredStatsReport } from './statsIndex.js';

/**
 * The node's LevelDB: the chain, the state, audit events with their indexes, and the purgeable record
 * payloads. One finalized block is one atomic batch, so a crash leaves either all of it or none.
 *
 * The only owner of the key layout (keys.ts): the rest of the node reads and writes through the methods
 * here, each concern kept in its own module (blocks, state, audit index, payloads, consensus log), and
 * every value read back is checked against its schema (a value that fails is a StoreDamage).
 */
export class LedgerStore {
  private readonly blocks: BlockStore;
  private readonly stateStore: StateStore;
  private readonly audit: AuditIndex;
  private readonly indexes: IndexCheck;
  private readonly payloads: PayloadIndex;
  private readonly consensus: ConsensusLog;
  private readonly stats: StatsIndex;

  private constructor(
    private readonly db: Level,
    readonly payloadFiles: PayloadFiles,
    private headCache: ChainHead | null,
  ) {
    this.blocks = new BlockStore(db);
    this.stateStore = new StateStore(db);
    this.audit = new AuditIndex(db);
    this.indexes = new IndexCheck(db);
    this.payloads = new PayloadIndex(db, payloadFiles);
    this.consensus = new ConsensusLog(db);
    this.stats = new StatsIndex(db);
  }

  /** Opens the LevelDB at `dir`; payload files live in `<dir>-payloads`. */
  static async open(dir: string): Promise<LedgerStore> {
    // LevelDB maps every table file it keeps open; the integrity monitor reads the whole history each pass,
    // and with the default (1,000 open files) the mapped pages of the entire database would stay resident.
    const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', maxOpenFiles: 50 });
    await db.open();
    const head = await new BlockStore(db).readHead();
    const payloadFiles = new PayloadFiles(`${dir}-payloads`);
    const referenced = await new PayloadIndex(db, payloadFiles).referencedPayloads();
    payloadFiles.reconcile((txIdHex) => referenced.has(txIdHex));
    return new LedgerStore(db, payloadFiles, head);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** The head of the last block batch handed to LevelDB (see commitBlock). */
  head(): ChainHead | null {
    return this.headCache;
  }

  /** One consistent view of the store for the reads and scans given it (close it when done). */
  snapshot(): StoreSnapshot {
    return new StoreSnapshot(this.db.snapshot());
  }

  /** The head marker as a snapshot holds it: the head that snapshot's blocks, state and indexes belong to. */
  headAt(snapshot: StoreSnapshot): Promise<ChainHead | null> {
    return this.blocks.readHead({ snapshot });
  }

  // ---- writes of the chain -------------------------------------------------------------------

  /** Binds the directory to one genesis: a node never mixes two networks' data. */
  async initGenesis(genesisHash: Uint8Array, block0: Block, changes: StateChange[]): Promise<void> {
    const existing = await this.blocks.genesisMarker();
    if (existing) {
      if (!bytesEqual(existing, genesisHash)) throw new Error('data directory belongs to a different genesis file');
      return;
    }
    const batch = new PendingBatch(this.db, this.payloadFiles);
    this.blocks.stageGenesisMarker(batch, genesisHash);
    const hash = headerHash(block0.header);
    this.blocks.stageBlock(batch, block0, hash, null);
    this.stateStore.stageChanges(batch, changes);
    const head: ChainHead = { height: 0, hash };
    this.blocks.stageHead(batch, head);
    await batch.write();
    this.headCache = head;
  }

  /**
   * Persists a finalized block with its certificate, the state changes and audit events it produced,
   * the indexes, and the payloads it brought — purging the payloads of records it deleted. What the block
   * carries derived (encoding, header hash, event encodings, parsed payload keys) is stored as is.
   */
  async commitBlock(finalized: FinalizedBlock): Promise<void> {
    // A payload the block commits to but that did not come with it (sync from a peer that lacked or altered
    // it) is marked missing in the same batch, and its blob indexes are written all the same, so later grants
    // and deletions treat it like any other; the sync manager repairs it from other peers.
    const { executed, cert, payloads } = finalized;
    const redacted = finalized.redacted ?? new Set<string>();
    const { block, hash, txs, events, changes } = executed;
    const h = block.header.height;
    const head = this.headCache;
    if (!head || head.height !== h - 1 || !bytesEqual(head.hash, block.header.parent)) {
      throw new Error(`block ${h} does not extend the stored head ${head?.height}`);
    }
    const batch = new PendingBatch(this.db, this.payloadFiles);
    this.blocks.stageBlock(batch, block, hash, cert, finalized.bytes);
    this.stateStore.stageChanges(batch, changes);
    for (let i = 0; i < txs.length; i++) {
      const tx = txs[i]!;
      const event = events[i]!;
      const seq = seqKey(h, i);
      this.blocks.stageTxLocation(batch, tx.idHex, seq);
      this.audit.stageEvent(batch, seq, executed.eventBytes[i]!, event);
      if (event.outcome !== 'success') continue;
      if (tx.tx.type === 'statsReport') {
        const body = (tx as Tx<'statsReport'>).tx.body;
        this.stats.stageReport(batch, body.measure, body.batch, seq);
      }
      await storePayload(batch, tx.idHex, tx.tx, payloads.get(tx.idHex), redacted.has(tx.idHex));
      if (tx.tx.type === 'deleteRecord' && tx.tx.record) await purgeRecord(batch, tx.tx.record);
    }
    const newHead: ChainHead = { height: h, hash };
    this.blocks.stageHead(batch, newHead);
    // The head moves when the batch is handed to LevelDB, not when the write returns (the next block is staged
    // against it). A snapshot taken meanwhile may or may not hold this block: readers of a snapshot take the
    // head from it (headAt), never from here. A failed write restores the head.
    this.headCache = newHead;
    try {
      await batch.write(h);
    } catch (err) {
      this.headCache = head;
      throw err;
    }
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

  // ---- chain (blocks.ts) ---------------------------------------------------------------------

  /** The genesis hash the directory is bound to, as stored. */
  genesisMarker(): Promise<Uint8Array | undefined> {
    return this.blocks.genesisMarker();
  }
  /** A stored block as it is on disk; `cold` reads stay out of LevelDB's block cache. */
  getBlockBytes(height: number, opts?: ReadOptions): Promise<Uint8Array | undefined> {
    return this.blocks.getBlockBytes(height, opts);
  }
  getBlock(height: number): Promise<Block | undefined> {
    return this.blocks.getBlock(height);
  }
  /** A stored block decoded, with the bytes it was read from (one read). */
  getStoredBlock(height: number, opts?: ReadOptions): Promise<{ block: Block; bytes: Uint8Array } | undefined> {
    return this.blocks.getStoredBlock(height, opts);
  }
  getHeader(height: number): Promise<{ header: BlockHeader; hash: Uint8Array } | undefined> {
    return this.blocks.getHeader(height);
  }
  /** A stored certificate as it is on disk. */
  getCertificateBytes(height: number, opts?: ReadOptions): Promise<Uint8Array | undefined> {
    return this.blocks.getCertificateBytes(height, opts);
  }
  getCertificate(height: number): Promise<Certificate | undefined> {
    return this.blocks.getCertificate(height);
  }
  heightOfHash(hashHex: string): Promise<number | undefined> {
    return this.blocks.heightOfHash(hashHex);
  }
  txLocation(txIdHex: string): Promise<{ height: number; index: number } | undefined> {
    return this.blocks.txLocation(txIdHex);
  }

  // ---- state (state.ts) ----------------------------------------------------------------------

  /** The whole state; a damaged row is thrown, or left out and handed to `onDamage`. */
  loadState(opts?: { onDamage?: (damage: StoreDamage) => void }): Promise<MemoryState> {
    return this.stateStore.loadState(opts);
  }
  /** Every stored state entry as [stateEntryId, stored bytes], a thousand at a time. */
  stateEntryBatches(opts?: ReadOptions): AsyncGenerator<[string, Uint8Array][]> {
    return this.stateStore.stateEntryBatches(opts);
  }

  // ---- audit events and indexes (auditIndex.ts, indexCheck.ts) -------------------------------

  getEvent(height: number, index: number): Promise<AuditEvent | undefined> {
    return this.audit.getEvent(height, index);
  }
  /** Audit trail, newest first, through the most selective index; paged by cursor. */
  queryEvents(filter: EventFilter, opts: { limit: number; cursor?: string }): Promise<AuditPage> {
    return this.audit.queryEvents(filter, opts);
  }
  /** The stored bytes of a block's audit events, in order (the eventsRoot leaves). */
  blockEventBytes(height: number): Promise<Uint8Array[]> {
    return this.audit.blockEventBytes(height);
  }
  /** Every stored entry in a block's range of audit events, as stored (see AuditIndex). */
  storedEventsOfBlock(height: number, opts?: ReadOptions): AsyncGenerator<{ key: string; index: number | undefined; bytes: Uint8Array }[]> {
    return this.audit.storedEventsOfBlock(height, opts);
  }
  /** The audit events of heights `from`..`to`, in chain order. */
  eventsInHeights(from: number, to: number): AsyncGenerator<{ height: number; event: AuditEvent }> {
    return this.audit.eventsInHeights(from, to);
  }
  /** The stored entries of one index family up to a height, for the integrity monitor's digests. */
  indexEntryBatches(family: IndexFamily, upTo: number, opts?: ReadOptions): AsyncGenerator<string[]> {
    return this.indexes.indexEntryBatches(family, upTo, opts);
  }
  /** After a digest mismatch: the lowest height at which one index family and the events disagree. */
  locateIndexProblem(
    family: IndexFamily,
    upTo: number,
    snapshot: StoreSnapshot,
    pace: (count: number) => Promise<void>,
  ): Promise<{ height: number; problem: string } | null> {
    return this.indexes.locateIndexProblem(family, upTo, snapshot, pace);
  }

  // ---- statistics reports (statsIndex.ts, issue 13) -------------------------------------------

  /** The committed reports of (measure, batch) in chain order, decoded from their blocks; at most `max`. */
  statsReports(measure: MeasureName, batch: string, max: number): AsyncGenerator<StoredStatsReport> {
    return this.stats.reports(measure, batch, max);
  }
  statsReportCount(measure: MeasureName, batch: string): Promise<number> {
    return this.stats.count(measure, batch);
  }

  // ---- payloads and keys (payloadIndex.ts) ---------------------------------------------------

  getPayload(txIdHex: string): Promise<{ payload: Uint8Array; redacted: boolean } | undefined> {
    return this.payloads.getPayload(txIdHex);
  }
  /** The payload file of a transaction, referenced or not. */
  payloadFile(txIdHex: string): Uint8Array | undefined {
    return this.payloads.payloadFile(txIdHex);
  }
  getBlob(blob: string, user: string): ReturnType<PayloadIndex['getBlob']> {
    return this.payloads.getBlob(blob, user);
  }
  keysOfPatient(patient: string, user: string): Promise<{ blob: string; key: WrappedKey }[]> {
    return this.payloads.keysOfPatient(patient, user);
  }
  payloadHolding(txIdHex: string): ReturnType<PayloadIndex['payloadHolding']> {
    return this.payloads.payloadHolding(txIdHex);
  }
  wrappedKeyEntry(blob: string, user: string): Promise<WrappedKeyEntry | undefined> {
    return this.payloads.wrappedKeyEntry(blob, user);
  }
  blobIsLive(patient: string, blob: string): Promise<boolean> {
    return this.payloads.blobIsLive(patient, blob);
  }
  markPayloadMissing(txIdHex: string): Promise<void> {
    return this.payloads.markPayloadMissing(txIdHex);
  }
  purgePayload(txIdHex: string): Promise<void> {
    return this.payloads.purgePayload(txIdHex);
  }
  missingPayloads(limit: number): Promise<string[]> {
    return this.payloads.missingPayloads(limit);
  }
  repairPayload(txIdHex: string, t: ExecutedBlock['txs'][number]['tx'], payload: Uint8Array, redacted: boolean): Promise<'stored' | 'dropped'> {
    return this.payloads.repairPayload(txIdHex, t, payload, redacted);
  }

  // ---- consensus write-ahead log and evidence (consensusLog.ts) ------------------------------

  loadRoundState(): Promise<SavedRoundState | undefined> {
    return this.consensus.loadRoundState();
  }
  saveRoundState(saved: SavedRoundState): Promise<void> {
    return this.consensus.saveRoundState(saved);
  }
  saveProposal(hashHex: string, p: Proposal): Promise<void> {
    return this.consensus.saveProposal(hashHex, p);
  }
  loadProposals(): Promise<Proposal[]> {
    return this.consensus.loadProposals();
  }
  clearRoundState(): Promise<void> {
    return this.consensus.clearRoundState();
  }
  evidenceRefs(): Promise<EvidenceRef[]> {
    return this.consensus.evidenceRefs();
  }
  addEvidence(ref: EvidenceRef, evidence: StoredEvidence, prune?: readonly EvidenceRef[]): Promise<void> {
    return this.consensus.addEvidence(ref, evidence, prune);
  }
  listEvidence(): Promise<StoredEvidence[]> {
    return this.consensus.listEvidence();
  }
}
