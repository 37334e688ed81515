import { bytesEqual } from '../records/crypto/bytes.js';
import { MedLedgerError } from '../records/errors.js';
import { apply } from '../records/state/apply.js';
import { toHex } from '../records/crypto/bytes.js';
import { decodeTx, verifyTxSignature } from '../records/tx/codec.js';
import { leafHash } from '../consensus/merkle.js';
import type { Tx } from '../records/tx/types.js';
import type { ApiAdmissionLimits } from './admissionLimits.js';
import { nonceCeiling } from './admissionLimits.js';
import type { Genesis } from '../consensus/genesis.js';
import type { Ledger } from './ledger.js';
import type { Mempool, PendingTx } from './mempool.js';
import { checkPayload } from './payloads.js';

export type Admission = { status: 'added'; tx: Tx; evicted: PendingTx[] } | { status: 'duplicate'; tx: Tx };

export interface AdmissionOptions {
  /** Set for the API: the transaction must name this node's hospital as its source. */
  viaHospital?: string;
  now: number;
  /** Set for submissions through this node's API (never for gossip): per-user rate, registrations per node. */
  api?: ApiAdmissionLimits;
}

/**
 * Admission of a transaction into the mempool, shared by the API (a user's submission) and gossip (a
 * peer's): decode and verify once, check the payload, and pre-check validity against the committed
 * state so that replays and impersonations never reach a block proposal. Nonces must not clash with a
 * pending transaction of the same user nor lie too far ahead (admissionLimits.ts); the mempool bounds
 * each user's share. Through the API, a user's submissions are rate-limited and new registrations are
 * limited per node.
 */
export function admitTx(
  deps: { ledger: Pick<Ledger, 'state' | 'height' | 'txCache'> & { genesis: Pick<Genesis, 'hash'> }; mempool: Mempool },
  bytes: Uint8Array,
  payload: Uint8Array | undefined,
  opts: AdmissionOptions,
): Admission {
  const { ledger, mempool } = deps;
  // Cheap checks first: a transaction that fails against the state costs a decode, never a signature check.
  const leafHex = toHex(leafHash(bytes));
  const cached = ledger.txCache.get(leafHex);
  const tx = cached ?? decodeTx(bytes, { verify: false });
  const t = tx.tx;
  if (opts.viaHospital !== undefined && t.via !== opts.viaHospital) {
    throw new MedLedgerError('MALFORMED', `transaction names hospital ${t.via} as its source, but this node is ${opts.viaHospital}`);
  }
  if (mempool.has(tx.idHex)) return { status: 'duplicate', tx };
  const user = ledger.state.get('users', t.actor);
  // A statsAggregate's actor is a hospital, whose nonce counter is in the hospitals table.
  const lastNonce = t.type === 'statsAggregate' ? ledger.state.get('hospitals', t.actor)?.lastNonce : user?.lastNonce;
  const ceiling = nonceCeiling(lastNonce ?? 0, mempool.pendingOf(t.actor), opts.now);
  if (t.nonce > ceiling) {
    throw new MedLedgerError('CONFLICT', `nonce ${t.nonce} of ${t.actor} is too far ahead (at most ${ceiling} now)`);
  }
  const result = apply(ledger.state, tx, { height: ledger.height + 1, index: 0, blockTime: opts.now, genesisHash: ledger.genesis.hash });
  if (!result.valid) throw result.error;
  if (!cached) {
    // Signed for this network: a transaction signed under another genesis hash fails here.
    if (!verifyTxSignature(tx, ledger.genesis.hash)) {
      throw new MedLedgerError('BAD_SIGNATURE', `transaction ${tx.idHex.slice(0, 12)} has an invalid signature`);
    }
    ledger.txCache.set(leafHex, tx);
  }
  if (opts.api) {
    if (t.type === 'registerPatient' || (t.type === 'activateUser' && !(user && bytesEqual(user.signKey, t.key)))) {
      // A registration or an activation attempt: no account's budget to charge, so the node's registration limit.
      if (!user || t.type === 'activateUser') opts.api.checkRegistration(opts.now);
    } else if (user && bytesEqual(user.signKey, t.key)) {
      // Only the holder of the user's key spends the user's budget (the signature was verified above).
      opts.api.takeTx(t.actor, opts.now);
    }
  }
  checkPayload(tx, payload);
  const added = mempool.add({ tx, ...(payload ? { payload } : {}), receivedAt: opts.now });
  if (!added.added) return { status: 'duplicate', tx };
  if (opts.api && (t.type === 'registerPatient' || t.type === 'activateUser')) opts.api.registered(opts.now);
  return { status: 'added', tx, evicted: added.evicted };
}
