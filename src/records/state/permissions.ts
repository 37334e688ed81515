import { INVITATION_MAX_TTL_MS } from '../activation.js';
import { bytesEqual } from '../crypto/bytes.js';
import type { StaffRole } from '../ids.js';
import type { UnsignedTx } from '../tx/types.js';
import { ALLOW, deny, existingRecord, isDecision, ownDataOnly, putRecord, putUser, type Decision, type RuleContext, type Writable } from './ruleHelpers.js';
import { statsRules } from './statsRules.js';
import type { StateView, User } from './types.js';

export type { Decision, RuleContext } from './ruleHelpers.js';

/**
 * The permission table of PROTOCOL.md §3, one rule per transaction type. A rule either denies with a stable
 * reason code or writes its effects into the overlay it is given.
 */
type Rule<T extends UnsignedTx['type']> = (s: Writable, t: UnsignedTx<T>, agent: User, ctx: RuleContext) => Decision;

function patientOf(s: StateView, id: string | undefined): User | undefined {
  const user = id ? s.get('users', id) : undefined;
  return user?.role === 'patient' ? user : undefined;
}

function grantKind(patient: User, userId: string): StaffRole | undefined {
  return patient.grants?.[userId]?.kind;
}

type Mode = 'write' | 'read' | 'files';

/** Who may touch a patient's records: the patient; a granted doctor; a granted auditor for reading only. */
function recordAccess(s: StateView, t: UnsignedTx, agent: User, mode: Mode): Decision | User {
  const patient = patientOf(s, t.patient);
  if (!patient) return deny('unknown-patient');
  switch (agent.role) {
    case 'patient':
      return agent.id === patient.id ? patient : deny('not-own-data');
    case 'doctor':
      return grantKind(patient, agent.id) === 'doctor' ? patient : deny('no-grant');
    case 'auditor':
      if (mode !== 'read') return deny('role-not-allowed');
      return grantKind(patient, agent.id) === 'auditor' ? patient : deny('no-grant');
    default:
      return deny('role-not-allowed');
  }
}

/** A user new content may be wrapped for: active, and their key not revoked (issue 10). */
function canReceive(user: User | undefined): boolean {
  return !!user && user.active && user.keyRevokedAt === undefined;
}

/** The data key of new content must be wrapped for exactly the patient and every active grantee. */
export function requiredRecipients(s: StateView, patient: User): string[] {
  const ids = [patient.id];
  for (const grantee of Object.keys(patient.grants ?? {})) {
    if (canReceive(s.get('users', grantee))) ids.push(grantee);
  }
  return ids.sort();
}

function checkRecipients(s: StateView, patient: User, recipients: string[]): Decision | null {
  const given = [...new Set(recipients)].sort();
  const required = requiredRecipients(s, patient);
  if (given.length !== recipients.length || given.join(',') !== required.join(',')) return deny('recipients-mismatch');
  return null;
}

function without<T>(map: Record<string, T> | undefined, key: string): Record<string, T> {
  const copy = { ...map };
  delete copy[key];
  return copy;
}

