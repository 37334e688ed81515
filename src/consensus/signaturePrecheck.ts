import { bytesEqual, toHex } from '../records/crypto/bytes.js';
import { verifySignature, type SignatureVerifier } from '../records/crypto/signature.js';
import { SignatureWorkerPool, type SignatureCheck } from '../records/crypto/signatureWorkers.js';
import { decodeTx, txSigningMessage } from '../records/tx/codec.js';
import type { Tx } from '../records/tx/types.js';
import { headerHash, headerSigningMessage, type Block } from './block.js';
import type { TxCache } from './blockExecution.js';
import type { Genesis } from './genesis.js';
import { leafHash } from './merkle.js';
import { voteSigningMessage, type Certificate } from './votes.js';

/**
 * The signature pre-check of bulk verification (sync's download, the integrity monitor's chain pass,
 * `medledger verify`): blocks are read in order in chunks, each chunk's signatures are checked on worker
 * threads while the main thread executes the chunk before it, and the valid ones are handed to validation
 * (`validateBlock`, `ChainChecker`) as a `TxCache` and a `SignatureVerifier`. Validation stays the judge:
 * whatever the workers found invalid, could not decode or did not check is verified again inline and named
 * there, so a pre-check only saves work and never changes a verdict. Pure apart from the worker pool.
 */
export const PRECHECK_LIMITS = {
  /** A chunk closes at this many blocks, */
  maxBlocks: 32,
  /** or at this many transactions (a chunk's decoded transactions are held until it is executed). */
  maxTxs: 4_000,
  /** By default, fewer signatures than this are left to validation: the round trip to a worker would cost more. */
  minSignatures: 64,
} as const;

/** What a pre-check verifies: transaction signatures, proposers' header signatures, certificates. */
export interface PrecheckKinds {
  txs: boolean;
  headers: boolean;
  /** Those a block carries (its parent's) and those given beside it (its own, stored or served). */
  certificates: boolean;
}

export const ALL_SIGNATURES: PrecheckKinds = { txs: true, headers: true, certificates: true };

/** One block to pre-check (undefined: not decodable, left to validation) and certificates of it. */
export interface SignedBlock {
  block: Block | undefined;
  certificates?: (Certificate | undefined)[];
}

/** Where valid signatures land: transactions by leaf hash, other signatures (by signature) with their key and message. */
export interface PrecheckTarget {
  txCache: TxCache;
  signatures?: Map<string, { key: Uint8Array; message: Uint8Array }>;
}

export interface PrecheckedChunk<T> {
  items: T[];
  /** Where this chunk's verdicts land. */
  into: PrecheckTarget;
  /** Settles once the workers are done with the chunk; never rejects (a worker failure leaves all to validation). */
  verified: Promise<void>;
}

export class SignaturePrecheck {
  private pool: SignatureWorkerPool | undefined;
  private closed = false;

  /**
   * `workers`: threads of the pool, started at the first chunk worth a worker (default: up to 4, one per core).
   * `minSignatures`: a batch with fewer is left to validation (default PRECHECK_LIMITS.minSignatures).
   */
  constructor(
    private readonly genesis: Genesis,
    private readonly opts: { kinds: PrecheckKinds; workers?: number; minSignatures?: number },
  ) {}

  /**
   * Checks the signatures of `blocks` on the workers, each distinct one once; valid ones land in `into`.
   * Decoding happens now, on the calling thread; the promise settles when the workers are done.
   */
  check(blocks: Iterable<SignedBlock>, into: PrecheckTarget): Promise<void> {
    const checks: SignatureCheck[] = [];
    const accept: (() => void)[] = [];
    const { kinds } = this.opts;
    const { genesis } = this;
    const seen = new Set<string>();
    const signatures = new Map<string, { key: Uint8Array; message: Uint8Array }>();
    const signature = (key: Uint8Array, message: Uint8Array, sig: Uint8Array) => {
      const hex = toHex(sig);
      const known = signatures.get(hex);
      if ((known && bytesEqual(known.key, key) && bytesEqual(known.message, message)) || !into.signatures) return;
      signatures.set(hex, { key, message });
      checks.push({ key, message, sig });
      accept.push(() => into.signatures!.set(hex, { key, message }));
    };
    for (const { block, certificates } of blocks) {
      if (!block) continue;
      if (kinds.txs) {
        for (const bytes of block.txs) {
          const leafHex = toHex(leafHash(bytes));
          if (seen.has(leafHex)) continue;
          seen.add(leafHex);
          let tx: Tx;
          try {
            tx = decodeTx(bytes, { verify: false });
          } catch {
            continue; // malformed: validation names it
          }
          checks.push({ key: tx.tx.key, message: txSigningMessage(genesis.hash, tx.id), sig: tx.sig });
          accept.push(() => into.txCache.set(leafHex, tx));
        }
      }
      const proposer = kinds.headers ? genesis.validators[block.header.proposer] : undefined;
      if (proposer) signature(proposer.key, headerSigningMessage(headerHash(block.header), proposer.genesisHash), block.sig);
      if (kinds.certificates) {
        for (const cert of [block.lastCommit, ...(certificates ?? [])]) {
          for (const { validator, sig } of cert?.sigs ?? []) {
            const v = genesis.validators[validator];
            const vote = { type: 'precommit', network: genesis.file.network, height: cert!.height, round: cert!.round, validator, block: cert!.block } as const;
            if (v) signature(v.key, voteSigningMessage(vote, v.genesisHash), sig);
          }
        }
      }
    }
    if (checks.length === 0 || checks.length < (this.opts.minSignatures ?? PRECHECK_LIMITS.minSignatures) || this.closed) return Promise.resolve();
    this.pool ??= new SignatureWorkerPool(this.opts.workers);
    return this.pool.verify(checks).then(
      (ok) => ok.forEach((valid, i) => valid && accept[i]!()),
      () => undefined,
    );
  }

