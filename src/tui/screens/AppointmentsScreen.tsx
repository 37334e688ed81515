import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { parseFutureDateTime, parseUserId } from '../../client/inputs.js';
import { check } from '../components/Form.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp, useSession } from '../context.js';
import { useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { ConfirmScreen } from './ConfirmScreen.js';
import { FormScreen } from './FormScreen.js';
import { useKeys } from '../hooks/useKeys.js';

/** Appointments: a patient books and cancels; a doctor sees and cancels their own (PROTOCOL.md §3.1). */
export function AppointmentsScreen() {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const isPatient = session.keys.role === 'patient';
  const [selected, setSelected] = useState(0);
  const overview = useAsync(() => session.overview(), [session]);
  const list = overview.state === 'done' ? [...(overview.value.appointments ?? [])].sort((a, b) => a.at - b.at) : [];
  const current = list[Math.min(selected, list.length - 1)];

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(list.length - 1, i + 1));
      if (input === 'b' && isPatient) {
        return app.push(
          <FormScreen
            title="Book an appointment"
            fields={[
              { name: 'doctor', label: 'Doctor id', validate: check(parseUserId) },
              { name: 'at', label: 'Date and time', hint: 'YYYY-MM-DD HH:MM, in the future', validate: check((t) => parseFutureDateTime(t)) },
            ]}
            submitLabel="Book"
            onSubmit={async (v) => {
              const at = parseFutureDateTime(v.at!);
              if (!at.ok) return at.error;
              const doctor = v.doctor!.trim();
              const r = await run(
                () => session.book(doctor, at.value),
                () => `Booked ${doctor} on ${formatDateTime(at.value).slice(0, 16)}`,
              );
              if (r) app.back();
            }}
          />,
        );
      }
      if (input === 'c' && current && current.status === 'booked') {
        return app.push(
          <ConfirmScreen
            title="Cancel an appointment"
            question={`Cancel the appointment of ${current.patient} with ${current.doctor} on ${formatDateTime(current.at).slice(0, 16)}?`}
            onYes={async () => {
              await run(
                () => session.cancel(current.patient, current.id),
                () => `Cancelled appointment ${current.id}`,
              );
              app.back();
            }}
          />,
        );
      }
    },
    { isActive: !app.busy },
  );

  return (
    <Screen
      title={isPatient ? 'My appointments' : 'My appointments with patients'}
      help={[['↑↓', 'move'], ...(isPatient ? ([['b', 'book']] as [string, string][]) : []), ['c', 'cancel'], ['Esc', 'back']]}
    >
      <LoadState of={overview} />
      {overview.state === 'done' ? (
        <Table
          columns={[
            { title: 'When', width: 16 },
            { title: isPatient ? 'Doctor' : 'Patient', width: 14 },
            { title: 'Status', width: 9 },
            { title: 'Appointment', width: 20 },
          ]}
          rows={list.map((a) => [formatDateTime(a.at).slice(0, 16), isPatient ? a.doctor : a.patient, a.status, a.id])}
          selected={Math.min(selected, list.length - 1)}
          cellColor={(r, c) => (c === 2 && list[r]?.status === 'cancelled' ? 'gray' : undefined)}
          empty={isPatient ? 'no appointments — press b to book one' : 'no appointments'}
        />
      ) : null}
    </Screen>
  );
}
