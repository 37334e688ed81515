import { actionOf, type AuditEvent } from '../audit.js';
import { verifyActivation } from '../activation.js';
import { verifyKeyConsent } from '../rotation.js';
import { bytesEqual } from '../crypto/bytes.js';
import { MedLedgerError } from '../errors.js';
import type { Tx, TxType, UnsignedTx } from '../tx/types.js';
import { batchOf } from '../stats/batches.js';
import { authorize, type Decision } from './permissions.js';
import { authorizeStatsAggregate, networkInfo } from './statsRules.js';
import { OverlayState } from './memoryState.js';
import type { Hospital, Invitation, StateChange, StateView, User } from './types.js';

export interface ApplyContext {
  height: number;
  index: number;
  /** The block's time: the reference for the transaction time window, so validation is deterministic. */
  blockTime: number;
  /** SHA-256 of the genesis file: activation codes sign under it (records/activation.ts). */
  genesisHash: Uint8Array;
}

/** How far a transaction's signed time may lie before / after the block that includes it. */
export const TX_MAX_AGE_MS = 10 * 60_000;
export const TX_MAX_FUTURE_MS = 60_000;

export type ApplyResult = { valid: true; event: AuditEvent; changes: StateChange[] } | { valid: false; error: MedLedgerError };

function invalid(code: MedLedgerError['code'], message: string): ApplyResult {
  return { valid: false, error: new MedLedgerError(code, message) };
}

/**
 * Validity: may this transaction be in a block at all? Invalid transactions (replays, wrong keys,
 * impersonation, stale times) are dropped; every valid one is executed and leaves an audit event.
 */
function checkValidity(state: StateView, t: UnsignedTx, ctx: ApplyContext): ApplyResult | User | null {
  if (t.time + TX_MAX_AGE_MS < ctx.blockTime || t.time > ctx.blockTime + TX_MAX_FUTURE_MS) {
    return invalid('BAD_TIME', `transaction time ${t.time} is outside the window of block time ${ctx.blockTime}`);
  }
  if (!state.get('hospitals', t.via)) return invalid('MALFORMED', `unknown hospital ${t.via}`);
  const actor = state.get('users', t.actor);
  if (t.type === 'registerPatient') {
    if (actor) {
      return bytesEqual(actor.signKey, t.key) && t.nonce <= actor.lastNonce
        ? invalid('REPLAY', `registration of ${t.actor} was already applied`)
        : invalid('USER_EXISTS', `user id ${t.actor} is already taken`);
    }
    // A hospital's id is its actor id (statsAggregate): a patient by that name would share its nonces and queue.
    if (state.get('hospitals', t.actor)) return invalid('USER_EXISTS', `user id ${t.actor} is a hospital's id`);
    // An id a hospital has invited is reserved until the invitation expires: no one can squat on it.
    const invitation = state.get('invitations', t.actor);
    if (invitation && invitation.activatedAt === undefined && ctx.blockTime <= invitation.expiresAt) {
      return invalid('USER_EXISTS', `user id ${t.actor} is reserved by an invitation`);
    }
    return null;
  }
  if (t.type === 'activateUser') {
    const invitation = state.get('invitations', t.actor);
    if (!invitation) return actor ? invalid('USER_EXISTS', `user id ${t.actor} is already taken`) : invalid('UNKNOWN_ACTOR', `no invitation for ${t.actor}`);
    // Signed by the activated user's own key: an ordinary transaction of theirs (a second activation is denied).
    // A revoked key is judged against the (new) invitation like anyone else's, and refused there.
    if (actor && actor.keyRevokedAt === undefined && bytesEqual(actor.signKey, t.key)) {
      if (t.nonce <= actor.lastNonce) return invalid('REPLAY', `stale nonce ${t.nonce} for ${t.actor} (last ${actor.lastNonce})`);
      return actor;
    }
    // Anyone else's attempt is judged against the invitation, whose nonce every attempt consumes.
    if (t.nonce <= invitation.lastNonce) return invalid('REPLAY', `stale nonce ${t.nonce} for the invitation of ${t.actor} (last ${invitation.lastNonce})`);
    return null;
  }
  if (!actor) return invalid('UNKNOWN_ACTOR', `unknown user ${t.actor}`);
  // Issue 10: a revoked staff key signs nothing valid; after a rotation or recovery only the new key is the actor's.
  if (actor.keyRevokedAt !== undefined) return invalid('KEY_MISMATCH', `the key of ${t.actor} was revoked by their hospital; they must be invited again`);
  if (!bytesEqual(actor.signKey, t.key)) return invalid('KEY_MISMATCH', `transaction is not signed with ${t.actor}'s key`);
  if (t.nonce <= actor.lastNonce) return invalid('REPLAY', `stale nonce ${t.nonce} for ${t.actor} (last ${actor.lastNonce})`);
  if (t.type === 'statsReport') {
    // A report belongs to the batch of its time and only to a block of that batch: once block time passes
    // the batch end nothing can be added, so every report of a closed batch is on chain before any query.
    const { stats } = networkInfo(state);
    const batch = batchOf(stats, t.time).label;
    if ((t as UnsignedTx<'statsReport'>).body.batch !== batch)
      return invalid('MALFORMED', `statsReport names batch ${(t as UnsignedTx<'statsReport'>).body.batch}, its time is in ${batch}`);
    if (batchOf(stats, ctx.blockTime).label !== batch) return invalid('BAD_TIME', `statsReport of batch ${batch} in a block of another batch`);
  }
  return actor;
}

