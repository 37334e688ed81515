import { randomBytes } from 'node:crypto';
import { decodeBlock, encodeBlock } from '../../consensus/block.js';
import { ChainChecker, ChainFault, maxStoredBlockBytes, parseCertificate } from '../../consensus/chainCheck.js';
import { ALL_SIGNATURES, PrecheckCache, SignaturePrecheck, type SignedBlock } from '../../consensus/signaturePrecheck.js';
import type { Certificate } from '../../consensus/votes.js';
import { bytesEqual } from '../../records/crypto/bytes.js';
import type { CommittedBlock, Ledger } from '../ledger.js';
import type { IndexFamily } from '../store/ledgerStore.js';
import { FAMILIES, SetDigest } from './indexDigests.js';
import { COLD, type Pacer } from './schedule.js';
import type { StoredChecks } from './storedChecks.js';

/** One pass from genesis: the re-derived chain and state, and the digests of the index entries it implies. */
export class Pass {
  readonly checker: ChainChecker;
  /** What the signature workers found valid, per chunk in flight (unused without workers). */
  readonly caches = new PrecheckCache();
  genesisChecked = false;
  /** Audit events re-derived so far in this pass. */
  events = 0;
  readonly salt = randomBytes(16).toString('hex');
  readonly digests = new Map<IndexFamily, SetDigest>(FAMILIES.map((family) => [family, new SetDigest(this.salt)]));
  readonly startedAt = Date.now();
  /** With worker threads the checker reads their verdicts from the chunk caches; inline, it keeps nothing. */
  constructor(ledger: Ledger, workers: boolean) {
    this.checker = new ChainChecker(ledger.genesis, workers ? { txCache: this.caches, verify: this.caches.verify } : {});
  }
  get height(): number {
    return this.checker.height;
  }
  add(family: IndexFamily, entry: string): void {
    this.digests.get(family)!.add(entry);
  }
}

interface StoredBlock {
  height: number;
  bytes: Uint8Array | undefined;
  cert: Uint8Array | undefined;
}

/**
 * The chain, block by block: a pass re-executes every stored block from genesis (ChainChecker: hash links,
 * proposer signatures, Merkle roots, carried and stored certificates, every transaction signature and
 * permission rule), with its signatures checked ahead on worker threads when `workers` is set; then it
 * follows, checking each block committed later in the store as it arrives: byte for byte the block this
 * node's consensus or sync validated and executed, with its certificate, events and index entries — so
 * signatures are not checked twice on the hot path. Problems are thrown (ChainFault, StoreDamage).
 */
