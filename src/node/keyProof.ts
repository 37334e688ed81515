import type { AuditEvent } from '../records/audit.js';
import { MedLedgerError } from '../records/errors.js';
import type { KeyProofResponse } from '../api/contract.js';
import { proofOf } from './auditorView.js';
import type { Ledger } from './ledger.js';

/**
 * Where a user's public keys come from, for a client that will not take the node's word for them
 * (issue 9, item 4; checked in src/client/recipientKeys.ts): the inclusion proof of the committed
 * transaction that set them, or "genesis" for a hospital admin, whose keys are in the genesis file.
 *
 * A user's keys are set by a successful `registerPatient` (patients) or `activateUser` (staff), and since
 * issue 10 replaced by `rotateKeys` (the user), `recoverPatientKeys` (the patient's home hospital's admin)
 * or a re-activation after `revokeStaffKey`. The node serves the LATEST of these: each stores its signed time
 * as the user's `keysSince` (the first as `since`), so the transaction is found through the time index at
 * that millisecond (a handful of events).
 *
 * Known limit (currency): the proof shows that the keys WERE set by a committed transaction, not that no
 * later one replaced them; a node could serve an older proof together with the older keys. Closing this
 * needs a commitment to the key registry in the block header (a path against it), which is pending.
 */
export async function keyProofOf(ledger: Ledger, userId: string): Promise<KeyProofResponse> {
  const user = ledger.state.get('users', userId);
  if (!user) throw new MedLedgerError('NOT_FOUND', `unknown user ${userId}`);
  if (ledger.genesis.file.hospitals.some((h) => h.admin.id === userId)) return { user: userId, source: 'genesis' };
  const tx = await keyTxOf(ledger, userId, user.keysSince ?? user.since);
  return { user: userId, source: 'transaction', proof: await proofOf(ledger, tx) };
}

const setsKeyOf = (e: AuditEvent, userId: string): boolean =>
  e.outcome === 'success' &&
  (((e.type === 'registerPatient' || e.type === 'activateUser' || e.type === 'rotateKeys') && e.agent.user === userId) ||
    (e.type === 'recoverPatientKeys' && e.patient === userId));

async function keyTxOf(ledger: Ledger, userId: string, since: number): Promise<string> {
  let cursor: string | undefined;
  // Bounded: a millisecond holds at most a few blocks' worth of transactions.
  for (let page = 0; page < 100; page++) {
    const found = await ledger.queryEvents({ from: since, to: since }, { limit: 1_000, ...(cursor ? { cursor } : {}) });
    const event = found.events.find((e) => setsKeyOf(e, userId));
    if (event) return event.tx;
    if (!found.cursor) break;
    cursor = found.cursor;
  }
  throw new MedLedgerError('UNAVAILABLE', `the transaction that set the keys of ${userId} is not in this node's audit index`);
}
