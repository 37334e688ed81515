import { MedLedgerError } from '../records/errors.js';
import { apply } from '../records/state/apply.js';
import { decodeTxCached } from '../consensus/blockExecution.js';
import { leafHash } from '../consensus/merkle.js';
import type { Tx } from '../records/tx/types.js';
import type { Ledger } from './ledger.js';
import type { Mempool } from './mempool.js';
import { checkPayload } from './payloads.js';

export type Admission = { status: 'added'; tx: Tx } | { status: 'duplicate'; tx: Tx };

/**
 * Admission of a transaction into the mempool, shared by the API (a user's submission) and gossip (a
 * peer's): decode and verify once, check the payload, and pre-check validity against the committed
 * state so that replays and impersonations never reach a block proposal.
 */
export function admitTx(
  deps: { ledger: Ledger; mempool: Mempool },
  bytes: Uint8Array,
  payload: Uint8Array | undefined,
  opts: { viaHospital?: string; now: number },
): Admission {
  const tx = decodeTxCached(bytes, leafHash(bytes), deps.ledger.txCache);
  if (opts.viaHospital !== undefined && tx.tx.via !== opts.viaHospital) {
    throw new MedLedgerError('MALFORMED', `transaction names hospital ${tx.tx.via} as its source, but this node is ${opts.viaHospital}`);
  }
  if (deps.mempool.has(tx.idHex)) return { status: 'duplicate', tx };
  checkPayload(tx, payload);
  const result = apply(deps.ledger.state, tx, { height: deps.ledger.height + 1, index: 0, blockTime: opts.now });
  if (!result.valid) throw result.error;
  deps.mempool.add({ tx, ...(payload ? { payload } : {}), receivedAt: opts.now });
  return { status: 'added', tx };
}
