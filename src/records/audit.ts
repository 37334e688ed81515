import type { AgentRole } from './ids.js';
import type { TxType } from './tx/types.js';

/**
 * The audit event every transaction yields (PROTOCOL.md §2.6): who did what to whose data, when, through which
 * hospital, with what outcome. Field names follow FHIR R4 AuditEvent so the FHIR export is a mapping.
 */
export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E';
export type Outcome = 'success' | 'denied';

export interface AuditEvent {
  /** Transaction id (hex). */
  tx: string;
  height: number;
  index: number;
  type: TxType;
  action: AuditAction;
  /** When the user's client signed the action (ms since epoch), bounded by the block time. */
  recorded: number;
  outcome: Outcome;
  /** Why a denied action was refused (a stable reason code). */
  reason?: string;
  agent: { user: string; role: AgentRole; hospital: string };
  patient?: string;
  record?: string;
  /** Another user the action was about (grantee, enrolled user, requester, doctor of an appointment). */
  subject?: string;
  /** The hospital node that received the transaction. */
  source: string;
}

/** FHIR AuditEvent.action for each transaction type (queries and administration are E, execute). */
export const actionOf: Record<TxType, AuditAction> = {
  registerPatient: 'C',
  inviteUser: 'C',
  activateUser: 'C',
  deactivateUser: 'U',
  rotateKeys: 'U',
  revokeStaffKey: 'U',
  recoverPatientKeys: 'U',
  createRecord: 'C',
  copyRecord: 'C',
  updateRecord: 'U',
  deleteRecord: 'D',
  readRecord: 'R',
  listRecords: 'E',
  attachFile: 'C',
  replaceFile: 'U',
  removeFile: 'D',
  grantAccess: 'E',
  revokeAccess: 'E',
  requestAccess: 'E',
  approveRequest: 'E',
  denyRequest: 'E',
  bookAppointment: 'C',
  cancelAppointment: 'D',
  queryAudit: 'E',
  statsConsent: 'U',
  statsReport: 'C',
  statsQuery: 'E',
  statsAggregate: 'E',
};
