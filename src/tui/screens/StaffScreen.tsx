import { useState } from 'react';
import { Box, Text } from 'ink';
import { inviteStaff } from '../../client/accounts.js';
import { parseUserId } from '../../client/inputs.js';
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
              await run(
                () => session.deactivate(current.id),
                () => `Deactivated ${current.id}`,
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
      title={`Staff of ${session.keys.hospital}`}
      help={[
        ['↑↓', 'move'],
        ['e', 'enrol'],
        ['x', 'deactivate'],
        ['Esc', 'back'],
      ]}
    >
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
 * Enrolment is an invitation (issue 10): the admin names the user id and role, the ledger records the
 * inviteUser transaction, and this screen shows the one-time activation code, once, to hand over in person.
 * The staff member's keys and password are created on their own computer (login screen, Ctrl-A).
 */
export function EnrolScreen() {
  const session = useSession();
  const run = useAction();
  const [invited, setInvited] = useState<{ user: string; role: string; code: string; expiresAt: number } | null>(null);
  if (invited) return <CodeScreen {...invited} />;
  return (
    <FormScreen
      title={`Enrol a doctor or auditor at ${session.keys.hospital}`}
      intro="You get a one-time activation code to hand over in person; the new member chooses their own password."
      fields={[
        { name: 'user', label: 'New user id', validate: check(parseUserId) },
        { name: 'role', label: 'Role', kind: 'choice', options: ['doctor', 'auditor'] },
      ]}
      submitLabel="Invite"
      onSubmit={async (v) => {
        const user = v.user!.trim();
        const role = v.role === 'auditor' ? 'auditor' : 'doctor';
        let result: Awaited<ReturnType<typeof inviteStaff>> | undefined;
        const r = await run(
          async () => (result = await inviteStaff(session, { userId: user, role })).outcome,
          () => `Invited ${user} as ${role}`,
        );
        if (r && result && !result.outcome.denied) setInvited({ user, role, code: result.code, expiresAt: result.expiresAt });
      }}
    />
  );
}

function CodeScreen({ user, role, code, expiresAt }: { user: string; role: string; code: string; expiresAt: number }) {
  const app = useApp();
  useKeys((_input, key) => {
    if (key.escape || key.return) app.back();
  });
  return (
    <Screen title={`Activation code for ${user}`} help={[['Enter/Esc', 'done']]}>
      <Text>
        {user} ({role}) activates with this code, on their own computer (login screen, Ctrl-A):
      </Text>
      <Box marginY={1}>
        <Text bold color="cyan">
          {code}
        </Text>
      </Box>
      <Text dimColor>Valid until {new Date(expiresAt).toISOString()}. It is shown only once; hand it over in person.</Text>
    </Screen>
  );
}
