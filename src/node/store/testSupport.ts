import type { LedgerStore } from './ledgerStore.js';
import type { Level } from './values.js';

/**
 * TEST-ONLY, like crashPoint.ts: the raw LevelDB under a store and its key layout, for tests that alter the
 * database on purpose (as an intruder or a failing disk would) or inspect it byte for byte. Nothing in
 * src/ imports this file; the node itself reads and writes only through LedgerStore.
 */
export { indexKey, K, seqKey } from './keys.js';
export type { Level as RawLevel } from './values.js';

export function rawLevel(store: LedgerStore): Level {
  return store['db'];
}
