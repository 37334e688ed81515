import { Text } from 'ink';
import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import type { RecordMeta } from '../../records/state/types.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp, useSession } from '../context.js';
import { deniedText, useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { ConfirmScreen } from './ConfirmScreen.js';
import { RecordFormScreen } from './RecordFormScreen.js';
import { RecordScreen } from './RecordScreen.js';
import { useKeys } from '../hooks/useKeys.js';

/** Who may change a patient's records (PROTOCOL.md §3.1): the patient and granted doctors; auditors only read. */
export function canWrite(role: string): boolean {
  return role === 'patient' || role === 'doctor';
}

const COLUMNS = [
  { title: 'Record', width: 20 },
  { title: 'Created', width: 16 },
  { title: 'Updated', width: 16 },
  { title: 'By', width: 12 },
  { title: 'Ver', width: 3 },
  { title: 'Files', width: 5 },
];

/** A patient's records (an audited "list records"): open, create, copy, delete. */
export function RecordsScreen({ patient }: { patient: string }) {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const [selected, setSelected] = useState(0);
  const list = useAsync(() => session.listRecords(patient), [patient]);
  const writable = canWrite(session.keys.role);
  const records: RecordMeta[] = list.state === 'done' ? (list.value.value ?? []) : [];
  const current = records[Math.min(selected, records.length - 1)];

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(records.length - 1, i + 1));
      if (input === 'r') return list.reload();
      if (key.return && current) return app.push(<RecordScreen patient={patient} record={current.id} />);
      if (!writable) return;
      if (input === 'c') return app.push(<RecordFormScreen patient={patient} />);
      if (input === 'y' && current) {
        void run(
          () => session.copyRecord(patient, current.id),
          (o) => `Copied ${current.id} to ${o.value}`,
        ).then(() => list.reload());
      }
      if (input === 'd' && current) {
        app.push(
          <ConfirmScreen
            title="Delete a record"
            question={`Delete record ${current.id} of ${patient}? Its content is purged from every replica.`}
            onYes={async () => {
              await run(
                () => session.deleteRecord(patient, current.id),
                () => `Deleted ${current.id}`,
              );
              app.back();
            }}
          />,
        );
      }
    },
    { isActive: !app.busy },
  );

  const help: [string, string][] = [
    ['↑↓', 'move'],
    ['Enter', 'view'],
    ...(writable
      ? ([
          ['c', 'create'],
          ['y', 'copy'],
          ['d', 'delete'],
        ] as [string, string][])
      : []),
    ['r', 'reload'],
    ['Esc', 'back'],
  ];
  return (
    <Screen title={`Records of ${patient}${patient === session.userId ? ' (mine)' : ''}`} help={help}>
      <LoadState of={list} loading="loading (an audited list)…" />
      {list.state === 'done' && list.value.denied ? <Text color="red">{deniedText(list.value.denied)}</Text> : null}
      {list.state === 'done' && !list.value.denied ? (
        <Table
          columns={COLUMNS}
          rows={records.map((r) => [
            r.id,
            formatDateTime(r.createdAt).slice(0, 16),
            formatDateTime(r.updatedAt).slice(0, 16),
            r.createdBy,
            String(r.version),
            String(Object.values(r.files).filter((f) => !f.removed).length),
          ])}
          selected={Math.min(selected, records.length - 1)}
          empty={writable ? 'no records yet — press c to create one' : 'no records'}
        />
      ) : null}
    </Screen>
  );
}
