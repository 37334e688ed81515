import type { AuditEvent } from '../records/audit.js';
import type { TxType } from '../records/tx/types.js';

/**
 * How an audit event reads to a person, shared by the TUI table and `medledger audit --format table`:
 * `Datetime | User | Role | Patient | Action | Outcome`, newest first, with the reason of a denial.
 */
export const AUDIT_COLUMNS = ['Datetime', 'User', 'Role', 'Patient', 'Action', 'Outcome'] as const;

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Local time as `YYYY-MM-DD HH:MM:SS` (sortable, unambiguous, fits a column). */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

const ACTION_LABELS: Record<TxType, string> = {
  registerPatient: 'register',
  inviteUser: 'invite user',
  activateUser: 'activate account',
  deactivateUser: 'deactivate user',
  rotateKeys: 'rotate keys',
  revokeStaffKey: 'revoke staff key',
  recoverPatientKeys: 'recover patient keys',
  createRecord: 'create record',
  copyRecord: 'copy record',
  updateRecord: 'update record',
  deleteRecord: 'delete record',
  readRecord: 'read record',
  listRecords: 'list records',
  attachFile: 'attach file',
  replaceFile: 'replace file',
  removeFile: 'remove file',
  grantAccess: 'grant access',
  revokeAccess: 'revoke access',
  requestAccess: 'request access',
  approveRequest: 'approve request',
  denyRequest: 'deny request',
  bookAppointment: 'book appointment',
  cancelAppointment: 'cancel appointment',
  queryAudit: 'query audit',
  statsConsent: 'statistics consent',
  statsReport: 'statistics report',
  statsQuery: 'statistics query',
  statsAggregate: 'statistics aggregate share',
};

export function actionLabel(e: Pick<AuditEvent, 'type'>): string {
  return ACTION_LABELS[e.type] ?? e.type;
}

export function outcomeLabel(e: Pick<AuditEvent, 'outcome' | 'reason'>): string {
  return e.outcome === 'denied' ? `denied: ${e.reason ?? 'no reason given'}` : e.outcome;
}

/** One table row, in AUDIT_COLUMNS order. */
export function auditRow(e: AuditEvent): string[] {
  return [formatDateTime(e.recorded), e.agent.user, e.agent.role, e.patient ?? '-', actionLabel(e), outcomeLabel(e)];
}

/** What the row does not show: the object of the action, the receiving hospital, the transaction. */
export function auditDetail(e: AuditEvent): string {
  const parts = [
    e.outcome === 'denied' ? `DENIED: ${e.reason ?? 'no reason given'}` : undefined,
    e.record ? `record ${e.record}` : undefined,
    e.subject ? `about ${e.subject}` : undefined,
    `via ${e.source}`,
    `agent hospital ${e.agent.hospital}`,
    `block ${e.height}`,
    `tx ${e.tx.slice(0, 16)}…`,
  ];
  return parts.filter(Boolean).join(' · ');
}

/** A plain-text table with ` | ` separators, columns as wide as their widest cell. */
export function textTable(header: readonly string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line)].join('\n');
}
