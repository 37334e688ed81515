import type { ExecutedBlock } from '../consensus/blockExecution.js';
import type { Certificate } from '../consensus/votes.js';
import type { CheckedPayload } from './payloads.js';

/**
 * A decided block on its way to the store, with everything derived from it on the way, so that nothing is
 * computed twice: the executed block (its header hash, transactions, events and state changes), the block's
 * encoding when it arrived encoded (sync), its commit certificate, and its checked payloads. Built once, by
 * the consensus engine for a block it decided or by sync for a downloaded one, and handed to the chain writer
 * (chainWriter.ts), which alone commits it.
 */
export interface FinalizedBlock {
  /** Validated against the parent: `executed.hash` is the header hash, computed when the block was first seen. */
  executed: ExecutedBlock;
  /** The certificate of 2f+1 precommits, checked against the validators by whoever built this. */
  cert: Certificate;
  /** The block's canonical encoding, when it came encoded (stored as is; otherwise the store encodes it). */
  bytes?: Uint8Array;
  /** Payloads that came with the block and passed the admission checks, by transaction id. */
  payloads: ReadonlyMap<string, CheckedPayload>;
  /** Ids of payloads a deletion had already redacted where they came from. */
  redacted?: ReadonlySet<string>;
}
