import { z } from 'zod';
import type { Logger } from 'pino';
import { bytesEqual } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { bytes, uintSchema } from '../records/ids.js';
import { decodeBlock, type Block } from '../consensus/block.js';
import { preverifyTransactions } from '../consensus/blockExecution.js';
import { SignatureWorkerPool } from '../records/crypto/signatureWorkers.js';
import { certificateSchema, verifyCertificate } from '../consensus/votes.js';
import type { ConsensusEngine } from './consensusEngine.js';
import type { Ledger } from './ledger.js';
import type { P2PHost } from './p2p/host.js';
import { payloadKind } from './payloads.js';
import { txIdOfBytes } from '../records/tx/codec.js';

/**
 * Block sync (SPEC §6): `/medledger/<network>/sync/1` serves finalized blocks by height range with their
 * certificates and surviving payloads. A node that starts behind, or hears of heights above its own,
 * fetches what it lacks and fully validates every block before committing it.
 */
export const SYNC_PROTOCOL = 'sync';
const MAX_RANGE = 256;
export const SYNC_MAX_FRAME_BYTES = 24 * 1024 * 1024;

const requestSchema = z.strictObject({ from: uintSchema, to: uintSchema });
const frameSchema = z.strictObject({
  block: bytes(),
  cert: certificateSchema,
  payloads: z.array(z.strictObject({ index: uintSchema, payload: bytes(), redacted: z.boolean() })),
});

type SyncChunk = { block: Block; frame: z.infer<typeof frameSchema> }[];

export interface SyncProgress {
  active: boolean;
  target: number;
  fetched: number;
  startedAt?: number;
}

export class SyncManager {
  readonly progress: SyncProgress = { active: false, target: 0, fetched: 0 };
  private pool: SignatureWorkerPool | undefined;
  private running: Promise<void> | null = null;

  constructor(
    private readonly deps: { ledger: Ledger; engine: () => ConsensusEngine; host: () => P2PHost; logger: Logger; maxBlockBytes: number },
  ) {}

  /** Serves a range of finalized blocks to a peer. */
  async *serve(request: Uint8Array): AsyncIterable<Uint8Array> {
    const parsed = requestSchema.safeParse(decodeCanonical(request, 'sync request'));
    if (!parsed.success) return;
    const { ledger } = this.deps;
    const to = Math.min(parsed.data.to, parsed.data.from + MAX_RANGE - 1, ledger.height);
    for (let h = Math.max(1, parsed.data.from); h <= to; h++) {
      const block = await ledger.store.getBlock(h);
      const cert = await ledger.store.getCertificate(h);
      if (!block || !cert) return;
      const payloads: { index: number; payload: Uint8Array; redacted: boolean }[] = [];
      for (let i = 0; i < block.txs.length; i++) {
        const stored = await ledger.store.getPayload(txIdOfBytes(block.txs[i]!));
        if (stored) payloads.push({ index: i, payload: stored.payload, redacted: stored.redacted });
      }
      yield encodeCanonical({ block: (await ledger.store.getBlockBytes(h))!, cert, payloads });
    }
  }

  /** Peers are at `height` or above: fetch up to it unless a sync is already under way. */
  behind(height: number, peer?: string): void {
    if (height <= this.deps.ledger.height) return;
    this.progress.target = Math.max(this.progress.target, height);
    if (this.running) return;
    this.running = this.run(peer).finally(() => {
      this.running = null;
      this.progress.active = false;
    });
  }

  private async run(preferred?: string): Promise<void> {
    const { ledger, logger } = this.deps;
    this.progress.active = true;
    this.progress.startedAt = Date.now();
    const startHeight = ledger.height;
    let failures = 0;
    while (ledger.height < this.progress.target && failures < 5) {
      const peers = this.deps.host().connectedPeers();
      const peer = preferred && peers.includes(preferred) && failures === 0 ? preferred : peers[failures % Math.max(1, peers.length)];
      if (!peer) return;
      try {
        const got = await this.fetchRange(peer, ledger.height + 1, this.progress.target);
        if (got === 0) failures++;
      } catch (err) {
        failures++;
        logger.warn({ peer, err: (err as Error).message }, 'sync from peer failed');
      }
    }
    // Peers had nothing more (or went away): we are as far as anyone could take us for now.
    this.progress.target = ledger.height;
    if (ledger.height > startHeight) {
      const secs = (Date.now() - this.progress.startedAt) / 1000;
      logger.info({ from: startHeight, to: ledger.height, seconds: secs }, `sync done: ${ledger.height - startHeight} blocks`);
    }
  }

