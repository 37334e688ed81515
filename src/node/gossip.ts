import { z } from 'zod';
import type { Logger } from 'pino';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { isMedLedgerError } from '../records/errors.js';
import { bytes, uintSchema } from '../records/ids.js';
import { MAX_TX_BYTES, MAX_PAYLOAD_BYTES } from '../records/tx/types.js';
import { proposalSchema, type Proposal } from '../consensus/proposal.js';
import { signedVoteSchema, verifyVote, type SignedVote } from '../consensus/votes.js';
import { MAX_ROUNDS_AHEAD } from '../consensus/voteBook.js';
import { headerHash } from '../consensus/block.js';
import type { ConsensusEngine } from './consensusEngine.js';
import type { Ledger } from './ledger.js';
import type { Mempool } from './mempool.js';
import type { NodeMetrics } from './metrics.js';
import { GossipError, type GossipHandler, type WeighedVerdict } from './p2p/verdict.js';
import { admitTx } from './txAdmission.js';
import { txIdOfBytes } from '../records/tx/codec.js';

/**
 * Gossip wire formats and validation (PROTOCOL.md §6.2). Validation decides accept / reject / ignore and never
 * changes chain state itself: accepted transactions enter the mempool, accepted consensus messages go to
 * the engine. A validator returns its accept; it refuses a message by throwing a GossipError (p2p/verdict.ts):
 * reject for provably bad data (the sender is penalised), ignore for data that is merely useless now
 * (duplicates, stale heights, races). Anything else a validator throws is our bug: p2p/verdict.ts ignores the
 * message and charges nothing.
 */
export const TOPICS = ['tx', 'block', 'vote'] as const;

/** Transactions per gossip batch: what one message can make a node decode (and, if they pass, verify). */
export const MAX_TX_BATCH = 1_000;
const txBatchSchema = z.strictObject({
  txs: z
    .array(z.strictObject({ tx: bytes(), payload: bytes().optional() }))
    .min(1)
    .max(MAX_TX_BATCH),
});

/**
 * What a failed transaction in a batch costs its sender, in reject units (a peer is cut off at 20 units a
 * minute). Provably bad ones (forged, malformed, oversized) cost a full unit; ones that are merely not valid
 * here (unknown user, stale time, a used nonce), which an honest peer may relay in a race, cost a decode and
 * so a fiftieth; one already final costs nothing (see below).
 */
const PROVABLY_BAD = new Set(['MALFORMED', 'BAD_SIGNATURE', 'TOO_LARGE']);
const NOT_VALID_HERE = new Set(['UNKNOWN_ACTOR', 'KEY_MISMATCH', 'BAD_TIME', 'REPLAY']);
const NOT_VALID_HERE_COST = 1 / 50;
/** `n` makes a deliberate re-send a new gossip message (ids are content hashes). */
const proposalMessageSchema = z.strictObject({ proposal: proposalSchema, n: uintSchema });
const votesMessageSchema = z.strictObject({ votes: z.array(signedVoteSchema).min(1).max(64), n: uintSchema });

export function maxGossipBytes(maxBlockBytes: number): number {
  return maxBlockBytes + 256 * 1024;
}

export function encodeTxBatch(txs: { tx: Uint8Array; payload?: Uint8Array }[]): Uint8Array {
  return encodeCanonical({ txs });
}

let resendNonce = 0;
export function encodeProposal(proposal: Proposal): Uint8Array {
  return encodeCanonical({ proposal, n: resendNonce++ });
}
export function encodeVotes(votes: SignedVote[]): Uint8Array {
  return encodeCanonical({ votes, n: resendNonce++ });
}