/**
 * Validity of a statsAggregate: its actor is a hospital (not a user), its key that hospital's validator key from
 * the genesis, its nonce above the hospital's counter, and it comes through the hospital's own node.
 */
function checkHospitalValidity(state: StateView, t: UnsignedTx): ApplyResult | Hospital {
  const hospital = state.get('hospitals', t.actor);
  if (!hospital) return invalid('UNKNOWN_ACTOR', `unknown hospital ${t.actor}`);
  if (!bytesEqual(hospital.validatorKey, t.key)) return invalid('KEY_MISMATCH', `statsAggregate is not signed with ${t.actor}'s validator key`);
  if (t.via !== t.actor) return invalid('MALFORMED', `statsAggregate of ${t.actor} submitted via ${t.via}`);
  if (t.nonce <= hospital.lastNonce) return invalid('REPLAY', `stale nonce ${t.nonce} for hospital ${t.actor} (last ${hospital.lastNonce})`);
  return hospital;
}

/**
 * An activation attempt by a key the ledger does not know yet (issue 10). The event names the invited
 * identity it claims (so the inviting admin sees failed attempts in the staff trail); a denied attempt changes
 * nothing but the invitation's nonce. The rules, in this order: the invitation must be unused
 * (`invitation-used`: also when the id was taken meanwhile), unexpired at the block's time
 * (`invitation-expired`), and `codeSig` must be the code key's signature over exactly the keys being installed
 * (`bad-activation-code`). On success the user is created with the invitation's role and hospital and the
 * transaction's own key, and the invitation is marked used for good.
 */
function activate(
  overlay: OverlayState,
  tx: Tx<'activateUser'>,
  invitation: Invitation,
  ctx: ApplyContext,
): { agent: User; decision: { allowed: true } | { allowed: false; reason: string } } {
  const t = tx.tx;
  const agent: User = {
    id: t.actor,
    role: invitation.role,
    hospital: invitation.hospital,
    signKey: t.key,
    encKey: t.body.encKey,
    active: true,
    lastNonce: t.nonce,
    since: t.time,
  };
  const consumed: Invitation = { ...invitation, lastNonce: t.nonce };
  // Re-invitation after revokeStaffKey: the same user gets new keys and keeps id, role, grants and history.
  const existing = overlay.get('users', t.actor);
  const reinstating = existing !== undefined && existing.keyRevokedAt !== undefined && invitation.activatedAt === undefined;
  let reason: string | undefined;
  if (invitation.activatedAt !== undefined || (existing && !reinstating)) reason = 'invitation-used';
  else if (ctx.blockTime > invitation.expiresAt) reason = 'invitation-expired';
  else if (reinstating && bytesEqual(existing.signKey, t.key)) reason = 'revoked-key';
  else if (!verifyActivation(invitation.codeKey, t.body.codeSig, t.actor, t.key, t.body.encKey, ctx.genesisHash)) reason = 'bad-activation-code';
  if (reason) {
    overlay.write([{ table: 'invitations', key: t.actor, value: consumed }]);
    return { agent, decision: { allowed: false, reason } };
  }
  if (reinstating) {
    const { keyRevokedAt: _revoked, ...rest } = existing;
    const reinstated: User = { ...rest, signKey: t.key, encKey: t.body.encKey, keysSince: t.time, lastNonce: Math.max(existing.lastNonce, t.nonce) };
    overlay.write([
      { table: 'users', key: agent.id, value: reinstated },
      { table: 'invitations', key: t.actor, value: { ...consumed, activatedAt: t.time } },
    ]);
    return { agent: reinstated, decision: { allowed: true } };
  }
  overlay.write([
    { table: 'users', key: agent.id, value: agent },
    { table: 'invitations', key: t.actor, value: { ...consumed, activatedAt: t.time } },
  ]);
  return { agent, decision: { allowed: true } };
}

/** The new signing key's consent to this rotation (records/rotation.ts), over the key it replaces. */
function consents(t: UnsignedTx<'rotateKeys'>, agent: User, ctx: ApplyContext): boolean {
  return verifyKeyConsent(t.body.consent, agent.id, agent.signKey, t.body.signKey, t.body.encKey, ctx.genesisHash);
}

