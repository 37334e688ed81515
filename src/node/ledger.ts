import { EventEmitter } from 'node:events';
import type { AuditEvent } from '../records/audit.js';
import type { WrappedKey } from '../records/envelope.js';
import type { MemoryState } from '../records/state/memoryState.js';
import type { UnsignedTx } from '../records/tx/types.js';
import { genesisBlock, type Block, type BlockHeader } from '../consensus/block.js';
import { validateBlock, type ExecutedBlock, type ParentRef, type TxCache } from '../consensus/blockExecution.js';
import type { SignatureVerifier } from '../records/crypto/signature.js';
import { genesisChanges, type Genesis } from '../consensus/genesis.js';
import type { Certificate } from '../consensus/votes.js';
import type { FinalizedBlock } from './finalizedBlock.js';
import type { AuditPage, EventFilter, LedgerStore, ReadOptions, StoreDamage, StoredEvidence, StoredStatsReport } from './store/ledgerStore.js';
import type { MeasureName } from '../records/stats/measures.js';
import { BoundedTxCache } from './txCache.js';

/** What the 'committed' event carries: the block as it was committed. */
export type CommittedBlock = FinalizedBlock;

/**
 * The node's view of the finalized chain: head, in-memory state and the store, kept in step. Only
 * final blocks (with a commit certificate) are ever written, so nothing here is ever rolled back.
 */
export class Ledger extends EventEmitter<{ committed: [FinalizedBlock] }> {
  readonly txCache = new BoundedTxCache();
  private head!: ParentRef;

  private constructor(
    readonly store: LedgerStore,
    readonly genesis: Genesis,
    readonly state: MemoryState,
  ) {
    super();
  }

  /**
   * `onDamage`: a stored state row that fails its check is left out of the in-memory state and reported
   * here (the integrity monitor raises its alert against the chain).
   */
  static async open(store: LedgerStore, genesis: Genesis, opts: { onDamage?: (damage: StoreDamage) => void } = {}): Promise<Ledger> {
    await store.initGenesis(genesis.hash, genesisBlock(genesis), genesisChanges(genesis));
    const ledger = new Ledger(store, genesis, await store.loadState({ onDamage: opts.onDamage ?? (() => undefined) }));
    const head = store.head()!;
    const header = (await store.getHeader(head.height))!;
    ledger.head = { header: header.header, hash: header.hash };
    return ledger;
  }

  get height(): number {
    return this.head.header.height;
  }

  get headRef(): ParentRef {
    return this.head;
  }

  get headHeader(): BlockHeader {
    return this.head.header;
  }

  /**
   * Validates a block proposed or synced for the next height against the current state. `opts.hash`: the
   * header's hash when the caller already computed it from this header (a proposal's, carried). `txCache`
   * and `verify`: a signature pre-check's verdicts (sync), instead of the node's own transaction cache.
   */
  validateNext(block: Block, opts: { now?: number; hash?: Uint8Array; txCache?: TxCache; verify?: SignatureVerifier } = {}): ExecutedBlock {
    return validateBlock(block, this.head, this.state, { genesis: this.genesis, txCache: this.txCache, ...opts });
  }

  /** The head block's certificate: what the next block carries as its lastCommit. */
  async headCertificate(): Promise<Certificate | null> {
    return this.height === 0 ? null : ((await this.store.getCertificate(this.height)) ?? null);
  }

  // ---- reads of the finalized chain, answered by the store ----------------------------------

  getBlock(height: number): Promise<Block | undefined> {
    return this.store.getBlock(height);
  }

  /** A stored block decoded, with the bytes it was read from (one read). */
  getStoredBlock(height: number, opts?: ReadOptions): Promise<{ block: Block; bytes: Uint8Array } | undefined> {
    return this.store.getStoredBlock(height, opts);
  }

  getBlockBytes(height: number, opts?: ReadOptions): Promise<Uint8Array | undefined> {
    return this.store.getBlockBytes(height, opts);
  }

  getCertificate(height: number): Promise<Certificate | undefined> {
    return this.store.getCertificate(height);
  }

  txLocation(txIdHex: string): Promise<{ height: number; index: number } | undefined> {
    return this.store.txLocation(txIdHex);
  }

  getEvent(height: number, index: number): Promise<AuditEvent | undefined> {
    return this.store.getEvent(height, index);
  }

  /** Audit trail, newest first, through the most selective index; paged by cursor. */
  queryEvents(filter: EventFilter, opts: { limit: number; cursor?: string }): Promise<AuditPage> {
    return this.store.queryEvents(filter, opts);
  }

  /** The stored bytes of a block's audit events, in order (the eventsRoot leaves). */
  blockEventBytes(height: number): Promise<Uint8Array[]> {
    return this.store.blockEventBytes(height);
  }

  getPayload(txIdHex: string): Promise<{ payload: Uint8Array; redacted: boolean } | undefined> {
    return this.store.getPayload(txIdHex);
  }

  /** The payload holding a blob's ciphertext, and the data key wrapped for one user. */
  getBlob(blob: string, user: string): ReturnType<LedgerStore['getBlob']> {
    return this.store.getBlob(blob, user);
  }

  /** Every blob of a patient with the key wrapped for `user`. */
  keysOfPatient(patient: string, user: string): Promise<{ blob: string; key: WrappedKey }[]> {
    return this.store.keysOfPatient(patient, user);
  }

  /** The equivocation evidence the consensus engine kept, oldest height first. */
  listEvidence(): Promise<StoredEvidence[]> {
    return this.store.listEvidence();
  }

  /** The committed statsReports of (measure, batch), in chain order (at most `max`, else StoreDamage). */
  statsReports(measure: MeasureName, batch: string, max: number): AsyncGenerator<StoredStatsReport> {
    return this.store.statsReports(measure, batch, max);
  }

  /** Committed payloads this replica does not hold, oldest first. */
  missingPayloads(limit: number): Promise<string[]> {
    return this.store.missingPayloads(limit);
  }

  // ---- writes: in a running node only the chain writer (chainWriter.ts) calls these, under its lock ----

  /**
   * Stores a finalized block (one atomic batch), then moves the state and the head to it and tells the
   * listeners. The block's header hash is the one it carries.
   */
  async commit(finalized: FinalizedBlock): Promise<void> {
    const { executed } = finalized;
    await this.store.commitBlock(finalized);
    this.state.write(executed.changes);
    this.head = { header: executed.block.header, hash: executed.hash };
    this.emit('committed', finalized);
  }

  /** Stores a missing payload the caller verified (see LedgerStore.repairPayload). */
  repairPayload(txIdHex: string, t: UnsignedTx, payload: Uint8Array, redacted: boolean): Promise<'stored' | 'dropped'> {
    return this.store.repairPayload(txIdHex, t, payload, redacted);
  }

  /** Drops what deleted records left in LevelDB's files (see LedgerStore.compactPurged). */
  compactPurged(records: string[]): Promise<void> {
    return this.store.compactPurged(records);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
