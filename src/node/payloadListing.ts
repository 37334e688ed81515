import { toHex } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import type { TxType } from '../records/tx/types.js';
import type { PayloadListing, PayloadListingEntry } from '../api/contract.js';
import type { Ledger } from './ledger.js';

/**
 * `GET /v1/payloads?from=&to=`: for each successful transaction of the height range that carries a payload,
 * what this replica holds of it — whether bytes are on disk and their SHA-256 (never the bytes), whether the
 * store references them, whether a deletion redacted them, whether they are marked missing. For record
 * content no longer held because its record was deleted, the deletion as this replica knows it (the auditor
 * checks it against the chain it verified, or against the deletion's inclusion proof when it is newer).
 *
 * Built from the stored audit events (their type, outcome and record), one range scan; a page ends at a
 * block boundary once it holds MAX_ENTRIES entries or has hashed MAX_HASHED_BYTES, and `to` says how far
 * it got. The auditor (`medledger verify --payloads`, client/verifyPayloads.ts) trusts none of it: it compares
 * the hashes with those the chain commits to, as it re-executed it.
 */
export const MAX_PAYLOAD_LIST_HEIGHTS = 1_000;
const MAX_ENTRIES = 2_000;
const MAX_HASHED_BYTES = 64 * 1024 * 1024;

/** Transaction types whose payload holds a record blob (content or a file version), and grants (wrapped keys). */
const BLOB_TYPES: ReadonlySet<TxType> = new Set<TxType>(['createRecord', 'copyRecord', 'updateRecord', 'attachFile', 'replaceFile']);
const GRANT_TYPES: ReadonlySet<TxType> = new Set<TxType>(['grantAccess', 'approveRequest']);

export async function listPayloads(ledger: Ledger, from: number, to: number): Promise<PayloadListing> {
  const { store } = ledger;
  const start = Math.max(1, from);
  const last = Math.min(to, ledger.height, start + MAX_PAYLOAD_LIST_HEIGHTS - 1);
  const payloads: PayloadListingEntry[] = [];
  const deletions = new Map<string, { tx: string; height: number } | null>();
  let covered = start - 1;
  let hashed = 0;
  if (last >= start) {
    let current = start;
    let full = false;
    for await (const { height, event } of store.eventsInHeights(start, last)) {
      if (height !== current) {
        // Every height before this one is complete: a full page ends here.
        if (payloads.length >= MAX_ENTRIES || hashed >= MAX_HASHED_BYTES) {
          covered = height - 1;
          full = true;
          break;
        }
        current = height;
      }
      if (event.outcome !== 'success') continue;
      const blob = BLOB_TYPES.has(event.type);
      if (!blob && !GRANT_TYPES.has(event.type)) continue;
      const holding = await store.payloadHolding(event.tx);
      // Bytes on disk count even when the store no longer references them: a purge must remove the file.
      const bytes = holding.bytes ?? store.payloadFile(event.tx);
      if (bytes) hashed += bytes.length;
      const entry: PayloadListingEntry = {
        tx: event.tx,
        height,
        kind: blob ? 'blob' : 'grant',
        held: bytes !== undefined,
        referenced: holding.referenced,
        ...(bytes ? { sha256: toHex(sha256(bytes)) } : {}),
        redacted: holding.redacted,
        missing: holding.missing,
      };
      if (blob && !bytes && event.record) {
        const deleted = await deletionOf(ledger, event.record, deletions);
        if (deleted) entry.deleted = deleted;
      }
      payloads.push(entry);
    }
    if (!full) covered = last;
  }
  return { head: ledger.height, from: start, to: covered, payloads };
}

/** The committed deletion of a record, from its audit index (newest first); null if it was not deleted. */
async function deletionOf(
  ledger: Ledger,
  record: string,
  cache: Map<string, { tx: string; height: number } | null>,
): Promise<{ tx: string; height: number } | null> {
  if (cache.has(record)) return cache.get(record)!;
  let found: { tx: string; height: number } | null = null;
  if (ledger.state.get('records', record)?.deleted) {
    let cursor: string | undefined;
    for (let page = 0; page < 20 && !found; page++) {
      const { events, cursor: next } = await ledger.queryEvents({ record, action: 'D', outcome: 'success' }, { limit: 50, ...(cursor ? { cursor } : {}) });
      const deletion = events.find((e) => e.type === 'deleteRecord');
      if (deletion) found = { tx: deletion.tx, height: deletion.height };
      if (!next) break;
      cursor = next;
    }
  }
  cache.set(record, found);
  return found;
}
