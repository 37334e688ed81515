import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp, useSession } from '../context.js';
import { useAsync } from '../hooks/useAsync.js';
import { AuditScreen } from './AuditScreen.js';
import { RecordsScreen } from './RecordsScreen.js';
import { useKeys } from '../hooks/useKeys.js';

/** A doctor's or auditor's patients: those who granted access, and requests still pending. */
export function PatientsScreen() {
  const session = useSession();
  const app = useApp();
  const [selected, setSelected] = useState(0);
  const overview = useAsync(() => session.overview(), [session]);
  const rows =
    overview.state === 'done'
      ? [
          ...(overview.value.patients ?? []).map((p) => ({ patient: p.patient, granted: true, at: p.since })),
          ...(overview.value.pendingRequests ?? []).map((p) => ({ patient: p.patient, granted: false, at: p.at })),
        ]
      : [];
  const row = rows[Math.min(selected, rows.length - 1)];

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(rows.length - 1, i + 1));
      if (!row?.granted) return;
      if (key.return) app.push(<RecordsScreen patient={row.patient} />);
      if (input === 't') app.push(<AuditScreen filter={{ patient: row.patient }} fixed={['patient']} />);
    },
    { isActive: !app.busy },
  );

  return (
    <Screen
      title="My patients"
      help={[
        ['↑↓', 'move'],
        ['Enter', 'records'],
        ['t', 'audit trail'],
        ['Esc', 'back'],
      ]}
    >
      <LoadState of={overview} />
      {overview.state === 'done' ? (
        <Table
          columns={[
            { title: 'Patient', width: 16 },
            { title: 'Access', width: 22 },
            { title: 'Since', width: 16 },
          ]}
          rows={rows.map((r) => [r.patient, r.granted ? 'granted' : 'requested (pending)', formatDateTime(r.at).slice(0, 16)])}
          selected={Math.min(selected, rows.length - 1)}
          cellColor={(r, c) => (c === 1 ? (rows[r]?.granted ? 'green' : 'yellow') : undefined)}
          empty="no patient has granted you access yet — request access from the main menu"
        />
      ) : null}
    </Screen>
  );
}
