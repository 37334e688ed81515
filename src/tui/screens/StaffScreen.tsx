import { useState } from 'react';
import { enrolStaff, newPasswordProblems } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
import { PASSWORD_POLICY } from '../../records/password.js';
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

/** The admin's own hospital staff; x deactivates the highlighted doctor or auditor. */
export function StaffScreen() {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const [selected, setSelected] = useState(0);
  const overview = useAsync(() => session.overview(), [session]);
  const staff = overview.state === 'done' ? (overview.value.staff ?? []).filter((s) => s.role !== 'admin') : [];
  const current = staff[Math.min(selected, staff.length - 1)];

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(staff.length - 1, i + 1));
      if (input === 'e') return app.push(<EnrolScreen />);
      if (input === 'x' && current?.active) {
        return app.push(
          <ConfirmScreen
            title="Deactivate a staff member"
            question={`Deactivate ${current.id} (${current.role})? The ledger will refuse their actions from the next block.`}
            onYes={async () => {
              await run(() => session.deactivate(current.id), () => `Deactivated ${current.id}`);
              app.back();
            }}
          />,
        );
      }
    },
    { isActive: !app.busy },
  );

  return (
    <Screen title={`Staff of ${session.keys.hospital}`} help={[['↑↓', 'move'], ['e', 'enrol'], ['x', 'deactivate'], ['Esc', 'back']]}>
      <LoadState of={overview} />
      {overview.state === 'done' ? (
        <Table
          columns={[
            { title: 'User', width: 16 },
            { title: 'Role', width: 8 },
            { title: 'Status', width: 10 },
          ]}
          rows={staff.map((s) => [s.id, s.role, s.active ? 'active' : 'inactive'])}
          selected={Math.min(selected, staff.length - 1)}
          cellColor={(r, c) => (c === 2 ? (staff[r]?.active ? 'green' : 'red') : undefined)}
          empty="no staff yet — press e to enrol a doctor or auditor"
        />
      ) : null}
    </Screen>
  );
}

/**
 * Enrolment: keys are generated here, the keystore is written to the hospital's keystore directory
 * under the initial password typed by the admin (told to the staff member in person), then the
 * enrolUser transaction is signed by the admin.
 */
export function EnrolScreen() {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  return (
    <FormScreen
      title={`Enrol a doctor or auditor at ${session.keys.hospital}`}
      intro={`Initial password: ${PASSWORD_POLICY}.`}
      fields={[
        { name: 'user', label: 'New user id', validate: check(parseUserId) },
        { name: 'role', label: 'Role', kind: 'choice', options: ['doctor', 'auditor'] },
        { name: 'password', label: 'Initial password', kind: 'password', validate: (v, all) => newPasswordProblems(all.user ?? '', v)[0] },
        { name: 'repeat', label: 'Repeat password', kind: 'password', validate: (v, all) => (v === all.password ? undefined : 'the two passwords differ') },
      ]}
      submitLabel="Enrol"
      onSubmit={async (v) => {
        const keystoreDir = app.keystoreDir ?? app.status?.keystoreDir ?? (await app.api.status()).keystoreDir;
        const user = v.user!.trim();
        const role = v.role === 'auditor' ? 'auditor' : 'doctor';
        const r = await run(() => enrolStaff(session, { userId: user, role, password: v.password!, keystoreDir }), () => `Enrolled ${user} as ${role}; keystore written to ${keystoreDir}`);
        if (r) app.back();
      }}
    />
  );
}
