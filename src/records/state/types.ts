import type { Role, StaffRole } from '../ids.js';
import type { StatsSetting } from '../stats/batches.js';
import type { MeasureName, StatsInstance } from '../stats/measures.js';

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
  /** Patients only: the latest statsConsent (issue 13); absent = never opted in. */
  statsConsent?: { contribute: boolean; since: number };
  /** Patients only: per measure, the label of the latest batch they reported it in (one report per batch). */
  statsReported?: Partial<Record<MeasureName, string>>;
}

export interface Hospital {
  id: string;
  name: string;
  admin: string;
  /** Position in the genesis: proposer order and the Prio3 aggregator id. */
  index: number;
  /** The validator key: it also signs the hospital's statsAggregate transactions. */
  validatorKey: Uint8Array;
  /** X25519 key statistics' input shares are sealed to (genesis; absent on older networks). */
  aggregatorKey?: Uint8Array;
  /** Nonce of the hospital's latest statsAggregate transaction. */
  lastNonce: number;
}

/** Genesis settings the rules read (one entry, key NETWORK_KEY). */
export interface NetworkInfo {
  /** Hospital ids in genesis order. */
  hospitals: string[];
  stats: StatsSetting;
}
export const NETWORK_KEY = 'genesis';

/** Per (measure, batch), key `${measure}/${batch}`: how many reports it holds and its jobs by instance. */
export interface StatsBatch {
  measure: MeasureName;
  batch: string;
  reports: number;
  jobs: Partial<Record<StatsInstance, string>>;
}

/** One hospital's statsAggregate for a job. */
export interface StatsShare {
  share: Uint8Array;
  used: number;
  dropped: number;
  digest: Uint8Array;
  at: number;
}

/** An aggregation job (issue 13), keyed by the id of the query transaction that created it. */
export interface StatsJob {
  id: string;
  measure: MeasureName;
  batch: string;
  instance: StatsInstance;
  queriedBy: string;
  createdAt: number;
  /** Height of the block holding the query: its hash seeds the verify key. */
  height: number;
  /** Reports in the batch (closed) when the job was created. */
  reports: number;
  /** `withheld`: all agree, but fewer than 10 reports passed the proof; no share was published. */
  status: 'pending' | 'done' | 'withheld' | 'failed';
  /** Aggregate shares by hospital id. */
  shares: Record<string, StatsShare>;
  /** When done or withheld: the reports used and dropped all hospitals agree on. */
  used?: number;
  dropped?: number;
  /** When failed: the hospitals whose used/dropped/digest differ from the most common answer. */
  disagreeing?: string[];
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
  /** Record version last reported to statistics, per measure: one report per version and measure. */
  statsReported?: Partial<Record<MeasureName, number>>;
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
  network: NetworkInfo;
  statsBatches: StatsBatch;
  statsJobs: StatsJob;
}
export type TableName = keyof Tables;
export const tableNames: TableName[] = ['users', 'hospitals', 'records', 'appointments', 'slots', 'invitations', 'network', 'statsBatches', 'statsJobs'];

export interface StateView {
  get<T extends TableName>(table: T, key: string): Tables[T] | undefined;
}

/** One write produced by `apply`; `value: null` deletes. */
export type StateChange = { [T in TableName]: { table: T; key: string; value: Tables[T] | null } }[TableName];
