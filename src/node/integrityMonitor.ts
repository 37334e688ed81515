import { hash, randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { preverifyTransactions, type ExecutedBlock } from '../consensus/blockExecution.js';
import { decodeBlock, encodeBlock } from '../consensus/block.js';
import { ChainChecker, ChainFault, ChunkedTxCache, maxStoredBlockBytes } from '../consensus/chainCheck.js';
import { bytesEqual, toHex } from '../records/crypto/bytes.js';
import { SignatureWorkerPool } from '../records/crypto/signatureWorkers.js';
import { encodeCanonical } from '../records/encoding.js';
import { tableNames } from '../records/state/types.js';
import type { Tx } from '../records/tx/types.js';
import type { IntegrityStatus } from '../api/contract.js';
import type { CommittedBlock, Ledger } from './ledger.js';
import { expectedIndexEntries, INDEX_FAMILIES, stateEntryId, StoreDamage, type IndexFamily, type StoreSnapshot } from './store/ledgerStore.js';
import { auditBlockPayloads, type PayloadProblem } from './payloadAudit.js';

/**
 * The background integrity check of FEATURES A ("No data integrity in the server's database"), for a
 * replicated ledger: the node re-verifies what it has on disk, not what it believes in memory.
 *
 * A pass starts from genesis with a fresh state and re-executes every stored block (ChainChecker: hash
 * links, proposer signatures, Merkle roots, carried and stored certificates, every transaction signature
 * and permission rule). For each block it also checks that the stored audit events are byte for byte the
 * re-derived ones and that the block-hash index points back to it. Once the pass reaches the head it
 * checks the indexes both ways — every event has its tx-location and audit index entries and every entry
 * points to an event matching its key — by comparing a multiset digest of the expected entries with one
 * of the stored entries (one sequential scan), and only on a mismatch looks entry by entry for the first
 * bad height. It also compares the stored state with the re-derived state.
 *
 * Then it follows: each block committed later is checked in the store as it arrives (within about a
 * second, in batches): byte for byte the block this node's consensus or sync validated and executed, with
 * its certificate, events and index entries — so signatures are not checked twice on the hot path. The
 * index and state checks repeat every `crossCheckIntervalMs`, and every `rescanIntervalMs` a new pass
 * re-executes everything from genesis (both stretched on long chains, to at least 20 and 10 times what
 * the last one took).
 * Passes are throttled (a share of wall time, yielding to the event loop between blocks) and signatures
 * are checked on worker threads, so consensus keeps running. The first problem found is raised as an
 * alert naming the height: in the status (API, TUI status bar) and as an error in the log.
 */
export interface IntegrityMonitorOptions {
  logger: Logger;
  /** A new pass from genesis this long after the previous one started (default 1 hour). */
  rescanIntervalMs?: number;
  /** Index and state cross-checks while following new blocks (default 5 minutes). */
  crossCheckIntervalMs?: number;
  /** Share of wall time the pass at startup may use (default 0.5). */
  startupDuty?: number;
  /** Share of wall time later passes may use (default 0.25). */
  backgroundDuty?: number;
  /**
   * Check transaction signatures on two worker threads, one chunk ahead (default false). About twice as
   * fast, but it holds two chunks of decoded transactions at a time and the node's resident memory grows
   * by well over 100 MB; a node's background check favours memory, `scanOnce` callers may choose speed.
   */
  workers?: boolean;
  /** New blocks are verified in batches, at most this often (default 1 s): bursts settle first. */
  followDelayMs?: number;
  /** True while the node catches up by sync: following waits, and passes slow down to the background share. */
  busy?: () => boolean;
  /** A payload was found damaged or missing and marked for repair (the sync manager fetches it from peers). */
  payloadsToRepair?: () => void;
  /** Check each block's payloads (default true; off only to measure what the payload checks cost). */
  checkPayloads?: boolean;
}

/** Payload problems kept for the status (the newest; older ones are counted). */
const RECENT_PAYLOAD_PROBLEMS = 20;

type Alert = NonNullable<IntegrityStatus['alert']>;

/**
 * Order-independent digest of a set of strings: per-lane sums of SHA-256, plus a count. The hashes are
 * salted with a secret drawn for each pass, so nobody who can write the database can precompute entries
 * whose hashes add up to hide a missing or extra one.
 */
class SetDigest {
  count = 0;
  readonly lanes = new Uint32Array(8);
  constructor(private readonly salt: string) {}
  add(entry: string): void {
    const h = hash('sha256', this.salt + entry, 'buffer') as unknown as Buffer;
    for (let i = 0; i < 8; i++) this.lanes[i] = (this.lanes[i]! + h.readUInt32LE(i * 4)) >>> 0;
    this.count++;
  }
  equals(o: SetDigest): boolean {
    return this.count === o.count && this.lanes.every((v, i) => v === o.lanes[i]);
  }
}

/** The index families (tx locations and the audit indexes), each compared as one set of entries. */
const FAMILIES = Object.keys(INDEX_FAMILIES) as IndexFamily[];

const printable = (key: string) => key.replace(/\0/g, '\\0');

/** The monitor reads the whole history once per pass: keep it out of LevelDB's block cache. */
const COLD = { cold: true } as const;

/** Thrown inside long scans when the monitor stops, so that it lets go of the store promptly. */
class Stopped extends Error {}

class Pass {
  readonly checker: ChainChecker;
  readonly caches = new ChunkedTxCache();
  genesisChecked = false;
  /** Audit events re-derived so far in this pass. */
  events = 0;
  readonly salt = randomBytes(16).toString('hex');
  readonly digests = new Map<IndexFamily, SetDigest>(FAMILIES.map((family) => [family, new SetDigest(this.salt)]));
  readonly startedAt = Date.now();
  /** With worker threads the checker reads their verdicts from the chunk caches; inline, it keeps nothing. */
  constructor(ledger: Ledger, workers: boolean) {
    this.checker = new ChainChecker(ledger.genesis, workers ? { txCache: this.caches } : {});
  }
  get height(): number {
    return this.checker.height;
  }
  add(family: IndexFamily, entry: string): void {
    this.digests.get(family)!.add(entry);
  }
}

interface Chunk {
  blocks: { height: number; bytes: Uint8Array | undefined }[];
  cache: Map<string, Tx>;
  /** Settles when the workers have checked the chunk's signatures. */
  verified: Promise<void>;
}

export class IntegrityMonitor {
  private alert: Alert | undefined;
  private verified = 0;
  private pass: Pass | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private pool: SignatureWorkerPool | undefined;
  private sliceStart = performance.now();
  private lastCrossCheck = 0;
  /** Wall time of the last index and state cross-check. */
  private crossCheckTook = 0;
  /** What the last complete pass from genesis took (for the log and benchmarks). */
  lastPass: { height: number; events: number; chainMs: number; crossCheckMs: number } | undefined;
  /** Share of wall time the index and state scans may use (background passes are throttled). */
  private scanDuty = 1;
  /** Blocks this process committed lately, as consensus or sync executed them (bounded by transactions). */
  private readonly recent = new Map<number, CommittedBlock>();
  private recentTxs = 0;
  private readonly onCommit = (c: CommittedBlock) => {
    this.recent.set(c.executed.block.header.height, c);
    this.recentTxs += c.executed.txs.length;
    for (const [h, old] of this.recent) {
      if (this.recentTxs <= 8_000 || this.recent.size <= 1) break;
      this.recent.delete(h);
      this.recentTxs -= old.executed.txs.length;
    }
    this.wake?.();
  };
  private readonly opts: Required<Omit<IntegrityMonitorOptions, 'logger'>> & { logger: Logger };
  /** Payload checks: how many were checked, what was found (and handed to repair or purged). */
  readonly payloads = { checked: 0, damaged: 0, purged: 0, recent: [] as PayloadProblem[] };
  private lastFollow = 0;

  constructor(
    private readonly ledger: Ledger,
    opts: IntegrityMonitorOptions,
  ) {
    this.opts = { rescanIntervalMs: 3_600_000, crossCheckIntervalMs: 300_000, startupDuty: 0.5, backgroundDuty: 0.25, workers: false, followDelayMs: 1_000, busy: () => false, payloadsToRepair: () => undefined, checkPayloads: true, ...opts };
  }

  /** What the status endpoint reports. */
  status(): IntegrityStatus {
    if (this.alert) return { ok: false, verifiedHeight: Math.min(this.verified, this.alert.height - 1), alert: { ...this.alert } };
    return { ok: true, verifiedHeight: this.verified };
  }

  /** Starts the first pass now and keeps following the chain until stopped. */
  start(): void {
    this.ledger.on('committed', this.onCommit);
    this.running = this.loop().catch((err: Error) => this.opts.logger.error({ err }, 'integrity monitor stopped unexpectedly'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ledger.off('committed', this.onCommit);
    this.wake?.();
    await this.running;
    await this.pool?.close();
    this.pool = undefined;
  }

  /**
   * One complete pass from genesis to the current head with the cross-checks, unthrottled. For tests and
   * benchmarks; a running monitor does the same in the background.
   */
  async scanOnce(): Promise<IntegrityStatus> {
    const pass = this.newPass();
    this.scanDuty = 1;
    await this.fullPass(pass, 1);
    return this.status();
  }

  /** From genesis to the head, then the cross-checks; records how long each took. */
  private async fullPass(pass: Pass, duty: number): Promise<boolean> {
    const t0 = performance.now();
    let healthy = await this.catchUp(pass, duty);
    const t1 = performance.now();
    if (healthy && !this.stopped) healthy = await this.crossCheck(pass);
    if (healthy && !this.stopped) this.lastPass = { height: pass.height, events: pass.events, chainMs: t1 - t0, crossCheckMs: performance.now() - t1 };
    return healthy;
  }

  private newPass(): Pass {
    return new Pass(this.ledger, this.opts.workers);
  }

  private async loop(): Promise<void> {
    let duty = this.opts.startupDuty;
    while (!this.stopped) {
      const pass = this.newPass();
      this.pass = pass;
      this.opts.logger.info({ head: this.ledger.height }, 'integrity check: verifying the stored chain from genesis');
      this.scanDuty = duty;
      let healthy = await this.fullPass(pass, duty);
      if (healthy && !this.stopped && this.lastPass) {
        const { height, events, chainMs, crossCheckMs } = this.lastPass;
        this.opts.logger.info({ height, events, chainSeconds: Number((chainMs / 1000).toFixed(1)), crossCheckSeconds: Number((crossCheckMs / 1000).toFixed(1)) }, 'integrity check: stored chain verified');
      }
      duty = this.opts.backgroundDuty;
      this.scanDuty = duty;
      // Follow new blocks on this pass until the next full rescan is due.
      // On a long chain the intervals stretch, so that the background checks stay a small share of the CPU.
      const rescanMs = Math.max(this.opts.rescanIntervalMs, 10 * (Date.now() - pass.startedAt));
      while (!this.stopped && Date.now() - pass.startedAt < rescanMs) {
        const crossMs = Math.max(this.opts.crossCheckIntervalMs, 20 * this.crossCheckTook);
        if (healthy && pass.height < this.ledger.height) {
          // A syncing node needs its CPU for sync; new blocks are checked once it is done, in batches.
          const wait = this.opts.busy() ? this.opts.followDelayMs : this.lastFollow + this.opts.followDelayMs - Date.now();
          if (wait > 0) {
            await sleep(wait);
            continue;
          }
          this.lastFollow = Date.now();
          healthy = await this.follow(pass);
          continue;
        }
        if (healthy && Date.now() - this.lastCrossCheck >= crossMs) {
          healthy = await this.crossCheck(pass);
          continue;
        }
        const untilRescan = rescanMs - (Date.now() - pass.startedAt);
        const untilCross = healthy ? crossMs - (Date.now() - this.lastCrossCheck) : untilRescan;
        await this.idle(Math.max(10, Math.min(untilRescan, untilCross)));
      }
    }
  }

  /** Waits for a commit (or `stop`) or the timeout, whichever comes first. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.wake = done;
    });
  }

  /** Yields between blocks, and sleeps as needed so that a pass uses about `duty` of wall time. */
  private async throttle(requested: number): Promise<void> {
    const duty = this.opts.busy() ? Math.min(requested, this.opts.backgroundDuty) : requested;
    const worked = performance.now() - this.sliceStart;
    if (duty >= 1 || worked < 20) await yieldToLoop();
    else await sleep((worked * (1 - duty)) / duty);
    if (duty >= 1 || worked >= 20) this.sliceStart = performance.now();
  }

  private raise(height: number, problem: string): false {
    if (!this.alert || height < this.alert.height) {
      this.alert = { height, problem, since: this.alert?.since ?? Date.now() };
      this.opts.logger.error({ height, problem }, `No data integrity in the server's database: ${problem} (height ${height})`);
    }
    return false;
  }

  private fault(err: unknown): false {
    if (err instanceof Stopped) return false;
    if (err instanceof ChainFault) return this.raise(err.height, err.problem);
    if (err instanceof StoreDamage) return this.raise(err.height ?? this.pass?.height ?? 0, err.message);
    return this.raise(this.pass?.height ?? 0, `integrity check failed: ${(err as Error).message}`);
  }

  // ---- the chain, block by block -------------------------------------------------------------

  /** Verifies stored blocks from the pass' height up to the ledger's head; false once a problem is raised. */
  private async catchUp(pass: Pass, duty: number): Promise<boolean> {
    try {
      if (!pass.genesisChecked) {
        await this.checkGenesis(pass);
        pass.genesisChecked = true;
      }
      // Two stages: while the main thread executes one chunk, the workers check the next one's signatures.
      let chunk = await this.prepare(pass, pass.height + 1);
      while (!this.stopped && chunk.blocks.length > 0) {
        const last = chunk.blocks[chunk.blocks.length - 1]!.height;
        // The next chunk is read and handed to the workers before this one is executed.
        const next = await this.prepare(pass, last + 1);
        await chunk.verified;
        for (const { height, bytes } of chunk.blocks) {
          await this.verifyBlock(pass, height, bytes);
          this.verified = Math.max(this.verified, height);
          await this.throttle(duty);
          if (this.stopped) break;
        }
        pass.caches.drop(chunk.cache);
        chunk = next;
      }
      pass.caches.drop(chunk.cache);
      return true;
    } catch (err) {
      return this.fault(err);
    }
  }

  /** Between entries of long scans: stop promptly, and leave the event loop to consensus. */
  private async pace(count: number): Promise<void> {
    if (this.stopped) throw new Stopped();
    if (count % 5_000 === 0) await this.throttle(this.scanDuty);
  }

  /** A store scan read a thousand entries at a time (far fewer awaits than entry by entry), paced between batches. */
  private async *batches<T>(scan: AsyncIterable<T[]>): AsyncGenerator<T[]> {
    if (this.stopped) throw new Stopped();
    for await (const batch of scan) {
      yield batch;
      await this.throttle(this.scanDuty);
      if (this.stopped) throw new Stopped();
    }
  }

  private async checkGenesis(pass: Pass): Promise<void> {
    const { store } = this.ledger;
    pass.checker.checkGenesisBlock(await store.getBlockBytes(0));
    const marker = await store.genesisMarker();
    if (!marker || !bytesEqual(marker, this.ledger.genesis.hash)) throw new ChainFault(0, 'the store is not marked with this genesis file');
    await this.checkHashIndex(pass.checker.head.hash, 0);
  }

  /**
   * Reads the next blocks: with worker threads up to 32 blocks or 4,000 transactions, handed to the workers
   * (it returns as soon as they are handed over); inline, one block.
   */
  private async prepare(pass: Pass, from: number): Promise<Chunk> {
    const chunk: Chunk = { blocks: [], cache: pass.caches.open(), verified: Promise.resolve() };
    if (!this.opts.workers) {
      if (from <= this.ledger.height) chunk.blocks.push({ height: from, bytes: await this.ledger.store.getBlockBytes(from, COLD) });
      return chunk;
    }
    const txs: Uint8Array[] = [];
    for (let h = from; h <= this.ledger.height && chunk.blocks.length < 32 && txs.length < 4_000; h++) {
      const bytes = await this.ledger.store.getBlockBytes(h, COLD);
      chunk.blocks.push({ height: h, bytes });
      if (!bytes) break;
      try {
        txs.push(...decodeBlock(bytes, maxStoredBlockBytes(this.ledger.genesis)).txs);
      } catch {
        break; // the verification in order names it
      }
    }
    if (txs.length >= 64) {
      this.pool ??= new SignatureWorkerPool(2);
      // A failing worker only means the signatures get checked inline during execution.
      chunk.verified = preverifyTransactions(txs, this.pool, chunk.cache, this.ledger.genesis.hash).catch(() => undefined);
    }
    return chunk;
  }

  /**
   * New blocks after the pass reached the head. A block this process just committed was validated by its
   * consensus or sync (every signature, every rule): what can still go wrong is the disk, so the stored
   * block must be byte for byte the committed one, with its certificate, events and indexes. Blocks no
   * longer at hand are verified in full from the store. Full re-execution of everything returns with the
   * next rescan.
   */
  private async follow(pass: Pass): Promise<boolean> {
    try {
      while (!this.stopped && pass.height < this.ledger.height) {
        const h = pass.height + 1;
        const committed = this.recent.get(h);
        if (committed && bytesEqual(committed.executed.block.header.parent, pass.checker.head.hash)) {
          const { store } = this.ledger;
          const stored = await store.getBlockBytes(h);
          if (!stored || !bytesEqual(stored, encodeBlock(committed.executed.block))) throw new ChainFault(h, 'the stored block is not the block this node committed');
          pass.checker.adopt(committed.executed, await store.getCertificateBytes(h));
          await this.checkStored(pass, h, committed.executed);
        } else {
          await this.verifyBlock(pass, h, await this.ledger.store.getBlockBytes(h, COLD));
        }
        for (const old of this.recent.keys()) if (old <= h) this.recent.delete(old);
        this.recentTxs = [...this.recent.values()].reduce((n, c) => n + c.executed.txs.length, 0);
        this.verified = Math.max(this.verified, h);
        await this.throttle(1);
      }
      return true;
    } catch (err) {
      return this.fault(err);
    }
  }

  private async verifyBlock(pass: Pass, h: number, bytes: Uint8Array | undefined): Promise<void> {
    const block = pass.checker.decode(bytes, h);
    const executed = pass.checker.next(block, await this.ledger.store.getCertificateBytes(h, COLD));
    await this.checkStored(pass, h, executed);
  }

  /** What the store keeps beside a verified block: the block-hash index, the audit events, the index digests. */
  private async checkStored(pass: Pass, h: number, executed: ExecutedBlock): Promise<void> {
    await this.checkHashIndex(executed.hash, h);
    // The stored audit events must be exactly the events re-derived by executing the block.
    let next = 0;
    for await (const { key, index, bytes: value } of this.ledger.store.storedEventsOfBlock(h, COLD)) {
      if (index === undefined || !(index < executed.events.length)) throw new ChainFault(h, `stored audit event ${key} belongs to no transaction of the block`);
      if (index > next) throw new ChainFault(h, `audit event ${next} (transaction ${executed.txs[next]!.idHex.slice(0, 12)}…) is missing from the store`);
      if (!bytesEqual(value, executed.eventBytes[index]!)) {
        throw new ChainFault(h, `audit event ${index} (transaction ${executed.txs[index]!.idHex.slice(0, 12)}…) differs from the event the block's execution yields`);
      }
      next = index + 1;
    }
    if (next < executed.events.length) throw new ChainFault(h, `audit event ${next} (transaction ${executed.txs[next]!.idHex.slice(0, 12)}…) is missing from the store`);
    if (this.opts.checkPayloads) await this.checkPayloads(executed);
    pass.events += executed.events.length;
    executed.events.forEach((event, i) => {
      for (const { family, entry } of expectedIndexEntries(executed.txs[i]!.idHex, event, h, i)) pass.add(family, entry);
    });
  }

  /**
   * The block's payloads against the hashes it commits to. Unlike the chain, a payload can be healed: a
   * damaged or missing one is dropped and marked missing (readers get "not stored here", never bad bytes),
   * and the sync manager fetches a verified copy from peers; one a deletion should have purged is purged.
   */
  private async checkPayloads(executed: ExecutedBlock): Promise<void> {
    const { problems, checked } = await auditBlockPayloads(this.ledger.store, executed);
    this.payloads.checked += checked;
    if (problems.length === 0) return;
    for (const p of problems) {
      this.opts.logger.warn({ height: p.height, tx: p.tx, record: p.record, problem: p.problem }, p.action === 'repair' ? 'payload damaged or missing: repairing from peers' : 'payload of a deleted record still held: purging');
      if (p.action === 'repair') {
        await this.ledger.store.markPayloadMissing(p.tx);
        this.payloads.damaged++;
      } else {
        await this.ledger.store.purgePayload(p.tx);
        this.payloads.purged++;
      }
      this.payloads.recent.push(p);
      if (this.payloads.recent.length > RECENT_PAYLOAD_PROBLEMS) this.payloads.recent.shift();
    }
    if (problems.some((p) => p.action === 'repair')) this.opts.payloadsToRepair();
  }

  private async checkHashIndex(hashBytes: Uint8Array, h: number): Promise<void> {
    const at = await this.ledger.store.heightOfHash(toHex(hashBytes)).catch((err: unknown) => {
      if (err instanceof StoreDamage) return undefined;
      throw err;
    });
    if (at !== h) throw new ChainFault(h, 'the block-hash index does not lead to this block');
  }

  // ---- indexes and state ---------------------------------------------------------------------

  /** Indexes both ways and the state, against what the pass re-derived up to its height. */
  private async crossCheck(pass: Pass): Promise<boolean> {
    const started = (this.lastCrossCheck = Date.now());
    const H = pass.height;
    const { store } = this.ledger;
    // One snapshot: the store as of a single moment, while commits go on.
    const snapshot = store.snapshot();
    const atHead = store.head()?.height === H;
    try {
      if (atHead && !bytesEqual(store.head()!.hash, pass.checker.head.hash)) throw new ChainFault(H, 'the stored head marker names another block');
      for (const family of FAMILIES) {
        const actual = new SetDigest(pass.salt);
        for await (const batch of this.batches(store.indexEntryBatches(family, H, { snapshot, ...COLD }))) {
          for (const entry of batch) actual.add(entry);
        }
        if (!actual.equals(pass.digests.get(family)!)) {
          const found = await store.locateIndexProblem(family, H, snapshot, (n) => this.pace(n));
          throw new ChainFault(found?.height ?? H, `index inconsistency: ${found?.problem ?? `the ${INDEX_FAMILIES[family]} index differs from the events`}`);
        }
      }
      if (atHead) await this.checkState(pass, snapshot);
      return true;
    } catch (err) {
      return this.fault(err);
    } finally {
      await snapshot.close();
      this.crossCheckTook = Date.now() - started;
    }
  }

  /** The stored state must be exactly the state re-derived from genesis by executing every block. */
  private async checkState(pass: Pass, snapshot: StoreSnapshot): Promise<void> {
    const expected = new Map<string, Uint8Array>();
    for (const table of tableNames) for (const [key, value] of pass.checker.state.entries(table)) expected.set(stateEntryId(table, key), encodeCanonical(value));
    for await (const batch of this.batches(this.ledger.store.stateEntryBatches({ snapshot, ...COLD }))) {
      for (const [key, value] of batch) {
        const want = expected.get(key);
        if (!want) throw new ChainFault(pass.height, `state entry ${printable(key)} is not derived from any block`);
        if (!bytesEqual(want, value)) throw new ChainFault(pass.height, `state entry ${printable(key)} differs from the state the chain yields`);
        expected.delete(key);
      }
    }
    const missing = expected.keys().next();
    if (!missing.done) throw new ChainFault(pass.height, `state entry ${printable(missing.value)} is missing from the store`);
  }
}