function parse<T>(schema: z.ZodType<T>, data: Uint8Array): T | null {
  try {
    const parsed = schema.safeParse(decodeCanonical(data, 'gossip message', { requireCanonical: false }));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export interface GossipDeps {
  ledger: Ledger;
  mempool: Mempool;
  engine: ConsensusEngine;
  logger: Logger;
  /** Admission times and refusals of gossiped transactions are counted here. */
  metrics?: NodeMetrics;
}

export function gossipHandlers(deps: GossipDeps): Record<(typeof TOPICS)[number], GossipHandler> {
  const { ledger, mempool, engine, logger, metrics } = deps;
  const admit = (item: { tx: Uint8Array; payload?: Uint8Array | undefined }, now: number) => {
    const run = () => admitTx({ ledger, mempool }, item.tx, item.payload, { now });
    return metrics ? metrics.admission('gossip', run) : run();
  };

  /** A verdict per transaction: the good ones of a batch are admitted whatever the others are. */
  const tx: GossipHandler = {
    async validate(data, from): Promise<WeighedVerdict> {
      const batch = parse(txBatchSchema, data);
      if (!batch) throw GossipError.reject('malformed transaction batch');
      let added = 0;
      let bad = 0;
      let doubtful = 0;
      const now = Date.now();
      for (const item of batch.txs) {
        if (item.tx.length > MAX_TX_BYTES || (item.payload?.length ?? 0) > MAX_PAYLOAD_BYTES) {
          metrics?.rejected('gossip', 'TOO_LARGE');
          bad++;
          continue;
        }
        try {
          const admission = admit(item, now);
          if (admission.status === 'added') added++;
        } catch (err) {
          if (!isMedLedgerError(err)) {
            metrics?.rejected('gossip', err);
            // Our own bug, not the sender's fault: log it, charge nothing.
            logger.error({ from, err }, 'gossiped transaction could not be checked');
            continue;
          }
          // A transaction that is already final costs nothing: an honest node's batch can leave (or be
          // forwarded) after the block holding its transactions was committed everywhere, and a replayed final
          // transaction costs us a decode and one lookup, no signature check.
          if (err.code === 'REPLAY' && (await ledger.txLocation(txIdOfBytes(item.tx)))) continue;
          metrics?.rejected('gossip', err);
          if (PROVABLY_BAD.has(err.code)) bad++;
          else if (NOT_VALID_HERE.has(err.code)) doubtful++;
        }
      }
      if (added > 0) engine.onMempoolTx();
      const penalty = bad + doubtful * NOT_VALID_HERE_COST;
      if (bad > 0) logger.debug({ from, bad, doubtful, added }, 'rejected gossiped transactions');
      // A batch with provably bad content is not forwarded; the good transactions in it stay in our mempool.
      if (bad > 0) throw GossipError.reject('provably bad transactions in the batch', penalty);
      if (added === 0) throw GossipError.ignore('no new transaction', penalty);
      return { verdict: 'accept', penalty };
    },
  };

  const block: GossipHandler = {
    validate(data, from): 'accept' {
      const msg = parse(proposalMessageSchema, data);
      if (!msg) throw GossipError.reject('malformed proposal message');
      const p = msg.proposal;
      // Old heights and rounds beyond the window are dropped before the signature check (the latter charged).
      if (p.height <= ledger.height) throw GossipError.ignore('proposal for a final height');
      if (p.height === ledger.height + 1 && p.round > engine.round + MAX_ROUNDS_AHEAD)
        throw GossipError.ignore('proposal round beyond the window', NOT_VALID_HERE_COST);
      // The block's header hash, computed once here and carried to the engine (and on to the commit).
      const hash = headerHash(p.block.header);
      const problem = engine.checkProposal(p, hash);
      if (problem) {
        logger.debug({ from, height: p.height, problem }, 'rejected proposal');
        throw GossipError.reject(`proposal: ${problem}`);
      }
      if (p.height === ledger.height + 1) {
        // A proposal for the next height is executed now: an invalid block is provably bad.
        const verdict = engine.assess(p, hash);
        if (verdict === 'invalid') throw GossipError.reject(`invalid block at height ${p.height}`);
        if (verdict === 'ignore') throw GossipError.ignore('proposal not for the current round window');
      }
      engine.onProposal(p, from, hash);
      return 'accept';
    },
  };

  /**
   * Votes: a signature is checked only for a vote that could still change something here. Duplicates and old
   * heights are free (peers re-send); votes beyond the round window or into a full slot cost their sender a
   * fiftieth of a reject unit each, a forged signature a full unit.
   */
  const vote: GossipHandler = {
    validate(data, from): WeighedVerdict {
      const msg = parse(votesMessageSchema, data);
      if (!msg) throw GossipError.reject('malformed votes message');
      const validators = ledger.genesis.validators;
      const useful: SignedVote[] = [];
      let excess = 0;
      for (const v of msg.votes) {
        if (v.network !== ledger.genesis.file.network || v.validator >= validators.length)
          throw GossipError.reject('vote of another network or an unknown validator');
        const judged = engine.judgeVote(v);
        if (judged === 'excess') excess++;
        if (judged !== 'useful') continue;
        if (!verifyVote(v, validators)) throw GossipError.reject('forged vote signature');
        useful.push(v);
      }
      if (useful.length === 0) throw GossipError.ignore('no useful vote', excess * NOT_VALID_HERE_COST);
      for (const v of useful) engine.onVote(v, from);
      return { verdict: 'accept', penalty: excess * NOT_VALID_HERE_COST };
    },
  };

  return { tx, block, vote };
}
