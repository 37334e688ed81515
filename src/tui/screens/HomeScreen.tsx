import { Box, Text } from 'ink';
import type { ReactElement } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { parseUserId } from '../../client/inputs.js';
import type { Overview } from '../../api/contract.js';
import { check } from '../components/Form.js';
import { Menu, type MenuItem } from '../components/Menu.js';
import { Screen } from '../components/Screen.js';
import { useApp, useSession } from '../context.js';
import { useAction } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { AccessScreen } from './AccessScreen.js';
import { AppointmentsScreen } from './AppointmentsScreen.js';
import { ConfirmScreen } from './ConfirmScreen.js';
import { AuditFilterScreen, AuditScreen } from './AuditScreen.js';
import { FormScreen } from './FormScreen.js';
import { NodeStatusScreen } from './NodeStatusScreen.js';
import { PasswordScreen } from './PasswordScreen.js';
import { PatientsScreen } from './PatientsScreen.js';
import { RecordFormScreen } from './RecordFormScreen.js';
import { RecordsScreen } from './RecordsScreen.js';
import { RotateKeysScreen } from './RotateKeysScreen.js';
import { StatsScreen } from './StatsScreen.js';
import { EnrolScreen, StaffScreen } from './StaffScreen.js';
import { VerifyScreen } from './VerifyScreen.js';

const MENU_HELP: [string, string][] = [
  ['↑↓', 'move'],
  ['Enter', 'open'],
  ['letter', 'shortcut'],
  ['l', 'log out'],
  ['q', 'quit'],
];

/** The signed-in user's main menu: what their role may do (PROTOCOL.md §3.1), each item one key away. */
export function HomeScreen() {
  const session = useSession();
  const { busy } = useApp();
  const overview = useAsync(() => session.overview(), [session]);
  const items = useRoleMenu(overview.state === 'done' ? overview.value : undefined);
  const role = session.keys.role;
  return (
    <Screen title={`${capitalise(role)} menu — ${session.userId}`} help={MENU_HELP}>
      <Box flexDirection="column" marginBottom={1}>
        {overview.state === 'loading' ? <Text dimColor>loading your overview…</Text> : null}
        {overview.state === 'error' ? <Text color="red">Could not load your overview: {overview.error}</Text> : null}
        {overview.state === 'done' ? <Summary overview={overview.value} /> : null}
      </Box>
      <Menu items={items} isActive={!busy} />
    </Screen>
  );
}

function Summary({ overview }: { overview: Overview }) {
  const o = overview;
  const lines: string[] = [];
  if (o.user.role === 'patient') {
    lines.push(`Access granted to: ${o.grants?.map((g) => `${g.user} (${g.kind})`).join(', ') || 'nobody'}`);
    if (o.requests?.length) lines.push(`Pending requests: ${o.requests.map((r) => `${r.user} (${r.kind})`).join(', ')}`);
    const next = o.appointments?.filter((a) => a.status === 'booked' && a.at > Date.now()).sort((a, b) => a.at - b.at)[0];
    if (next) lines.push(`Next appointment: ${formatDateTime(next.at).slice(0, 16)} with ${next.doctor}`);
    lines.push(`Contributes to anonymous statistics: ${o.statsConsent?.contribute ? 'yes' : 'no'}`);
  } else if (o.user.role === 'doctor' || o.user.role === 'auditor') {
    lines.push(`Patients who granted you access: ${o.patients?.map((p) => p.patient).join(', ') || 'none yet'}`);
    if (o.pendingRequests?.length) lines.push(`Your pending requests: ${o.pendingRequests.map((p) => p.patient).join(', ')}`);
    const booked = o.appointments?.filter((a) => a.status === 'booked').length;
    if (booked) lines.push(`Booked appointments: ${booked}`);
  } else if (o.user.role === 'admin') {
    const staff = o.staff?.filter((s) => s.role !== 'admin') ?? [];
    lines.push(`Staff of ${o.user.hospital}: ${staff.map((s) => `${s.id} (${s.role}${s.active ? '' : ', inactive'})`).join(', ') || 'none yet'}`);
  }
  if (!o.user.active) lines.push('Your account is deactivated: the ledger will refuse your actions.');
  return (
    <Box flexDirection="column">
      {lines.map((l) => (
        <Text key={l}>{l}</Text>
      ))}
    </Box>
  );
}

