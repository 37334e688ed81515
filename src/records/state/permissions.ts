import { INVITATION_MAX_TTL_MS } from '../activation.js';
import { bytesEqual, toHex } from '../crypto/bytes.js';
import type { StaffRole } from '../ids.js';
import { batchClosed, parseBatch } from '../stats/batches.js';
import { instanceOf, type StatsInstance } from '../stats/measures.js';
import { aggregateShareLength, decodeAggregateShare, inputShareLength, vdafFor } from '../stats/prio3.js';
import { SEALED_SHARE_OVERHEAD } from '../stats/sealing.js';
import type { UnsignedTx } from '../tx/types.js';
import { NETWORK_KEY, type Hospital, type NetworkInfo, type RecordMeta, type StateChange, type StateView, type StatsJob, type User } from './types.js';

/**
 * The permission table of PROTOCOL.md §3, one rule per transaction type. A rule either denies with a stable
 * reason code or writes its effects into the overlay it is given.
 */
export type Decision = { allowed: true } | { allowed: false; reason: string };
type Writable = StateView & { write(changes: StateChange[]): void };
/** What some rules need of the block: statistics read its time and height, and name jobs by the query's tx id. */
export interface RuleContext {
  height: number;
  blockTime: number;
  txId: string;
}
type Rule<T extends UnsignedTx['type']> = (s: Writable, t: UnsignedTx<T>, agent: User, ctx: RuleContext) => Decision;

const ALLOW: Decision = { allowed: true };
const deny = (reason: string): Decision => ({ allowed: false, reason });

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

