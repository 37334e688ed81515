import { EventEmitter } from 'node:events';
import type { MemoryState } from '../records/state/memoryState.js';
import { genesisBlock, headerHash, type Block, type BlockHeader } from '../consensus/block.js';
import { validateBlock, type ExecutedBlock, type ParentRef } from '../consensus/blockExecution.js';
import { genesisChanges, type Genesis } from '../consensus/genesis.js';
import type { Certificate } from '../consensus/votes.js';
import type { AuditPage, EventFilter, LedgerStore, StoreDamage } from './store/ledgerStore.js';
import { BoundedTxCache } from './txCache.js';

export interface CommittedBlock {
  executed: ExecutedBlock;
  cert: Certificate;
}

/**
 * The node's view of the finalized chain: head, in-memory state and the store, kept in step. Only
 * final blocks (with a commit certificate) are ever written, so nothing here is ever rolled back.
 */
export class Ledger extends EventEmitter<{ committed: [CommittedBlock] }> {
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

  /** Validates a block proposed or synced for the next height against the current state. */
  validateNext(block: Block, now?: number): ExecutedBlock {
    return validateBlock(block, this.head, this.state, { genesis: this.genesis, txCache: this.txCache, ...(now !== undefined ? { now } : {}) });
  }

  /** The head block's certificate: what the next block carries as its lastCommit. */
  async headCertificate(): Promise<Certificate | null> {
    return this.height === 0 ? null : ((await this.store.getCertificate(this.height)) ?? null);
  }

  // ---- reads of the finalized chain, answered by the store ----------------------------------

  getBlock(height: number): Promise<Block | undefined> {
    return this.store.getBlock(height);
  }

  getCertificate(height: number): Promise<Certificate | undefined> {
    return this.store.getCertificate(height);
  }

  txLocation(txIdHex: string): Promise<{ height: number; index: number } | undefined> {
    return this.store.txLocation(txIdHex);
  }

  /** Audit trail, newest first, through the most selective index; paged by cursor. */
  queryEvents(filter: EventFilter, opts: { limit: number; cursor?: string }): Promise<AuditPage> {
    return this.store.queryEvents(filter, opts);
  }

  /** `redacted`: payloads a record deletion already redacted at the peer they were synced from. */
  async commit(executed: ExecutedBlock, cert: Certificate, payloads: ReadonlyMap<string, Uint8Array>, redacted?: ReadonlySet<string>): Promise<void> {
    await this.store.commitBlock(executed, cert, payloads, redacted);
    this.state.write(executed.changes);
    this.head = { header: executed.block.header, hash: headerHash(executed.block.header) };
    this.emit('committed', { executed, cert });
  }
}
