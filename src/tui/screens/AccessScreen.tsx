import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { parseUserId } from '../../client/inputs.js';
import { check } from '../components/Form.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { Table } from '../components/Table.js';
import { useApp, useSession } from '../context.js';
import { useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { FormScreen } from './FormScreen.js';
import { useKeys } from '../hooks/useKeys.js';

interface Row {
  kind: 'grant' | 'request';
  user: string;
  role: string;
  at: number;
}

/** A patient's doctors and auditors: grant, revoke, and approve or deny pending requests (PROTOCOL.md §3.1). */
export function AccessScreen() {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const [selected, setSelected] = useState(0);
  const overview = useAsync(() => session.overview(), [session]);
  const rows: Row[] =
    overview.state === 'done'
      ? [
          ...(overview.value.grants ?? []).map((g) => ({ kind: 'grant' as const, user: g.user, role: g.kind, at: g.since })),
          ...(overview.value.requests ?? []).map((r) => ({ kind: 'request' as const, user: r.user, role: r.kind, at: r.at })),
        ]
      : [];
  const row = rows[Math.min(selected, rows.length - 1)];
  const act = async (p: Parameters<typeof run>[0], text: string) => {
    await run(p, () => text);
    overview.reload();
  };

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(rows.length - 1, i + 1));
      if (input === 'g') {
        return app.push(
          <FormScreen
            title="Grant access to my records"
            intro="A doctor may then read and change your records; an auditor may read them and your audit trail. Your existing records' keys are wrapped for them."
            fields={[{ name: 'user', label: 'Doctor or auditor id', validate: check(parseUserId) }]}
            submitLabel="Grant"
            onSubmit={async (v) => {
              const user = v.user!.trim();
              const r = await run(
                () => session.grant(user),
                () => `Granted ${user} access to your records`,
              );
              if (r) app.back();
            }}
          />,
        );
      }
      if (!row) return;
      if (input === 'r' && row.kind === 'grant') void act(() => session.revoke(row.user), `Revoked ${row.user}'s access`);
      if (input === 'a' && row.kind === 'request') void act(() => session.approveRequest(row.user), `Approved ${row.user}'s request`);
      if (input === 'd' && row.kind === 'request') void act(() => session.denyRequest(row.user), `Denied ${row.user}'s request`);
    },
    { isActive: !app.busy },
  );

  return (
    <Screen
      title="My doctors and auditors"
      help={[
        ['↑↓', 'move'],
        ['g', 'grant'],
        ['r', 'revoke'],
        ['a', 'approve request'],
        ['d', 'deny request'],
        ['Esc', 'back'],
      ]}
    >
      <LoadState of={overview} />
      {overview.state === 'done' ? (
        <Table
          columns={[
            { title: 'User', width: 16 },
            { title: 'Role', width: 8 },
            { title: 'Status', width: 18 },
            { title: 'Since', width: 16 },
          ]}
          rows={rows.map((r) => [r.user, r.role, r.kind === 'grant' ? 'has access' : 'requests access', formatDateTime(r.at).slice(0, 16)])}
          selected={Math.min(selected, rows.length - 1)}
          cellColor={(r, c) => (c === 2 ? (rows[r]?.kind === 'grant' ? 'green' : 'yellow') : undefined)}
          empty="nobody has access and there are no requests — press g to grant a doctor or auditor"
        />
      ) : null}
    </Screen>
  );
}