/** The record must exist, belong to the named patient and not be deleted. */
function existingRecord(s: StateView, patient: User, recordId: string | undefined): Decision | RecordMeta {
  const record = recordId ? s.get('records', recordId) : undefined;
  if (!record || record.patient !== patient.id) return deny('record-not-found');
  if (record.deleted) return deny('record-deleted');
  return record;
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

/** Grants, requests and appointments are managed by the patient alone, on their own data. */
function ownDataOnly(t: UnsignedTx, agent: User): Decision | null {
  if (agent.role !== 'patient') return deny('role-not-allowed');
  return agent.id === t.patient ? null : deny('not-own-data');
}

function without<T>(map: Record<string, T> | undefined, key: string): Record<string, T> {
  const copy = { ...map };
  delete copy[key];
  return copy;
}

const isDecision = (v: unknown): v is Decision => typeof v === 'object' && v !== null && 'allowed' in v;

function putRecord(s: Writable, record: RecordMeta): void {
  s.write([{ table: 'records', key: record.id, value: record }]);
}

function putUser(s: Writable, user: User): void {
  s.write([{ table: 'users', key: user.id, value: user }]);
}

/** Minimum reports in a batch before any statistic of it is released (issue 13). */
export const MIN_BATCH_REPORTS = 10;

export function networkInfo(s: StateView): NetworkInfo {
  const info = s.get('network', NETWORK_KEY);
  if (!info) throw new Error('state has no network entry (genesis)');
  return info;
}

/** Every hospital in the genesis has an aggregator key: the precondition of any statistic. */
function aggregatorsReady(s: StateView, info: NetworkInfo): boolean {
  return info.hospitals.every((h) => s.get('hospitals', h)?.aggregatorKey !== undefined);
}

export const statsBatchKey = (measure: string, batch: string) => `${measure}/${batch}`;

/** Shape of a report against the network: a public share and one sealed input share per hospital of the right size. */
function reportFits(
  report: { publicShare: Uint8Array; shares: Uint8Array[] },
  measure: UnsignedTx<'statsReport'>['body']['measure'],
  instance: StatsInstance,
  n: number,
): boolean {
  if (report.shares.length !== n) return false;
  const vdaf = vdafFor(measure, instance, n);
  if (report.publicShare.length !== vdaf.xof.seedSize * n) return false;
  return report.shares.every((sealed, i) => sealed.length === inputShareLength(vdaf, i) + SEALED_SHARE_OVERHEAD);
}

const statsRules = {
  /** The patient alone opts in or out; the latest statement counts from its time on. */
  statsConsent(s: Writable, t: UnsignedTx<'statsConsent'>, agent: User): Decision {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    const me = s.get('users', agent.id) ?? agent;
    putUser(s, { ...me, statsConsent: { contribute: t.body.contribute, since: t.time } });
    return ALLOW;
  },

  /**
   * The patient's own report of one measure of the current version of one of their records, while they
   * contribute; apply has already checked that the batch is the batch of the tx time and of the block.
   */
  statsReport(s: Writable, t: UnsignedTx<'statsReport'>, agent: User): Decision {
    const notSelf = ownDataOnly(t, agent);
    if (notSelf) return notSelf;
    if (!agent.statsConsent?.contribute) return deny('no-stats-consent');
    const record = existingRecord(s, agent, t.record);
    if (isDecision(record)) return record;
    if (t.body.version !== record.version) return deny('version-conflict');
    if (record.statsReported?.[t.body.measure] === record.version) return deny('already-reported');
    const info = networkInfo(s);
    if (!aggregatorsReady(s, info)) return deny('no-aggregator-key');
    const n = info.hospitals.length;
    if (!reportFits(t.body.reports.moments, t.body.measure, 'moments', n) || !reportFits(t.body.reports.histogram, t.body.measure, 'histogram', n)) {
      return deny('bad-report');
    }
    const key = statsBatchKey(t.body.measure, t.body.batch);
    const batch = s.get('statsBatches', key) ?? { measure: t.body.measure, batch: t.body.batch, reports: 0, jobs: {} };
    s.write([{ table: 'statsBatches', key, value: { ...batch, reports: batch.reports + 1 } }]);
    putRecord(s, { ...record, statsReported: { ...record.statsReported, [t.body.measure]: record.version } });
    return ALLOW;
  },

  /**
   * Auditors only (no researcher role: auditors already hold the cross-hospital view). A closed batch of at least
   * MIN_BATCH_REPORTS reports; the first query of (measure, batch, instance) creates the job, later ones point at it.
   */
  statsQuery(s: Writable, t: UnsignedTx<'statsQuery'>, agent: User, ctx: RuleContext): Decision {
    if (agent.role !== 'auditor') return deny('role-not-allowed');
    const info = networkInfo(s);
    const batch = parseBatch(info.stats, t.body.batch);
    if (!batch) return deny('unknown-batch');
    if (!aggregatorsReady(s, info)) return deny('no-aggregator-key');
    if (!batchClosed(batch, ctx.blockTime)) return deny('batch-open');
    const key = statsBatchKey(t.body.measure, t.body.batch);
    const entry = s.get('statsBatches', key);
    if (!entry || entry.reports < MIN_BATCH_REPORTS) return deny('batch-too-small');
    const instance = instanceOf(t.body.stat);
    if (entry.jobs[instance]) return ALLOW; // the existing job answers: a batch is aggregated once per instance
    const job: StatsJob = {
      id: ctx.txId,
      measure: t.body.measure,
      batch: t.body.batch,
      instance,
      queriedBy: agent.id,
      createdAt: t.time,
      height: ctx.height,
      reports: entry.reports,
      status: 'pending',
      shares: {},
    };
    s.write([
      { table: 'statsJobs', key: job.id, value: job },
      { table: 'statsBatches', key, value: { ...entry, jobs: { ...entry.jobs, [instance]: job.id } } },
    ]);
    return ALLOW;
  },
};

/**
 * A hospital's aggregate share for a pending job (apply has checked the validator key and the hospital's
 * nonce). One per hospital; the share must decode, or be empty when fewer than MIN_BATCH_REPORTS reports passed
 * the proof (a share on chain is public, so it is withheld); used + dropped must be the job's report count.
 * When every hospital has answered, the job is `done` (or `withheld`, too few valid reports) if all agree on
 * used, dropped and digest, else `failed` naming the hospitals that differ from the most common answer (ties:
 * the answer of the earliest hospital in genesis order).
 */
export function authorizeStatsAggregate(s: Writable, t: UnsignedTx<'statsAggregate'>, hospital: Hospital): Decision {
  const job = s.get('statsJobs', t.body.job);
  if (!job) return deny('job-not-found');
  if (job.status !== 'pending') return deny('job-closed');
  if (job.shares[hospital.id]) return deny('already-submitted');
  const info = networkInfo(s);
  if (t.body.used < MIN_BATCH_REPORTS) {
    // Fewer valid reports than a release needs: the share is withheld (on chain it would be public).
    if (t.body.share.length !== 0) return deny('bad-share');
  } else {
    const vdaf = vdafFor(job.measure, job.instance, info.hospitals.length);
    if (t.body.share.length !== aggregateShareLength(vdaf)) return deny('bad-share');
    try {
      decodeAggregateShare(vdaf, t.body.share);
    } catch {
      return deny('bad-share');
    }
  }
  if (t.body.used + t.body.dropped !== job.reports) return deny('bad-counts');
  const shares = { ...job.shares, [hospital.id]: { share: t.body.share, used: t.body.used, dropped: t.body.dropped, digest: t.body.digest, at: t.time } };
  let next: StatsJob = { ...job, shares };
  if (info.hospitals.every((h) => shares[h])) {
    const answer = (h: string) => `${shares[h]!.used}/${shares[h]!.dropped}/${toHex(shares[h]!.digest)}`;
    const tally = new Map<string, number>();
    for (const h of info.hospitals) tally.set(answer(h), (tally.get(answer(h)) ?? 0) + 1);
    let common = answer(info.hospitals[0]!);
    for (const [a, c] of tally) if (c > tally.get(common)!) common = a;
    const disagreeing = info.hospitals.filter((h) => answer(h) !== common);
    const first = shares[info.hospitals[0]!]!;
    next =
      disagreeing.length > 0
        ? { ...next, status: 'failed', disagreeing }
        : { ...next, status: first.used < MIN_BATCH_REPORTS ? 'withheld' : 'done', used: first.used, dropped: first.dropped };
  }
  s.write([{ table: 'statsJobs', key: job.id, value: next }]);
  return ALLOW;
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