function useRoleMenu(overview: Overview | undefined): MenuItem[] {
  const session = useSession();
  const app = useApp();
  const run = useAction();
  const me = session.userId;
  const open = (screen: ReactElement) => () => app.push(screen);
  const common: MenuItem[] = [
    { hotkey: 's', label: 'Node status', onSelect: open(<NodeStatusScreen />) },
    { hotkey: 'c', label: 'Change password', onSelect: open(<PasswordScreen />) },
    { hotkey: 'l', label: 'Log out', onSelect: app.logout },
    { hotkey: 'q', label: 'Quit', onSelect: app.quit },
  ];
  // Admins' keys are in the genesis file and cannot rotate (denied role-not-allowed): not on their menu.
  const rotate: MenuItem = { hotkey: 'y', label: 'Rotate my keys', onSelect: open(<RotateKeysScreen />) };
  const requestAccess = open(
    <FormScreen
      title="Request access to a patient's records"
      intro="The request stays pending until the patient approves it."
      fields={[{ name: 'patient', label: 'Patient id', validate: check(parseUserId) }]}
      submitLabel="Send request"
      onSubmit={async (v) => {
        const r = await run(
          () => session.requestAccess(v.patient!.trim()),
          () => `Access requested from ${v.patient!.trim()}; pending until they approve`,
        );
        if (r) app.back();
      }}
    />,
  );
  const contributes = overview?.statsConsent?.contribute === true;
  const statsConsent = open(
    <ConfirmScreen
      title="Anonymous statistics"
      question={
        contributes
          ? 'Stop contributing the vital signs of your future records to anonymous statistics? Reports already made stay in their batches.'
          : 'Contribute the vital signs of your new and updated records to anonymous statistics? Each value is split between all hospitals, so none of them, nor any auditor, sees it; only totals over at least 10 reports are released.'
      }
      onYes={async () => {
        const r = await run(
          () => session.setStatsConsent(!contributes),
          () => (contributes ? 'You no longer contribute to anonymous statistics' : 'You now contribute to anonymous statistics'),
        );
        if (r) app.back();
      }}
    />,
  );
  switch (session.keys.role) {
    case 'patient':
      return [
        { hotkey: 'r', label: 'My records', onSelect: open(<RecordsScreen patient={me} />) },
        { hotkey: 'n', label: 'New record', onSelect: open(<RecordFormScreen patient={me} />) },
        { hotkey: 'a', label: 'My doctors and auditors (grant, revoke, requests)', onSelect: open(<AccessScreen />) },
        { hotkey: 'p', label: 'Appointments', onSelect: open(<AppointmentsScreen />) },
        { hotkey: 'w', label: 'Who accessed my data (audit trail)', onSelect: open(<AuditScreen filter={{ patient: me }} fixed={['patient']} />) },
        { hotkey: 'o', label: contributes ? 'Anonymous statistics: stop contributing' : 'Anonymous statistics: contribute (opt in)', onSelect: statsConsent },
        rotate,
        ...common,
      ];
    case 'doctor':
      return [
        { hotkey: 'm', label: 'My patients', onSelect: open(<PatientsScreen />) },
        {
          hotkey: 'o',
          label: "Open a patient's records by id",
          onSelect: open(
            <FormScreen
              title="Open a patient's records"
              intro="Works for patients who granted you access; any other attempt is denied and recorded."
              fields={[{ name: 'patient', label: 'Patient id', validate: check(parseUserId) }]}
              submitLabel="Open"
              onSubmit={(v) => app.replace(<RecordsScreen patient={v.patient!.trim()} />)}
            />,
          ),
        },
        { hotkey: 'x', label: 'Request access to a patient', onSelect: requestAccess },
        { hotkey: 'p', label: 'Appointments', onSelect: open(<AppointmentsScreen />) },
        { hotkey: 't', label: "A patient's audit trail", onSelect: open(<AuditFilterScreen patients={overview?.patients?.map((p) => p.patient) ?? []} />) },
        rotate,
        ...common,
      ];
    case 'auditor':
      return [
        { hotkey: 't', label: 'Audit trail (with filters)', onSelect: open(<AuditFilterScreen patients={overview?.patients?.map((p) => p.patient) ?? []} />) },
        { hotkey: 'm', label: 'My patients (view records)', onSelect: open(<PatientsScreen />) },
        { hotkey: 'x', label: 'Request access to a patient', onSelect: requestAccess },
        { hotkey: 'v', label: 'Verify replicas', onSelect: open(<VerifyScreen />) },
        { hotkey: 'a', label: 'Statistics (across hospitals, private)', onSelect: open(<StatsScreen />) },
        rotate,
        ...common,
      ];
    case 'admin':
      return [
        { hotkey: 'e', label: 'Enrol a doctor or auditor', onSelect: open(<EnrolScreen />) },
        { hotkey: 'd', label: 'Staff (deactivate)', onSelect: open(<StaffScreen />) },
        {
          hotkey: 't',
          label: "Audit trail of my hospital's staff",
          onSelect: open(<AuditScreen filter={{ hospital: session.keys.hospital }} fixed={['hospital']} />),
        },
        { hotkey: 'v', label: 'Verify replicas', onSelect: open(<VerifyScreen />) },
        ...common,
      ];
  }
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