function eventPatient(t: UnsignedTx): string | undefined {
  if (t.patient) return t.patient;
  if (t.type === 'registerPatient') return t.actor;
  if (t.type === 'queryAudit') return (t as UnsignedTx<'queryAudit'>).body.filter.patient;
  return undefined;
}

function eventSubject(t: UnsignedTx): string | undefined {
  const body = t.body as Record<string, unknown>;
  for (const field of ['grantee', 'requester', 'user', 'doctor'] as const) {
    if (typeof body[field] === 'string') return body[field] as string;
  }
  return undefined;
}

/**
 * The state transition: pure over plain data. Returns the audit event and the state changes of one
 * transaction — for a denied action, the event says why and the only change is the consumed nonce.
 */
export function apply(state: StateView, tx: Tx, ctx: ApplyContext): ApplyResult {
  const t = tx.tx;
  if (t.type === 'statsAggregate') return applyStatsAggregate(state, tx as Tx<'statsAggregate'>, ctx);
  const validity = checkValidity(state, t, ctx);
  if (validity && 'valid' in validity) return validity;
  const overlay = new OverlayState(state);

  let agent: User;
  let decision: Decision;
  if (t.type === 'registerPatient') {
    agent = {
      id: t.actor,
      role: 'patient',
      hospital: t.via,
      signKey: t.key,
      encKey: (t as UnsignedTx<'registerPatient'>).body.encKey,
      active: true,
      lastNonce: t.nonce,
      since: t.time,
      grants: {},
      requests: {},
    };
    overlay.write([{ table: 'users', key: agent.id, value: agent }]);
    decision = { allowed: true };
  } else if (t.type === 'activateUser' && !validity) {
    ({ agent, decision } = activate(overlay, tx as Tx<'activateUser'>, state.get('invitations', t.actor)!, ctx));
  } else {
    agent = validity as User;
    decision = !agent.active
      ? { allowed: false, reason: 'deactivated' }
      : t.type === 'activateUser'
        ? { allowed: false, reason: 'invitation-used' }
        : t.type === 'rotateKeys' && !consents(t as UnsignedTx<'rotateKeys'>, agent, ctx)
          ? { allowed: false, reason: 'bad-key-consent' }
          : authorize(overlay, t, agent, { height: ctx.height, blockTime: ctx.blockTime, txId: tx.idHex });
    if (!decision.allowed) overlay.discard();
    // The nonce is consumed whatever the outcome, so a denied transaction cannot be replayed either.
    const latest = overlay.get('users', agent.id) ?? agent;
    overlay.write([{ table: 'users', key: agent.id, value: { ...latest, lastNonce: t.nonce } }]);
  }

  const event: AuditEvent = {
    tx: tx.idHex,
    height: ctx.height,
    index: ctx.index,
    type: t.type as TxType,
    action: actionOf[t.type],
    recorded: t.time,
    outcome: decision.allowed ? 'success' : 'denied',
    agent: { user: agent.id, role: agent.role, hospital: agent.hospital },
    source: t.via,
  };
  if (!decision.allowed) event.reason = decision.reason;
  const patient = eventPatient(t) ?? (t.type === 'rotateKeys' && agent.role === 'patient' ? agent.id : undefined);
  if (patient) event.patient = patient;
  if (t.record) event.record = t.record;
  const subject = eventSubject(t);
  if (subject) event.subject = subject;
  return { valid: true, event, changes: overlay.changes() };
}

/** A hospital's statsAggregate (issue 13): the event's agent is the hospital itself, role `hospital`. */
function applyStatsAggregate(state: StateView, tx: Tx<'statsAggregate'>, ctx: ApplyContext): ApplyResult {
  const t = tx.tx;
  if (t.time + TX_MAX_AGE_MS < ctx.blockTime || t.time > ctx.blockTime + TX_MAX_FUTURE_MS) {
    return invalid('BAD_TIME', `transaction time ${t.time} is outside the window of block time ${ctx.blockTime}`);
  }
  const hospital = checkHospitalValidity(state, t);
  if ('valid' in hospital) return hospital;
  const overlay = new OverlayState(state);
  const decision = authorizeStatsAggregate(overlay, t, hospital);
  if (!decision.allowed) overlay.discard();
  overlay.write([{ table: 'hospitals', key: hospital.id, value: { ...hospital, lastNonce: t.nonce } }]);
  const event: AuditEvent = {
    tx: tx.idHex,
    height: ctx.height,
    index: ctx.index,
    type: 'statsAggregate',
    action: actionOf.statsAggregate,
    recorded: t.time,
    outcome: decision.allowed ? 'success' : 'denied',
    agent: { user: hospital.id, role: 'hospital', hospital: hospital.id },
    source: t.via,
  };
  if (!decision.allowed) event.reason = decision.reason;
  return { valid: true, event, changes: overlay.changes() };
}
