import { ChainFault } from '../../consensus/chainCheck.js';
import { bytesEqual } from '../../records/crypto/bytes.js';
import { encodeCanonical } from '../../records/encoding.js';
import { tableNames } from '../../records/state/types.js';
import { stateEntryId, type LedgerStore, type StoreSnapshot } from '../store/ledgerStore.js';
import type { Pass } from './chainPass.js';
import { COLD, type Pacer } from './schedule.js';

const printable = (key: string) => key.replace(/\0/g, '\\0');

/** The stored state must be exactly the state re-derived from genesis by executing every block. */
export async function checkState(store: LedgerStore, pass: Pass, snapshot: StoreSnapshot, pacer: Pacer): Promise<void> {
  const expected = new Map<string, Uint8Array>();
  for (const table of tableNames) for (const [key, value] of pass.checker.state.entries(table)) expected.set(stateEntryId(table, key), encodeCanonical(value));
  for await (const batch of pacer.batches(store.stateEntryBatches({ snapshot, ...COLD }))) {
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
