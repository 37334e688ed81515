import type { Logger } from 'pino';
import { bytesEqual, toHex } from '../records/crypto/bytes.js';
import type { Signer } from '../records/crypto/signature.js';
import { isMedLedgerError, type MedLedgerError } from '../records/errors.js';
import type { Tx } from '../records/tx/types.js';
import { buildBlock, type ExecutedBlock } from '../consensus/blockExecution.js';
import { signProposal, type Proposal } from '../consensus/proposal.js';
import type { Ledger } from './ledger.js';
import type { Mempool, PendingTx } from './mempool.js';
import type { NodeMetrics } from './metrics.js';
import { admittedPayload, checkBlockPayloads, type CheckedPayload } from './payloads.js';

/** A block proposed at the open height, as this node judged it: executed at most once. */
export interface KnownBlock {
  proposal: Proposal;
  /** The header hash, computed once when the proposal was first seen or built. */
  hash: Uint8Array;
  hashHex: string;
  /** The block executed against the head; null: it is invalid (`error` says why). */
  executed: ExecutedBlock | null;
  /** Its payloads, checked (hashed and parsed) once, by transaction id: what the commit stores. */
  payloads: ReadonlyMap<string, CheckedPayload>;
  error?: string;
  /** Kept in the write-ahead log. */
  persisted: boolean;
}

/**
 * The proposals of the open height: one block executed per round (a second, different proposal for a round
 * is evidence against its proposer, never executed; a re-proposal of a known block costs nothing), every
 * block known by hash with its verdict, its execution and its checked payloads, and this node's own signed
 * proposals by round, until the height is decided.
 */
export class ProposalCache {
  private readonly known = new Map<string, KnownBlock>();
  /** First proposal hash seen for each round of this height. */
  private readonly firstOfRound = new Map<number, string>();
  private readonly ownByRound = new Map<number, Proposal>();

  constructor(private readonly deps: { ledger: Ledger; mempool: Mempool; logger: Logger; metrics?: NodeMetrics }) {}

  get(hashHex: string): KnownBlock | undefined {
    return this.known.get(hashHex);
  }

  /** The block first proposed for a round of this height. */
  firstOf(round: number): string | undefined {
    return this.firstOfRound.get(round);
  }

  /**
   * Takes up a proposal of the open height whose header hash is `hash`: its block is executed once, with
   * everything the commit path needs checked by the code admission uses (a block we vote for can always
   * be committed). 'conflict': another block came first for its round. null: it could not be checked (our
   * own bug, logged: not the proposer's fault).
   */
  take(p: Proposal, hash: Uint8Array): KnownBlock | 'conflict' | null {
    const hashHex = toHex(hash);
    const first = this.firstOfRound.get(p.round);
    if (first !== undefined && first !== hashHex) return 'conflict';
    this.firstOfRound.set(p.round, hashHex);
    const seen = this.known.get(hashHex);
    if (seen) return seen;
    const { ledger, logger } = this.deps;
    let known: KnownBlock;
    const started = performance.now();
    try {
      const executed = ledger.validateNext(p.block, { now: Date.now(), hash });
      const payloads = checkBlockPayloads(executed.txs, p.payloads, (tx, payload) => this.admitted(tx, payload));
      known = { proposal: p, hash, hashHex, executed, payloads, persisted: false };
      logger.debug({ height: p.height, round: p.round, txs: executed.txs.length, ms: Math.round(performance.now() - started) }, 'validated proposal');
    } catch (err) {
      if (!isMedLedgerError(err)) {
        logger.error({ height: p.height, round: p.round, err }, 'proposal could not be checked');
        this.firstOfRound.delete(p.round);
        return null;
      }
      known = { proposal: p, hash, hashHex, executed: null, payloads: new Map(), error: err.message, persisted: false };
      logger.warn({ height: p.height, round: p.round, reason: err.message }, 'invalid proposal');
    }
    this.deps.metrics?.validationSeconds.observe((performance.now() - started) / 1000);
    this.known.set(hashHex, known);
    return known;
  }

  /**
   * Builds and signs this node's block for `round` of the next height from mempool candidates (their
   * payloads checked at admission, carried), known from now on. The transactions that were invalid at
   * building leave the mempool and are returned.
   */
  async build(round: number, signer: Signer): Promise<{ known: KnownBlock; dropped: { entry: PendingTx; error: MedLedgerError }[] }> {
    const { ledger, mempool } = this.deps;
    const { genesis } = ledger;
    const pending = new Map(mempool.candidates(genesis.params.maxBlockTxs * 2).map((p) => [p.tx.idHex, p]));
    const { executed, dropped } = buildBlock({
      genesis,
      parent: ledger.headRef,
      lastCommit: await ledger.headCertificate(),
      state: ledger.state,
      candidates: [...pending.values()].map((p) => p.tx),
      sizeOf: (tx) => tx.bytes.length + (pending.get(tx.idHex)?.payload?.length ?? 0),
      round,
      time: Date.now(),
      signer,
    });
    const removed = dropped.flatMap(({ tx, error }) => {
      const entry = mempool.remove(tx.idHex);
      return entry ? [{ entry, error }] : [];
    });
    const height = executed.block.header.height;
    const payloads = executed.txs.map((t) => pending.get(t.idHex)?.payload ?? null);
    const proposal = signProposal(
      genesis.file.network,
      { height, round, validRound: -1, block: executed.block, payloads },
      signer,
      genesis.hash,
      executed.hash,
    );
    const known: KnownBlock = {
      proposal,
      hash: executed.hash,
      hashHex: executed.hashHex,
      executed,
      payloads: admittedPayloads(executed.txs, pending),
      persisted: false,
    };
    this.known.set(executed.hashHex, known);
    this.firstOfRound.set(round, executed.hashHex);
    this.ownByRound.set(round, proposal);
    return { known, dropped: removed };
  }

  /** Proposes a known block again, in a later round (its header and header signature stay). */
  repropose(known: KnownBlock, round: number, validRound: number, signer: Signer): Proposal {
    const { genesis } = this.deps.ledger;
    const { height, block, payloads } = known.proposal;
    const proposal = signProposal(genesis.file.network, { height, round, validRound, block, payloads }, signer, genesis.hash, known.hash);
    this.ownByRound.set(round, proposal);
    return proposal;
  }

  /** What this node proposed in a round of this height. */
  own(round: number): Proposal | undefined {
    return this.ownByRound.get(round);
  }

  /** The height is decided. */
  clear(): void {
    this.known.clear();
    this.firstOfRound.clear();
    this.ownByRound.clear();
  }

  /**
   * A payload admission accepted into the mempool with exactly these bytes: parsed for the store, not checked
   * again. (Admission's parse is not kept in the mempool: a full mempool of it would not fit the heap.)
   */
  private admitted(tx: Tx, payload: Uint8Array): CheckedPayload | undefined {
    const entry = this.deps.mempool.get(tx.idHex);
    return entry?.payload && bytesEqual(entry.payload, payload) ? admittedPayload(tx, payload) : undefined;
  }
}

/** The payloads of a block built from mempool entries (accepted at admission): parsed once, for the store. */
function admittedPayloads(txs: Tx[], entries: ReadonlyMap<string, PendingTx>): Map<string, CheckedPayload> {
  const out = new Map<string, CheckedPayload>();
  for (const tx of txs) {
    const payload = entries.get(tx.idHex)?.payload;
    const admitted = payload && admittedPayload(tx, payload);
    if (admitted) out.set(tx.idHex, admitted);
  }
  return out;
}
