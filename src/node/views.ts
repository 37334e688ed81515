import { blobId, type WrappedKey } from '../records/envelope.js';
import { toBase64 } from '../records/crypto/bytes.js';
import { MedLedgerError } from '../records/errors.js';
import type { AuditEvent } from '../records/audit.js';
import { requiredRecipients } from '../records/state/permissions.js';
import type { Invitation, RecordMeta, User } from '../records/state/types.js';
import type { UnsignedTx } from '../records/tx/types.js';
import type { Overview, PublicInvitation, PublicUser, ReadRecordResult, TxResult, WireBlob } from '../api/contract.js';
import type { Ledger } from './ledger.js';

/**
 * Answers that the node serves from its replica: results of audited reads and queries (only after the
 * read's own audit event is final and successful), and a user's own view of grants and appointments.
 */
export function publicInvitation(i: Invitation): PublicInvitation {
  return {
    user: i.user,
    role: i.role,
    hospital: i.hospital,
    invitedBy: i.invitedBy,
    expiresAt: i.expiresAt,
    codeKey: toBase64(i.codeKey),
    activated: i.activatedAt !== undefined,
  };
}

export function publicUser(u: User): PublicUser {
  return {
    id: u.id,
    role: u.role,
    hospital: u.hospital,
    active: u.active,
    signKey: toBase64(u.signKey),
    ...(u.encKey ? { encKey: toBase64(u.encKey) } : {}),
  };
}

const wireKey = (k: WrappedKey) => ({ epk: toBase64(k.epk), w: toBase64(k.w) });

async function readBlob(ledger: Ledger, blob: string, reader: string): Promise<WireBlob | undefined> {
  const found = await ledger.getBlob(blob, reader);
  if (!found) return undefined;
  const { sealed } = found;
  return { blob, n: toBase64(sealed.n), c: toBase64(sealed.c), ...(found.key ? { key: wireKey(found.key) } : {}) };
}

async function readRecord(ledger: Ledger, t: UnsignedTx<'readRecord'>): Promise<ReadRecordResult> {
  const record = ledger.state.get('records', t.record!);
  if (!record || record.deleted) throw new MedLedgerError('NOT_FOUND', `record ${t.record} no longer exists`);
  const version = t.body.version ?? record.version;
  const content = await readBlob(ledger, blobId(record.id, 'content', version), t.actor);
  const files: ReadRecordResult['files'] = [];
  for (const [file, meta] of Object.entries(record.files)) {
    if (meta.removed) continue;
    const blob = await readBlob(ledger, blobId(record.id, file, meta.version), t.actor);
    if (blob) files.push({ ...blob, file, version: meta.version });
  }
  return { kind: 'record', record, ...(content ? { content } : {}), files };
}

function recordsOf(ledger: Ledger, patient: string): RecordMeta[] {
  const out: RecordMeta[] = [];
  for (const [, r] of ledger.state.entries('records')) if (r.patient === patient && !r.deleted) out.push(r);
  return out.sort((a, b) => b.updatedAt - a.updatedAt);
}

/**
 * The answer to a final, successful read or query transaction, computed when its block is committed (see
 * TxTracker): record metadata and lists from the state of that block, an audit page up to that block.
 */
export async function resultOf(ledger: Ledger, t: UnsignedTx, event: AuditEvent): Promise<TxResult | undefined> {
  if (event.outcome !== 'success') return undefined;
  switch (t.type) {
    case 'readRecord':
      return readRecord(ledger, t as UnsignedTx<'readRecord'>);
    case 'listRecords':
      return { kind: 'records', records: recordsOf(ledger, t.patient!) };
    case 'queryAudit': {
      const body = (t as UnsignedTx<'queryAudit'>).body;
      const staffOnly = ledger.state.get('users', t.actor)?.role === 'admin';
      // The trail as it stood at the query's own block (later events are not part of this answer).
      const page = await ledger.queryEvents(
        { ...body.filter, staffOnly, atHeight: event.height },
        { limit: body.limit ?? 50, ...(body.cursor ? { cursor: body.cursor } : {}) },
      );
      return { kind: 'audit', ...page };
    }
    default:
      return undefined;
  }
}

/** What a signed-in user sees of their own relationships (not record contents: those are audited reads). */
export function overviewOf(ledger: Ledger, user: User): Overview {
  const view: Overview = { user: publicUser(user) };
  const state = ledger.state;
  const appointments = [...state.entries('appointments')].map(([, a]) => a);
  switch (user.role) {
    case 'patient':
      view.grants = Object.entries(user.grants ?? {}).map(([id, g]) => ({ user: id, kind: g.kind, since: g.since }));
      view.requests = Object.entries(user.requests ?? {}).map(([id, r]) => ({ user: id, kind: r.kind, at: r.at }));
      view.appointments = appointments.filter((a) => a.patient === user.id);
      if (user.statsConsent) view.statsConsent = { contribute: user.statsConsent.contribute, since: user.statsConsent.since };
      if (user.statsReported) view.statsReported = { ...user.statsReported };
      break;
    case 'doctor':
    case 'auditor': {
      const patients: { patient: string; since: number }[] = [];
      const pending: { patient: string; at: number }[] = [];
      for (const [, u] of state.entries('users')) {
        if (u.role !== 'patient') continue;
        const grant = u.grants?.[user.id];
        if (grant) patients.push({ patient: u.id, since: grant.since });
        const request = u.requests?.[user.id];
        if (request) pending.push({ patient: u.id, at: request.at });
      }
      view.patients = patients;
      view.pendingRequests = pending;
      if (user.role === 'doctor') view.appointments = appointments.filter((a) => a.doctor === user.id);
      break;
    }
    case 'admin':
      view.staff = [...state.entries('users')]
        .map(([, u]) => u)
        .filter((u) => u.hospital === user.hospital && u.role !== 'patient')
        .map(publicUser);
      break;
  }
  return view;
}

/** Keys to wrap new content for: the patient and active grantees. Only those who may write may ask. */
export function recipientsFor(ledger: Ledger, user: User, patientId: string): PublicUser[] {
  const patient = ledger.state.get('users', patientId);
  if (!patient || patient.role !== 'patient') throw new MedLedgerError('NOT_FOUND', `unknown patient ${patientId}`);
  const allowed = user.id === patient.id || patient.grants?.[user.id]?.kind === 'doctor';
  if (!allowed) throw new MedLedgerError('FORBIDDEN', `${user.id} has no write access to ${patientId}'s records`);
  return requiredRecipients(ledger.state, patient).map((id) => publicUser(ledger.state.get('users', id)!));
}