const rules: { [T in UnsignedTx['type']]: Rule<T> } = {
  registerPatient: () => ALLOW, // handled by apply: it creates the actor itself

  /**
   * Only an admin invites, always into their own hospital, only an id that is neither a user nor held by a
   * pending invitation (an expired one may be renewed: its attempts' nonce carries over), and only for a
   * bounded lifetime, so an unused code stops working by itself.
   */
  inviteUser(s, t, agent) {
    if (agent.role !== 'admin') return deny('role-not-allowed');
    // A staff member whose key was revoked (revokeStaffKey) may be invited again, by their own hospital and
    // in the same role: the activation then installs new keys and keeps the id, grants and history.
    const existing = s.get('users', t.body.user);
    // Hospital ids act on the ledger too (statsAggregate): no user may take one.
    if (s.get('hospitals', t.body.user)) return deny('user-exists');
    if (existing && (existing.keyRevokedAt === undefined || existing.hospital !== agent.hospital)) return deny('user-exists');
    if (existing && existing.role !== t.body.role) return deny('role-mismatch');
    const previous = s.get('invitations', t.body.user);
    if (previous && previous.activatedAt === undefined && t.time <= previous.expiresAt) return deny('invitation-pending');
    if (t.body.expiresAt <= t.time || t.body.expiresAt > t.time + INVITATION_MAX_TTL_MS) return deny('bad-expiry');
    s.write([
      {
        table: 'invitations',
        key: t.body.user,
        value: {
          user: t.body.user,
          role: t.body.role,
          hospital: agent.hospital,
          invitedBy: agent.id,
          invitedAt: t.time,
          expiresAt: t.body.expiresAt,
          codeKey: t.body.codeKey,
          lastNonce: previous?.lastNonce ?? 0,
        },
      },
    ]);
    return ALLOW;
  },

  activateUser: () => deny('invitation-used'), // handled by apply; an existing user's own activation is a second use

  /**
   * Key rotation by the user (issue 10): any user with an encryption key (admins' keys are in the genesis
   * file); apply has checked the signature by the current key and the new key's consent. From the next
   * transaction on, only the new signing key is valid for this user.
   */
  rotateKeys(s, t, agent) {
    if (agent.role === 'admin') return deny('role-not-allowed');
    if (bytesEqual(t.body.signKey, agent.signKey)) return deny('same-key');
    const me = s.get('users', agent.id) ?? agent;
    putUser(s, { ...me, signKey: t.body.signKey, encKey: t.body.encKey, keysSince: t.time });
    return ALLOW;
  },

  /** An admin revokes the key of a doctor or auditor of their own hospital; re-invitation installs new keys. */
  revokeStaffKey(s, t, agent) {
    if (agent.role !== 'admin') return deny('role-not-allowed');
    const target = s.get('users', t.body.user);
    if (!target) return deny('user-not-found');
    if (target.hospital !== agent.hospital || (target.role !== 'doctor' && target.role !== 'auditor')) return deny('not-own-staff');
    if (target.keyRevokedAt !== undefined) return deny('key-already-revoked');
    putUser(s, { ...target, keyRevokedAt: t.time });
    return ALLOW;
  },

  /**
   * The admin of the patient's home hospital installs the keys the patient brought to the desk (after an
   * identity check; the ticket names it). Nothing wrapped for the lost encryption key can be re-wrapped.
   */
  recoverPatientKeys(s, t, agent) {
    if (agent.role !== 'admin') return deny('role-not-allowed');
    const patient = patientOf(s, t.patient);
    if (!patient) return deny('unknown-patient');
    if (patient.hospital !== agent.hospital) return deny('not-home-hospital');
    if (bytesEqual(t.body.signKey, patient.signKey)) return deny('same-key');
    putUser(s, { ...patient, signKey: t.body.signKey, encKey: t.body.encKey, keysSince: t.time });
    return ALLOW;
  },

  deactivateUser(s, t, agent) {
    if (agent.role !== 'admin') return deny('role-not-allowed');
    const target = s.get('users', t.body.user);
    if (!target) return deny('user-not-found');
    if (target.hospital !== agent.hospital || (target.role !== 'doctor' && target.role !== 'auditor')) return deny('not-own-staff');
    if (!target.active) return deny('already-inactive');
    putUser(s, { ...target, active: false });
    return ALLOW;
  },

  createRecord(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'write');
    if (isDecision(patient)) return patient;
    if (s.get('records', t.record!)) return deny('record-exists');
    const mismatch = checkRecipients(s, patient, t.body.recipients);
    if (mismatch) return mismatch;
    putRecord(s, { id: t.record!, patient: patient.id, createdBy: agent.id, createdAt: t.time, updatedAt: t.time, version: 1, deleted: false, files: {} });
    return ALLOW;
  },

  updateRecord(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'write');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    // The new version number is part of the ciphertext's associated data, and stops lost updates.
    if (t.body.version !== record.version + 1) return deny('version-conflict');
    const mismatch = checkRecipients(s, patient, t.body.recipients);
    if (mismatch) return mismatch;
    putRecord(s, { ...record, version: t.body.version, updatedAt: t.time });
    return ALLOW;
  },

  copyRecord(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'write');
    if (isDecision(patient)) return patient;
    const source = existingRecord(s, patient, t.body.from);
    if (isDecision(source)) return source;
    if (s.get('records', t.record!)) return deny('record-exists');
    const mismatch = checkRecipients(s, patient, t.body.recipients);
    if (mismatch) return mismatch;
    putRecord(s, {
      id: t.record!,
      patient: patient.id,
      createdBy: agent.id,
      createdAt: t.time,
      updatedAt: t.time,
      version: 1,
      deleted: false,
      copiedFrom: source.id,
      files: {},
    });
    return ALLOW;
  },

  deleteRecord(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'write');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    putRecord(s, { ...record, deleted: true, updatedAt: t.time });
    return ALLOW;
  },

  readRecord(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'read');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    if (t.body.version !== undefined && (t.body.version < 1 || t.body.version > record.version)) return deny('version-not-found');
    return ALLOW;
  },

  listRecords(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'read');
    return isDecision(patient) ? patient : ALLOW;
  },

  attachFile(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'files');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    if (record.files[t.body.file]) return deny('file-exists');
    const mismatch = checkRecipients(s, patient, t.body.recipients);
    if (mismatch) return mismatch;
    putRecord(s, { ...record, updatedAt: t.time, files: { ...record.files, [t.body.file]: { version: 1 } } });
    return ALLOW;
  },

  replaceFile(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'files');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    const file = record.files[t.body.file];
    if (!file || file.removed) return deny('file-not-found');
    if (t.body.version !== file.version + 1) return deny('version-conflict');
    const mismatch = checkRecipients(s, patient, t.body.recipients);
    if (mismatch) return mismatch;
    putRecord(s, { ...record, updatedAt: t.time, files: { ...record.files, [t.body.file]: { version: t.body.version } } });
    return ALLOW;
  },

  removeFile(s, t, agent) {
    const patient = recordAccess(s, t, agent, 'files');
    if (isDecision(patient)) return patient;
    const record = existingRecord(s, patient, t.record);
    if (isDecision(record)) return record;
    const file = record.files[t.body.file];
    if (!file || file.removed) return deny('file-not-found');
    // The entry stays (marked removed) so the file id, part of its blobs' identity, is never reused.
    putRecord(s, { ...record, updatedAt: t.time, files: { ...record.files, [t.body.file]: { ...file, removed: true } } });
    return ALLOW;
  },

  grantAccess(s, t, agent) {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    const grantee = s.get('users', t.body.grantee);
    if (!grantee || (grantee.role !== 'doctor' && grantee.role !== 'auditor')) return deny('grantee-not-staff');
    if (!canReceive(grantee)) return deny('grantee-inactive');
    if (agent.grants?.[grantee.id]) return deny('already-granted');
    putUser(s, { ...agent, grants: { ...agent.grants, [grantee.id]: { kind: grantee.role, since: t.time } }, requests: without(agent.requests, grantee.id) });
    return ALLOW;
  },

  revokeAccess(s, t, agent) {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    if (!agent.grants?.[t.body.grantee]) return deny('no-grant-to-revoke');
    putUser(s, { ...agent, grants: without(agent.grants, t.body.grantee) });
    return ALLOW;
  },

  requestAccess(s, t, agent) {
    if (agent.role !== 'doctor' && agent.role !== 'auditor') return deny('role-not-allowed');
    const patient = patientOf(s, t.patient);
    if (!patient) return deny('unknown-patient');
    if (patient.grants?.[agent.id]) return deny('already-granted');
    if (patient.requests?.[agent.id]) return deny('request-pending');
    putUser(s, { ...patient, requests: { ...patient.requests, [agent.id]: { kind: agent.role, at: t.time } } });
    return ALLOW;
  },

  approveRequest(s, t, agent) {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    const request = agent.requests?.[t.body.requester];
    if (!request) return deny('no-pending-request');
    if (!canReceive(s.get('users', t.body.requester))) return deny('grantee-inactive');
    putUser(s, {
      ...agent,
      requests: without(agent.requests, t.body.requester),
      grants: { ...agent.grants, [t.body.requester]: { kind: request.kind, since: t.time } },
    });
    return ALLOW;
  },

  denyRequest(s, t, agent) {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    if (!agent.requests?.[t.body.requester]) return deny('no-pending-request');
    putUser(s, { ...agent, requests: without(agent.requests, t.body.requester) });
    return ALLOW;
  },

  bookAppointment(s, t, agent) {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    const doctor = s.get('users', t.body.doctor);
    if (!doctor || doctor.role !== 'doctor' || !doctor.active) return deny('not-a-doctor');
    if (t.body.at < t.time) return deny('in-the-past');
    if (s.get('appointments', t.body.appointment)) return deny('appointment-exists');
    const slot = `${doctor.id}@${t.body.at}`;
    if (s.get('slots', slot)) return deny('slot-taken');
    s.write([
      {
        table: 'appointments',
        key: t.body.appointment,
        value: { id: t.body.appointment, patient: agent.id, doctor: doctor.id, at: t.body.at, status: 'booked', bookedBy: agent.id },
      },
      { table: 'slots', key: slot, value: t.body.appointment },
    ]);
    return ALLOW;
  },

  cancelAppointment(s, t, agent) {
    const appointment = s.get('appointments', t.body.appointment);
    if (!appointment || appointment.patient !== t.patient) return deny('appointment-not-found');
    const mayCancel = (agent.role === 'patient' && agent.id === appointment.patient) || (agent.role === 'doctor' && agent.id === appointment.doctor);
    if (!mayCancel) return deny(agent.role === 'patient' ? 'not-own-data' : 'role-not-allowed');
    if (appointment.status !== 'booked') return deny('already-cancelled');
    s.write([
      { table: 'appointments', key: appointment.id, value: { ...appointment, status: 'cancelled' } },
      { table: 'slots', key: `${appointment.doctor}@${appointment.at}`, value: null },
    ]);
    return ALLOW;
  },

  ...statsRules,
  statsAggregate: () => deny('role-not-allowed'), // handled by apply: only a hospital is its actor

  queryAudit(s, t, agent) {
    const f = t.body.filter;
    if (agent.role === 'admin') {
      if (f.patient !== undefined) return deny('role-not-allowed');
      if (f.hospital !== agent.hospital) return deny('not-own-hospital');
      if (f.user !== undefined) {
        const user = s.get('users', f.user);
        if (!user || user.role === 'patient' || user.hospital !== agent.hospital) return deny('not-own-staff');
      }
      return ALLOW;
    }
    if (f.hospital !== undefined) return deny('role-not-allowed');
    const patient = patientOf(s, f.patient);
    if (!patient) return deny('unknown-patient');
    if (agent.role === 'patient') return agent.id === patient.id ? ALLOW : deny('not-own-data');
    return grantKind(patient, agent.id) === agent.role ? ALLOW : deny('no-grant');
  },
};

export function authorize(s: Writable, t: UnsignedTx, agent: User, ctx: RuleContext): Decision {
  return (rules[t.type] as Rule<typeof t.type>)(s, t as never, agent, ctx);
}
