import type { ExecutedBlock } from '../consensus/blockExecution.js';
import { bytesEqual } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { grantPayloadSchema, parsePayload } from '../records/envelope.js';
import { payloadKeys } from './payloads.js';
import { payloadKind } from '../records/payloadKind.js';
import type { LedgerStore } from './store/ledgerStore.js';

/**
 * What a replica must hold for the payloads of one committed block, checked against the hashes the chain
 * commits to: every payload of a successful transaction is present and matches its hash (a grant payload
 * that a deletion redacted can only be checked for structure), every wrapped key it carries is stored as it
 * carries it, and nothing of a deleted record is still held. Missing payloads already known to the sync
 * manager are counted, not reported again.
 */
export interface PayloadProblem {
  height: number;
  tx: string;
  record?: string;
  problem: string;
  /** repair: fetch a verified copy from peers; purge: remove what a deletion should have removed. */
  action: 'repair' | 'purge';
}

export async function auditBlockPayloads(
  store: LedgerStore,
  executed: ExecutedBlock,
): Promise<{ problems: PayloadProblem[]; checked: number; knownMissing: number }> {
  const h = executed.block.header.height;
  const problems: PayloadProblem[] = [];
  let checked = 0;
  let knownMissing = 0;
  for (const [i, tx] of executed.txs.entries()) {
    const kind = payloadKind(tx.tx);
    if (!kind || executed.events[i]?.outcome !== 'success' || !tx.tx.payload) continue;
    checked++;
    const record = kind.kind === 'blob' ? kind.record : undefined;
    const at = { height: h, tx: tx.idHex, ...(record ? { record } : {}) };
    const holding = await store.payloadHolding(tx.idHex);
    if (kind.kind === 'blob' && !(await store.blobIsLive(kind.patient, kind.blob))) {
      if (holding.referenced || holding.bytes) problems.push({ ...at, problem: 'payload still held after its record was deleted', action: 'purge' });
      continue;
    }
    if (holding.missing) {
      knownMissing++;
      continue;
    }
    if (!holding.bytes) {
      problems.push({ ...at, problem: holding.referenced ? 'payload file is missing' : 'payload is not stored', action: 'repair' });
      continue;
    }
    if (holding.redacted) {
      try {
        parsePayload(grantPayloadSchema, holding.bytes, 'redacted grant payload');
      } catch {
        problems.push({ ...at, problem: 'redacted grant payload is unreadable', action: 'repair' });
        continue;
      }
    } else if (!bytesEqual(sha256(holding.bytes), tx.tx.payload)) {
      problems.push({ ...at, problem: 'payload does not match the hash its transaction commits to', action: 'repair' });
      continue;
    }
    for (const { blob, user, key } of payloadKeys(kind, holding.bytes)) {
      if (kind.kind === 'grant' && !(await store.blobIsLive(kind.patient, blob))) continue;
      const entry = await store.wrappedKeyEntry(blob, user);
      // A later grant to the same user may have replaced the entry: then it belongs to that grant's payload.
      if (entry && entry.tx !== tx.idHex) continue;
      if (!entry || !bytesEqual(entry.key.epk, key.epk) || !bytesEqual(entry.key.w, key.w)) {
        problems.push({
          ...at,
          problem: `stored wrapped key of ${user} for ${blob} ${entry ? 'differs from' : 'is missing from'} the payload`,
          action: 'repair',
        });
        break;
      }
    }
  }
  return { problems, checked, knownMissing };
}
