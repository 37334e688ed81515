import type { Role, StaffRole } from '../ids.js';

/** The replicated state: plain data, identical on every node after the same blocks. */
export interface User {
  id: string;
  role: Role;
  /** The hospital that enrolled a staff member, or where a patient registered. */
  hospital: string;
  signKey: Uint8Array;
  /** X25519 key that record data keys are wrapped to (absent for admins). */
  encKey?: Uint8Array;
  active: boolean;
  lastNonce: number;
  since: number;
  /** When the current keys were installed, if after `since` (rotateKeys, recoverPatientKeys, re-activation). */
  keysSince?: number;
  /** A staff member's key revoked by their admin (revokeStaffKey): nothing they sign is valid until re-invited. */
  keyRevokedAt?: number;
  /** Patients only: active grants by grantee id. */
  grants?: Record<string, { kind: StaffRole; since: number }>;
  /** Patients only: pending access requests by requester id. */
  requests?: Record<string, { kind: StaffRole; at: number }>;
}

export interface Hospital {
  id: string;
  name: string;
  admin: string;
}

export interface RecordMeta {
  id: string;
  patient: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  /** Content version, 1 at creation; each update adds one. */
  version: number;
  deleted: boolean;
  copiedFrom?: string;
  /** Attached files by file id with their current version; removed files keep their entry. */
  files: Record<string, { version: number; removed?: boolean }>;
}

export interface Appointment {
  id: string;
  patient: string;
  doctor: string;
  at: number;
  status: 'booked' | 'cancelled';
  bookedBy: string;
}

/** A staff invitation (issue 10), kept after use so that the code can never activate the account again. */
export interface Invitation {
  user: string;
  role: StaffRole;
  hospital: string;
  invitedBy: string;
  invitedAt: number;
  expiresAt: number;
  /** Public key derived from the activation code. */
  codeKey: Uint8Array;
  /** Time of the successful activation. */
  activatedAt?: number;
  /** Nonce of the latest activation attempt: a denied attempt cannot be replayed either. */
  lastNonce: number;
}

export interface Tables {
  users: User;
  hospitals: Hospital;
  records: RecordMeta;
  appointments: Appointment;
  /** `${doctor}@${at}` → appointment id, so one doctor is not booked twice for one slot. */
  slots: string;
  /** Staff invitations by invited user id. */
  invitations: Invitation;
}
export type TableName = keyof Tables;
export const tableNames: TableName[] = ['users', 'hospitals', 'records', 'appointments', 'slots', 'invitations'];

export interface StateView {
  get<T extends TableName>(table: T, key: string): Tables[T] | undefined;
}

/** One write produced by `apply`; `value: null` deletes. */
export type StateChange = { [T in TableName]: { table: T; key: string; value: Tables[T] | null } }[TableName];