export class ChainPass {
  /** Highest height verified so far. */
  verified = 0;
  private precheck: SignaturePrecheck | undefined;
  /** Blocks this process committed lately, as consensus or sync executed them (bounded by transactions). */
  private readonly recent = new Map<number, CommittedBlock>();
  private recentTxs = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly workers: boolean,
    private readonly pacer: Pacer,
    private readonly stored: StoredChecks,
  ) {}

  /** Keeps a block this process just committed for `follow`. */
  committed(c: CommittedBlock): void {
    this.recent.set(c.executed.block.header.height, c);
    this.recentTxs += c.executed.txs.length;
    for (const [h, old] of this.recent) {
      if (this.recentTxs <= 8_000 || this.recent.size <= 1) break;
      this.recent.delete(h);
      this.recentTxs -= old.executed.txs.length;
    }
  }

  /** Verifies stored blocks from the pass' height up to the ledger's head. */
  async catchUp(pass: Pass, duty: number): Promise<void> {
    if (!pass.genesisChecked) {
      await this.checkGenesis(pass);
      pass.genesisChecked = true;
    }
    if (!this.workers) {
      // One block at a time, every signature checked inline: a node's background check favours memory.
      for await (const block of this.storedBlocks(pass.height + 1)) {
        if (!(await this.step(pass, block, duty))) return;
      }
      return;
    }
    // While the main thread executes one chunk, the workers check the next one's signatures.
    this.precheck ??= new SignaturePrecheck(this.ledger.genesis, { kinds: ALL_SIGNATURES, workers: 2 });
    const chunks = this.precheck.chunks(this.storedBlocks(pass.height + 1), { signed: (b) => this.signed(b), into: () => pass.caches.open() });
    try {
      for await (const chunk of chunks) {
        await chunk.verified;
        for (const block of chunk.items) if (!(await this.step(pass, block, duty))) return;
        pass.caches.drop(chunk.into);
      }
    } finally {
      pass.caches.clear();
    }
  }

  /** Verifies one block; false once the monitor stops. */
  private async step(pass: Pass, { height, bytes, cert }: StoredBlock, duty: number): Promise<boolean> {
    await this.verifyBlock(pass, height, bytes, cert);
    this.verified = Math.max(this.verified, height);
    await this.pacer.throttle(duty);
    return !this.pacer.stopped;
  }

  /** The stored blocks from `from` to the head (as it moves on), with their certificates. */
  private async *storedBlocks(from: number): AsyncGenerator<StoredBlock> {
    const { store } = this.ledger;
    for (let h = from; !this.pacer.stopped && h <= this.ledger.height; h++) {
      yield { height: h, bytes: await store.getBlockBytes(h, COLD), cert: await store.getCertificateBytes(h, COLD) };
    }
  }

  /** What the workers check of a stored block; what does not decode is left to the verification in order, which names it. */
  private signed({ height, bytes, cert }: StoredBlock): SignedBlock {
    let certificate: Certificate | undefined;
    try {
      certificate = parseCertificate(cert, height);
    } catch {
      certificate = undefined;
    }
    try {
      return { block: bytes && decodeBlock(bytes, maxStoredBlockBytes(this.ledger.genesis)), certificates: [certificate] };
    } catch {
      return { block: undefined };
    }
  }

  /**
   * New blocks after the pass reached the head. A block this process just committed was validated by its
   * consensus or sync (every signature, every rule): what can still go wrong is the disk, so the stored
   * block must be byte for byte the committed one, with its certificate, events and indexes. Blocks no
   * longer at hand are verified in full from the store. Full re-execution of everything returns with the
   * next rescan.
   */
  async follow(pass: Pass): Promise<void> {
    const { store } = this.ledger;
    while (!this.pacer.stopped && pass.height < this.ledger.height) {
      const h = pass.height + 1;
      const committed = this.recent.get(h);
      if (committed && bytesEqual(committed.executed.block.header.parent, pass.checker.head.hash)) {
        const stored = await store.getBlockBytes(h);
        if (!stored || !bytesEqual(stored, encodeBlock(committed.executed.block)))
          throw new ChainFault(h, 'the stored block is not the block this node committed');
        pass.checker.adopt(committed.executed, await store.getCertificateBytes(h));
        await this.stored.check(pass, h, committed.executed);
      } else {
        await this.verifyBlock(pass, h, await store.getBlockBytes(h, COLD), await store.getCertificateBytes(h, COLD));
      }
      for (const old of this.recent.keys()) if (old <= h) this.recent.delete(old);
      this.recentTxs = [...this.recent.values()].reduce((n, c) => n + c.executed.txs.length, 0);
      this.verified = Math.max(this.verified, h);
      await this.pacer.throttle(1);
    }
  }

  private async verifyBlock(pass: Pass, h: number, bytes: Uint8Array | undefined, cert: Uint8Array | undefined): Promise<void> {
    const block = pass.checker.decode(bytes, h);
    const executed = pass.checker.next(block, cert);
    await this.stored.check(pass, h, executed);
  }

  private async checkGenesis(pass: Pass): Promise<void> {
    const { store } = this.ledger;
    pass.checker.checkGenesisBlock(await store.getBlockBytes(0));
    const marker = await store.genesisMarker();
    if (!marker || !bytesEqual(marker, this.ledger.genesis.hash)) throw new ChainFault(0, 'the store is not marked with this genesis file');
    await this.stored.checkHashIndex(pass.checker.head.hash, 0);
  }

  async close(): Promise<void> {
    await this.precheck?.close();
    this.precheck = undefined;
  }
}
