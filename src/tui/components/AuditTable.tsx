import { Box, Text } from 'ink';
import { AUDIT_COLUMNS, auditDetail, auditRow } from '../../client/auditView.js';
import type { AuditEvent } from '../../records/audit.js';
import { Table, type Column } from './Table.js';

const WIDTHS = [19, 12, 7, 12, 16, 20];
const COLUMNS: Column[] = AUDIT_COLUMNS.map((title, i) => ({ title, width: WIDTHS[i]! }));
const OUTCOME = AUDIT_COLUMNS.indexOf('Outcome');

/** `Datetime | User | Role | Patient | Action | Outcome`, newest first; denied outcomes in red with the reason. */
export function AuditTable({ events, selected }: { events: AuditEvent[]; selected?: number }) {
  const chosen = selected !== undefined ? events[selected] : undefined;
  return (
    <Box flexDirection="column">
      <Table
        columns={COLUMNS}
        rows={events.map(auditRow)}
        {...(selected !== undefined ? { selected } : {})}
        cellColor={(r, c) => (c === OUTCOME ? (events[r]?.outcome === 'denied' ? 'red' : 'green') : undefined)}
        empty="no audit events match"
      />
      {chosen ? <Text dimColor> {auditDetail(chosen)}</Text> : null}
    </Box>
  );
}