  /**
   * Reads `source` in order into chunks (PRECHECK_LIMITS), hands each complete chunk to the workers and
   * yields the chunks in order. While the consumer holds one chunk, up to `ahead` (default 1) more are read
   * and checked. An error of the source arrives after the chunks read before it. Leaving the loop early
   * does not wait for a pending read of the source: it is closed once that read returns.
   */
  async *chunks<T>(
    source: AsyncIterable<T>,
    opts: { signed: (item: T) => SignedBlock; into: () => PrecheckTarget; ahead?: number },
  ): AsyncGenerator<PrecheckedChunk<T>> {
    const ahead = Math.max(1, opts.ahead ?? 1);
    const ready: PrecheckedChunk<T>[] = [];
    let finished = false;
    let failure: { err: unknown } | undefined;
    let cancelled = false;
    let wakeConsumer: (() => void) | undefined;
    let wakeProducer: (() => void) | undefined;
    const produce = async () => {
      let items: T[] = [];
      let signed: SignedBlock[] = [];
      let txs = 0;
      const flush = async () => {
        const into = opts.into();
        ready.push({ items, into, verified: this.check(signed, into) });
        items = [];
        signed = [];
        txs = 0;
        wakeConsumer?.();
        while (!cancelled && ready.length >= ahead) await new Promise<void>((resolve) => (wakeProducer = resolve));
      };
      try {
        for await (const item of source) {
          if (cancelled) break;
          const s = opts.signed(item);
          items.push(item);
          signed.push(s);
          txs += s.block?.txs.length ?? 0;
          if (items.length >= PRECHECK_LIMITS.maxBlocks || txs >= PRECHECK_LIMITS.maxTxs) await flush();
          if (cancelled) break;
        }
        if (items.length > 0 && !cancelled) await flush();
      } catch (err) {
        failure = { err };
      } finally {
        finished = true;
        wakeConsumer?.();
      }
    };
    void produce();
    try {
      while (true) {
        const chunk = ready.shift();
        if (chunk) {
          wakeProducer?.();
          yield chunk;
          continue;
        }
        if (finished) {
          if (failure) throw failure.err;
          return;
        }
        await new Promise<void>((resolve) => (wakeConsumer = resolve));
      }
    } finally {
      cancelled = true;
      wakeProducer?.();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
    this.pool = undefined;
  }
}

/**
 * The verdicts of the chunks in flight (the one being executed and those checked ahead of it), served to
 * validation as one `TxCache` and one `SignatureVerifier`. A chunk's target is dropped once it is executed.
 */
export class PrecheckCache implements TxCache {
  private readonly live = new Set<Required<PrecheckTarget>>();
  /** Transactions validation decoded and verified itself, kept until the next drop. */
  private readonly spill = new Map<string, Tx>();

  open(): Required<PrecheckTarget> {
    const target = { txCache: new Map<string, Tx>(), signatures: new Map<string, { key: Uint8Array; message: Uint8Array }>() };
    this.live.add(target);
    return target;
  }

  drop(target: PrecheckTarget): void {
    this.live.delete(target as Required<PrecheckTarget>);
    this.spill.clear();
  }

  /** Drops every chunk's target (a pass that ended early). */
  clear(): void {
    this.live.clear();
    this.spill.clear();
  }

  get(leafHex: string): Tx | undefined {
    for (const t of this.live) {
      const tx = t.txCache.get(leafHex);
      if (tx) return tx;
    }
    return this.spill.get(leafHex);
  }

  set(leafHex: string, tx: Tx): void {
    this.spill.set(leafHex, tx);
  }

  /** `verifySignature`, skipped for exactly the key, message and signature a worker found valid. */
  readonly verify: SignatureVerifier = (key, message, sig) => {
    const hex = toHex(sig);
    for (const t of this.live) {
      const known = t.signatures.get(hex);
      if (known && bytesEqual(known.key, key) && bytesEqual(known.message, message)) return true;
    }
    return verifySignature(key, message, sig);
  };
}
