import { decodeBlock, encodeBlock, headerHash, type Block, type BlockHeader } from '../../consensus/block.js';
import { certificateSchema, type Certificate } from '../../consensus/votes.js';
import { toHex } from '../../records/crypto/bytes.js';
import { encodeCanonical } from '../../records/encoding.js';
import { uintSchema } from '../../records/ids.js';
import { K, parseSeqKey } from './keys.js';
import type { PendingBatch } from './pendingBatch.js';
import {
  chainHeadSchema,
  decodeStored,
  decodeStoredText,
  levelOptions,
  SEQ_PATTERN,
  StoreDamage,
  type ChainHead,
  type Level,
  type ReadOptions,
} from './values.js';

const textEncoder = new TextEncoder();

const MAX_STORED_BLOCK = 64 * 1024 * 1024;

/** The chain as stored: blocks by height, their certificates, the block-hash and transaction-location indexes, the head. */
export class BlockStore {
  constructor(private readonly db: Level) {}

  async readHead(opts: ReadOptions = {}): Promise<ChainHead | null> {
    const head = await this.db.get(K.head, levelOptions(opts));
    return head ? decodeStored(chainHeadSchema, head, 'chain head') : null;
  }

  /** The genesis hash the directory is bound to. */
  async genesisMarker(): Promise<Uint8Array | undefined> {
    return this.db.get(K.genesis);
  }

  async getBlockBytes(height: number, opts?: ReadOptions): Promise<Uint8Array | undefined> {
    return this.db.get(K.block(height), levelOptions(opts));
  }

  async getBlock(height: number): Promise<Block | undefined> {
    return (await this.getStoredBlock(height))?.block;
  }

  /** A stored block decoded, with the bytes it was read from (one read). */
  async getStoredBlock(height: number, opts?: ReadOptions): Promise<{ block: Block; bytes: Uint8Array } | undefined> {
    const bytes = await this.getBlockBytes(height, opts);
    if (!bytes) return undefined;
    try {
      return { block: decodeBlock(bytes, MAX_STORED_BLOCK), bytes };
    } catch (err) {
      throw new StoreDamage(`block ${height}`, (err as Error).message, height);
    }
  }

  async getHeader(height: number): Promise<{ header: BlockHeader; hash: Uint8Array } | undefined> {
    const block = await this.getBlock(height);
    return block ? { header: block.header, hash: headerHash(block.header) } : undefined;
  }

  /** The stored certificate as it is on disk (the integrity monitor checks it itself). */
  async getCertificateBytes(height: number, opts?: ReadOptions): Promise<Uint8Array | undefined> {
    return this.db.get(K.cert(height), levelOptions(opts));
  }

  async getCertificate(height: number): Promise<Certificate | undefined> {
    const bytes = await this.getCertificateBytes(height);
    return bytes ? decodeStored(certificateSchema, bytes, `certificate of block ${height}`, height) : undefined;
  }

  async heightOfHash(hashHex: string): Promise<number | undefined> {
    const v = await this.db.get(K.blockByHash(hashHex));
    return v ? decodeStored(uintSchema, v, `block-hash index entry ${hashHex}`) : undefined;
  }

  async txLocation(txIdHex: string): Promise<{ height: number; index: number } | undefined> {
    const v = await this.db.get(K.txLocation(txIdHex));
    return v ? parseSeqKey(decodeStoredText(SEQ_PATTERN, v, `location of transaction ${txIdHex}`)) : undefined;
  }

  // ---- writes (into a block's batch) ----------------------------------------------------------

  /** `bytes`: the block's canonical encoding when the caller has it (it is not encoded again). */
  stageBlock(batch: PendingBatch, block: Block, hash: Uint8Array, cert: Certificate | null, bytes?: Uint8Array): void {
    const h = block.header.height;
    batch.put(K.block(h), bytes ?? encodeBlock(block));
    if (cert) batch.put(K.cert(h), encodeCanonical(cert));
    batch.put(K.blockByHash(toHex(hash)), encodeCanonical(h));
  }

  stageTxLocation(batch: PendingBatch, txIdHex: string, seq: string): void {
    batch.append(K.txLocation(txIdHex), textEncoder.encode(seq));
  }

  stageHead(batch: PendingBatch, head: ChainHead): void {
    batch.put(K.head, encodeCanonical(head));
  }

  stageGenesisMarker(batch: PendingBatch, genesisHash: Uint8Array): void {
    batch.put(K.genesis, genesisHash);
  }
}
