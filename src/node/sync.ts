import { z } from 'zod';
import type { Logger } from 'pino';
import { bytesEqual } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { bytes, uintSchema } from '../records/ids.js';
import { decodeBlock, type Block } from '../consensus/block.js';
import { ALL_SIGNATURES, PrecheckCache, SignaturePrecheck } from '../consensus/signaturePrecheck.js';
import { certificateSchema, verifyCertificate } from '../consensus/votes.js';
import type { ChainWriter } from './chainWriter.js';
import type { Ledger } from './ledger.js';
import type { P2PHost } from './p2p/host.js';
import { checkPayload, type CheckedPayload } from './payloads.js';
import { payloadKind } from '../records/payloadKind.js';
import { decodeTx, txIdOfBytes } from '../records/tx/codec.js';
import type { Tx, UnsignedTx } from '../records/tx/types.js';
import { maxFaulty } from '../consensus/tendermint.js';
import { toHex } from '../records/crypto/bytes.js';
import { MedLedgerError } from '../records/errors.js';
import type { NodeMetrics } from './metrics.js';

/**
 * Block sync (PROTOCOL.md §6.4): `/medledger/<network>/sync/1` serves finalized blocks by height range with their
 * certificates and surviving payloads. A node that starts behind, or hears of heights above its own,
 * fetches what it lacks and fully validates every block before committing it.
 */
export const SYNC_PROTOCOL = 'sync';
/** Missing payloads by transaction id: `{ids}` → one frame per payload the peer holds. */
export const PAYLOAD_PROTOCOL = 'payloads';
const MAX_PAYLOAD_IDS = 256;
/** A peer whose hint of a higher height led to no certified block is not followed again for this long. */
const DISTRUST_MS = 30_000;
/** How often missing payloads are asked for again while some are missing. */
const REPAIR_INTERVAL_MS = 30_000;
/** Redacted grant payloads offered by peers, awaiting confirmation by f+1 of them (bounded). */
const MAX_REDACTED_CANDIDATES = 10_000;
/** Bytes of redacted candidates held at once: a lying peer's large offers cannot grow memory past this. */
export const MAX_REDACTED_OFFER_BYTES = 32 * 1024 * 1024;
/** Distinct contents kept per transaction: f+1 honest peers agree, so a few candidates suffice. */
const MAX_OFFERS_PER_TX = 8;
const MAX_RANGE = 256;
/**
 * Chunks (PRECHECK_LIMITS: ≤ 32 blocks or ≤ 4,000 transactions each) checked ahead on the workers while the
 * main thread commits one: with 2, the workers always have a chunk queued behind the one they are checking.
 * Held at once: this many chunks plus the one being committed (≤ 3 × 4,000 decoded transactions).
 */
export const SYNC_AHEAD_CHUNKS = 2;
export const SYNC_MAX_FRAME_BYTES = 24 * 1024 * 1024;

const requestSchema = z.strictObject({ from: uintSchema, to: uintSchema });
const frameSchema = z.strictObject({
  block: bytes(),
  cert: certificateSchema,
  payloads: z.array(z.strictObject({ index: uintSchema, payload: bytes(), redacted: z.boolean() })),
});

