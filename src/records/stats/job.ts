import { fromHex, utf8 } from '../crypto/bytes.js';
import { sha256 } from '../crypto/hash.js';

/**
 * Values every aggregator of a job derives alike (issue 13). The verify key comes from the hash of the block
 * that finalized the job's query: unknown to every client while the batch was open, so no report can be
 * ground against it.
 */
export function verifyKeyFor(queryBlockHash: Uint8Array, jobId: string, size = 16): Uint8Array {
  return sha256(utf8('medledger-prio3-verify'), queryBlockHash, fromHex(jobId)).subarray(0, size);
}

/** statsAggregate `digest`: SHA-256 over the used reports' tx ids (lowercase hex), sorted, newline-joined. */
export function reportsDigest(usedTxIds: string[]): Uint8Array {
  return sha256(utf8([...usedTxIds].sort().join('\n')));
}