  private async fetchRange(peer: string, from: number, to: number): Promise<number> {
    const request = encodeCanonical({ from, to: Math.min(to, from + MAX_RANGE - 1) });
    let chunk: SyncChunk = [];
    let chunkTxs = 0;
    // Pipeline: while one chunk's blocks are validated and committed, the next chunk's signatures are
    // checked on worker threads and further frames are read from the network. At most two chunks wait.
    let committing: Promise<number> = Promise.resolve(0);
    let queued = 0;
    const dispatch = async (c: SyncChunk) => {
      this.pool ??= new SignatureWorkerPool();
      const verified = preverifyTransactions(c.flatMap((x) => x.block.txs), this.pool, this.deps.ledger.txCache);
      const before = committing;
      queued++;
      committing = (async () => {
        const n = await before;
        await verified;
        const done = n + (await this.commitChunk(c));
        queued--;
        return done;
      })();
      // Observed later (awaited below or by the caller); this only keeps an early failure from being unhandled.
      committing.catch(() => undefined);
      if (queued >= 2) await before;
    };
    for await (const frameBytes of this.deps.host().request(peer, SYNC_PROTOCOL, request, { timeoutMs: 30_000, maxFrameBytes: SYNC_MAX_FRAME_BYTES, maxFrames: MAX_RANGE })) {
      const frame = frameSchema.parse(decodeCanonical(frameBytes, 'sync frame'));
      const block = decodeBlock(frame.block, this.deps.maxBlockBytes * 2);
      chunk.push({ block, frame });
      chunkTxs += block.txs.length;
      if (chunk.length >= 32 || chunkTxs >= 4_000) {
        await dispatch(chunk);
        chunk = [];
        chunkTxs = 0;
      }
    }
    if (chunk.length > 0) await dispatch(chunk);
    return committing;
  }

  /** Validates and commits a chunk of blocks in order (their signatures were checked on workers). */
  private async commitChunk(chunk: SyncChunk): Promise<number> {
    const { ledger, logger } = this.deps;
    let count = 0;
    for (const { block, frame } of chunk) {
      // Validation and commit run in the consensus queue, so sync and consensus never race.
      const committed = await this.deps.engine().withLedger(async (commit) => {
        if (block.header.height !== ledger.height + 1) return false;
        const executed = ledger.validateNext(block);
        verifyCertificate(frame.cert, ledger.genesis.validators, ledger.genesis.file.network, { height: block.header.height, block: executed.hash });
        const payloads = new Map<string, Uint8Array>();
        const redactedIds = new Set<string>();
        for (const { index, payload, redacted } of frame.payloads) {
          const tx = executed.txs[index];
          if (!tx || !tx.tx.payload) continue;
          // A payload must match its hash, unless a record deletion redacted keys out of a grant's payload
          // (the store then keeps only keys of the patient's own blobs, and a wrong key only fails to open).
          if (bytesEqual(sha256(payload), tx.tx.payload)) payloads.set(tx.idHex, payload);
          else if (redacted && payloadKind(tx.tx)?.kind === 'grant') {
            payloads.set(tx.idHex, payload);
            redactedIds.add(tx.idHex);
          }
        }
        await commit(executed, frame.cert, payloads, redactedIds);
        return true;
      });
      if (!committed) continue;
      count++;
      this.progress.fetched++;
      if (ledger.height % 100 === 0 || ledger.height === this.progress.target) {
        logger.info({ height: ledger.height, target: this.progress.target }, `sync ${ledger.height}/${this.progress.target}`);
      }
    }
    return count;
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}