/** A peer's frame, checked: a malformed one is a typed MALFORMED error (the peer's fault), never a zod dump. */
function parseFrame<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  const parsed = schema.safeParse(decodeCanonical(bytes, what));
  if (!parsed.success) throw new MedLedgerError('MALFORMED', `malformed ${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

type SyncItem = { block: Block; frame: z.infer<typeof frameSchema>; peer: string };
type SyncChunk = SyncItem[];
const payloadRequestSchema = z.strictObject({
  ids: z
    .array(z.string().regex(/^[0-9a-f]{64}$/))
    .min(1)
    .max(MAX_PAYLOAD_IDS),
});
const payloadFrameSchema = z.strictObject({ id: z.string(), payload: bytes(), redacted: z.boolean() });

export interface SyncProgress {
  active: boolean;
  target: number;
  fetched: number;
  startedAt?: number;
}

export class SyncManager {
  readonly progress: SyncProgress = { active: false, target: 0, fetched: 0 };
  private precheck: SignaturePrecheck | undefined;
  private running: Promise<void> | null = null;
  /** Highest height some peer claimed: only a hint until a certified block arrives. */
  private hint = 0;
  private readonly distrusted = new Map<string, number>();
  /** Redacted grant payloads by tx id → by content → the peers that served exactly these bytes. */
  private readonly redactedOffers = new Map<string, Map<string, { payload: Uint8Array; peers: Set<string> }>>();
  private redactedOfferBytes = 0;
  private repairTimer: NodeJS.Timeout | null = null;
  private repairing: Promise<void> | null = null;
  /** Payloads restored from peers, dropped (purged meanwhile), and still missing after the last attempt. */
  readonly repairs = { stored: 0, dropped: 0, missing: 0 };

  /**
   * `chain`: the chain writer, shared with the consensus engine; synced blocks are validated and committed
   * under its lock, so sync and consensus never race.
   */
  constructor(
    private readonly deps: { ledger: Ledger; chain: ChainWriter; host: () => P2PHost; logger: Logger; maxBlockBytes: number; metrics?: NodeMetrics },
  ) {}

  /** Serves a range of finalized blocks to a peer (each block read once, and sent as stored). */
  async *serve(request: Uint8Array): AsyncIterable<Uint8Array> {
    const parsed = requestSchema.safeParse(decodeCanonical(request, 'sync request'));
    if (!parsed.success) return;
    const { ledger } = this.deps;
    const to = Math.min(parsed.data.to, parsed.data.from + MAX_RANGE - 1, ledger.height);
    for (let h = Math.max(1, parsed.data.from); h <= to; h++) {
      // Bulk reads of old blocks stay out of LevelDB's block cache (hot index blocks stay in it).
      const stored = await ledger.getStoredBlock(h, { cold: true });
      const cert = await ledger.getCertificate(h);
      if (!stored || !cert) return;
      const payloads: { index: number; payload: Uint8Array; redacted: boolean }[] = [];
      for (let i = 0; i < stored.block.txs.length; i++) {
        const held = await ledger.getPayload(txIdOfBytes(stored.block.txs[i]!));
        if (held) payloads.push({ index: i, payload: held.payload, redacted: held.redacted });
      }
      yield encodeCanonical({ block: stored.bytes, cert, payloads });
    }
  }

  /**
   * A peer says (e.g. with a vote) that heights up to `height` exist: fetch what we lack. The claim is only a
   * hint: the node counts as syncing (which slows its integrity monitor) only once certified blocks arrive,
   * and a peer whose hint led to nothing is not followed again for a while.
   */
  behind(height: number, peer?: string): void {
    if (height <= this.deps.ledger.height) return;
    if (peer !== undefined && (this.distrusted.get(peer) ?? 0) > Date.now()) return;
    this.hint = Math.max(this.hint, height);
    if (this.running) return;
    this.running = this.run(peer).finally(() => {
      this.running = null;
      this.progress.active = false;
      this.progress.target = this.deps.ledger.height;
      this.scheduleRepair(0);
    });
  }

  private async run(preferred?: string): Promise<void> {
    const { ledger, logger } = this.deps;
    this.progress.startedAt = Date.now();
    const startHeight = ledger.height;
    let failures = 0;
    while (ledger.height < this.hint && failures < 5) {
      const peers = this.deps.host().connectedPeers();
      const peer = preferred && peers.includes(preferred) && failures === 0 ? preferred : peers[failures % Math.max(1, peers.length)];
      if (!peer) return;
      try {
        const got = await this.fetchRange(peer, ledger.height + 1, this.hint);
        if (got === 0) failures++;
      } catch (err) {
        failures++;
        logger.warn({ peer, err: (err as Error).message }, 'sync from peer failed');
      }
    }
    // Peers had nothing more (or went away): we are as far as anyone could take us for now.
    this.hint = ledger.height;
    if (ledger.height === startHeight && preferred !== undefined) {
      this.distrusted.set(preferred, Date.now() + DISTRUST_MS);
      if (this.distrusted.size > 64) for (const [p, until] of this.distrusted) if (until < Date.now()) this.distrusted.delete(p);
    }
    if (ledger.height > startHeight) {
      const secs = (Date.now() - this.progress.startedAt) / 1000;
      logger.info({ from: startHeight, to: ledger.height, seconds: secs }, `sync done: ${ledger.height - startHeight} blocks`);
    }
  }

  private async fetchRange(peer: string, from: number, to: number): Promise<number> {
    const { ledger } = this.deps;
    // Pipeline: while one chunk's blocks are validated and committed, the next chunks' signatures (transactions,
    // proposers' headers, certificates) are checked on worker threads and further frames are read from the
    // network. Verdicts land in a cache of the chunks in flight, dropped once a chunk is committed, so decoded
    // transactions do not outlive their block (the node's own transaction cache is for the mempool).
    this.precheck ??= new SignaturePrecheck(ledger.genesis, { kinds: ALL_SIGNATURES, minSignatures: 1 });
    const caches = new PrecheckCache();
    const chunks = this.precheck.chunks(this.download(peer, from, to), {
      signed: ({ block, frame }) => ({ block, certificates: [frame.cert] }),
      into: () => caches.open(),
      ahead: SYNC_AHEAD_CHUNKS,
    });
    let count = 0;
    try {
      for await (const chunk of chunks) {
        await chunk.verified;
        count += await this.commitChunk(chunk.items, caches);
        caches.drop(chunk.into);
      }
    } finally {
      caches.clear();
    }
    return count;
  }

  /** The blocks of a range as a peer serves them, each frame checked and its block decoded. */
  private async *download(peer: string, from: number, to: number): AsyncGenerator<SyncItem> {
    const request = encodeCanonical({ from, to: Math.min(to, from + MAX_RANGE - 1) });
    for await (const frameBytes of this.deps
      .host()
      .request(peer, SYNC_PROTOCOL, request, { timeoutMs: 30_000, maxFrameBytes: SYNC_MAX_FRAME_BYTES, maxFrames: MAX_RANGE })) {
      const frame = parseFrame(frameSchema, frameBytes, 'sync frame');
      yield { block: decodeBlock(frame.block, this.deps.maxBlockBytes * 2), frame, peer };
    }
  }

  /** Validates and commits a chunk of blocks in order (their signatures were checked on workers). */
  private async commitChunk(chunk: SyncChunk, caches: PrecheckCache): Promise<number> {
    const { ledger, chain, logger } = this.deps;
    let count = 0;
    for (const { block, frame, peer } of chunk) {
      // Validated and committed under the chain writer's lock, against the head it is committed on.
      const committed = await chain.exclusive(async () => {
        if (block.header.height !== ledger.height + 1) return false;
        const executed = ledger.validateNext(block, { txCache: caches, verify: caches.verify });
        const expected = { height: block.header.height, block: executed.hash };
        verifyCertificate(frame.cert, ledger.genesis.validators, ledger.genesis.file.network, expected, caches.verify);
        await chain.commit({ executed, cert: frame.cert, bytes: frame.block, payloads: this.syncedPayloads(executed.txs, frame.payloads, peer) });
        return true;
      });
      if (!committed) continue;
      this.progress.active = true;
      this.progress.target = Math.max(this.hint, ledger.height);
      count++;
      this.progress.fetched++;
      if (ledger.height % 100 === 0 || ledger.height === this.progress.target) {
        logger.info({ height: ledger.height, target: this.progress.target }, `sync ${ledger.height}/${this.progress.target}`);
      }
    }
    return count;
  }

  /**
   * The payloads of a synced block that may be stored now: those that match their committed hash and pass
   * admission's checks (each hashed and parsed once, the result carried to the store). A redacted grant
   * payload (a later deletion removed keys from it) cannot be checked against its hash: it waits until f+1
   * peers served the same bytes. Whatever is not stored is marked missing and repaired from other peers.
   */
  private syncedPayloads(txs: Tx[], served: z.infer<typeof frameSchema>['payloads'], peer: string): Map<string, CheckedPayload> {
    const payloads = new Map<string, CheckedPayload>();
    for (const { index, payload, redacted } of served) {
      const tx = txs[index];
      if (!tx || !tx.tx.payload) continue;
      let failure: unknown;
      try {
        const checked = checkPayload(tx, payload);
        if (checked) payloads.set(tx.idHex, checked);
        continue;
      } catch (err) {
        failure = err;
      }
      if (bytesEqual(sha256(payload), tx.tx.payload)) {
        this.deps.logger.warn({ tx: tx.idHex, reason: (failure as Error).message }, 'synced payload matches its hash but is not storable');
      } else if (redacted && payloadKind(tx.tx)?.kind === 'grant') {
        this.offerRedacted(tx.idHex, payload, peer);
      }
    }
    return payloads;
  }

  // ---- missing payloads --------------------------------------------------------------------

  /** Serves the payloads this node holds among the requested transaction ids. */
  async *servePayloads(request: Uint8Array): AsyncIterable<Uint8Array> {
    const parsed = payloadRequestSchema.safeParse(decodeCanonical(request, 'payload request'));
    if (!parsed.success) return;
    for (const id of parsed.data.ids) {
      const stored = await this.deps.ledger.getPayload(id);
      if (stored) yield encodeCanonical({ id, payload: stored.payload, redacted: stored.redacted });
    }
  }

  private offerRedacted(txIdHex: string, payload: Uint8Array, peer: string): void {
    let offers = this.redactedOffers.get(txIdHex);
    if (!offers) {
      if (this.redactedOffers.size >= MAX_REDACTED_CANDIDATES) return;
      offers = new Map();
      this.redactedOffers.set(txIdHex, offers);
    }
    const key = toHex(sha256(payload));
    let offer = offers.get(key);
    if (!offer) {
      if (offers.size >= MAX_OFFERS_PER_TX || this.redactedOfferBytes + payload.length > MAX_REDACTED_OFFER_BYTES) return;
      offer = { payload, peers: new Set<string>() };
      offers.set(key, offer);
      this.redactedOfferBytes += payload.length;
    }
    offer.peers.add(peer);
  }

  /** Forgets the candidates of a transaction (confirmed, repaired by hash, or no longer missing). */
  private dropOffers(txIdHex: string): void {
    const offers = this.redactedOffers.get(txIdHex);
    if (!offers) return;
    for (const o of offers.values()) this.redactedOfferBytes -= o.payload.length;
    this.redactedOffers.delete(txIdHex);
  }

  private scheduleRepair(delayMs: number): void {
    if (this.repairTimer || this.closed) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = null;
      this.repairing ??= this.repairMissing()
        .catch((err: Error) => this.deps.logger.warn({ err: err.message }, 'payload repair failed'))
        .finally(() => {
          this.repairing = null;
        });
    }, delayMs);
    this.repairTimer.unref();
  }

  /**
   * Asks every connected peer for payloads this node lacks; stores each one that matches its committed
   * hash, or a redacted grant payload once f+1 peers served identical bytes (so at least one honest peer).
   */
  async repairMissing(): Promise<void> {
    const { ledger, logger } = this.deps;
    const ids = await ledger.missingPayloads(MAX_PAYLOAD_IDS);
    this.repairs.missing = ids.length;
    if (ids.length === 0) return;
    const needed = maxFaulty(ledger.genesis.validators.length) + 1;
    for (const peer of this.deps.host().connectedPeers()) {
      const pending = new Set(await ledger.missingPayloads(MAX_PAYLOAD_IDS));
      if (pending.size === 0) break;
      try {
        const request = encodeCanonical({ ids: [...pending] });
        for await (const frameBytes of this.deps
          .host()
          .request(peer, PAYLOAD_PROTOCOL, request, { timeoutMs: 30_000, maxFrameBytes: SYNC_MAX_FRAME_BYTES, maxFrames: MAX_PAYLOAD_IDS })) {
          const frame = parseFrame(payloadFrameSchema, frameBytes, 'payload frame');
          if (!pending.has(frame.id)) continue;
          const tx = await this.committedTx(frame.id);
          if (!tx || !tx.tx.payload) continue;
          if (bytesEqual(sha256(frame.payload), tx.tx.payload)) {
            try {
              checkPayload(tx, frame.payload);
            } catch {
              continue;
            }
            await this.repair(frame.id, tx.tx, frame.payload, false);
            pending.delete(frame.id);
          } else if (frame.redacted && payloadKind(tx.tx)?.kind === 'grant') {
            this.offerRedacted(frame.id, frame.payload, peer);
          }
        }
      } catch (err) {
        logger.debug({ peer, err: (err as Error).message }, 'payload request failed');
      }
      for (const id of pending) {
        const confirmed = [...(this.redactedOffers.get(id)?.values() ?? [])].find((o) => o.peers.size >= needed);
        if (!confirmed) continue;
        const tx = await this.committedTx(id);
        if (tx) await this.repair(id, tx.tx, confirmed.payload, true);
        this.dropOffers(id);
      }
    }
    const stillMissing = new Set(await ledger.missingPayloads(MAX_PAYLOAD_IDS));
    for (const id of [...this.redactedOffers.keys()]) if (!stillMissing.has(id)) this.dropOffers(id);
    const left = stillMissing.size;
    this.repairs.missing = left;
    if (this.repairs.stored > 0) logger.info({ repaired: this.repairs.stored, missing: left }, 'payloads repaired from peers');
    if (left > 0) {
      logger.warn('some committed payloads are still missing here: asking peers again later');
      this.scheduleRepair(REPAIR_INTERVAL_MS);
    }
  }

  /** Through the chain writer, so a repair never races the commit of a deletion that purges the same blob; counted. */
  private async repair(txIdHex: string, t: UnsignedTx, payload: Uint8Array, redacted: boolean): Promise<void> {
    const result = await this.deps.chain.repairPayload(txIdHex, t, payload, redacted);
    this.repairs[result]++;
    this.deps.metrics?.payloadRepairs.inc({ result });
  }

  /** Looks for missing payloads soon after start (a crash or an earlier sync may have left some). */
  startRepairs(): void {
    this.scheduleRepair(5_000);
  }

  /** Payloads were just marked missing (e.g. by the integrity monitor): fetch them from peers shortly. */
  repairSoon(): void {
    this.scheduleRepair(500);
  }

  private async committedTx(txIdHex: string) {
    const loc = await this.deps.ledger.txLocation(txIdHex);
    const bytes = loc && (await this.deps.ledger.getBlock(loc.height))?.txs[loc.index];
    return bytes ? decodeTx(bytes, { verify: false }) : undefined;
  }

  private closed = false;

  async close(): Promise<void> {
    this.closed = true;
    if (this.repairTimer) clearTimeout(this.repairTimer);
    await this.repairing;
    await this.precheck?.close();
  }
}
