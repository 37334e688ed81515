import type { Command } from 'commander';
import { formatDateTime, textTable } from '../../client/auditView.js';
import { parseFutureDateTime, parseUserId } from '../../client/inputs.js';
import type { ActionOutcome, Session } from '../../client/session.js';
import { UsageError } from '../passwordPrompt.js';
import { flag, json, patientOf, reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/**
 * Access and appointments for scripts: `grant`, `revoke`, `request`, `approve`, `deny`, and
 * `appointment book|cancel|list`; plus `whoami` (grants, requests, patients, staff) — the TUI's lists.
 */
type Opts = UserOptions & { json?: boolean };
const userArg = (what: string) => (value: string) => flag(what, value, parseUserId)!;

function accessAction(cmd: Command, what: string, act: (s: Session, id: string) => Promise<ActionOutcome>, done: (id: string) => string): Command {
  return withUserOptions(cmd)
    .argument(`<${what}>`, `${what} user id`, userArg(what))
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: Opts) => {
      const session = await signIn(o);
      const r = await act(session, id);
      if (reportOutcome(r, done(id), o.json) && o.json) json({ ok: true, tx: r.id });
    });
}

export function addGrantCommand(cmd: Command): Command {
  return accessAction(
    cmd.description('patient: give a doctor or auditor access to all your records'),
    'grantee',
    (s, id) => s.grant(id),
    (id) => `granted ${id}`,
  );
}
export function addRevokeCommand(cmd: Command): Command {
  return accessAction(
    cmd.description("patient: revoke a doctor's or auditor's access (from the next block)"),
    'grantee',
    (s, id) => s.revoke(id),
    (id) => `revoked ${id}`,
  );
}
export function addRequestCommand(cmd: Command): Command {
  return accessAction(
    cmd.description('doctor or auditor: ask a patient for access (pending until approved)'),
    'patient',
    (s, id) => s.requestAccess(id),
    (id) => `requested access to ${id}`,
  );
}
export function addApproveCommand(cmd: Command): Command {
  return accessAction(
    cmd.description('patient: approve a pending access request'),
    'requester',
    (s, id) => s.approveRequest(id),
    (id) => `approved ${id}`,
  );
}
export function addDenyCommand(cmd: Command): Command {
  return accessAction(
    cmd.description('patient: deny a pending access request'),
    'requester',
    (s, id) => s.denyRequest(id),
    (id) => `denied ${id}'s request`,
  );
}

export function addWhoamiCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('your role, grants, requests, patients, appointments or staff'))
    .option('--json', 'machine-readable output')
    .action(async (o: Opts) => {
      const session = await signIn(o);
      const ov = await session.overview();
      if (o.json) return void json(ov);
      const lines = [`${ov.user.id}  ${ov.user.role}  ${ov.user.hospital}${ov.user.active ? '' : '  (deactivated)'}`];
      if (ov.grants) lines.push(`granted: ${ov.grants.map((g) => `${g.user} (${g.kind})`).join(', ') || 'nobody'}`);
      if (ov.requests) lines.push(`requests: ${ov.requests.map((g) => `${g.user} (${g.kind})`).join(', ') || 'none'}`);
      if (ov.patients) lines.push(`patients: ${ov.patients.map((p) => p.patient).join(', ') || 'none'}`);
      if (ov.pendingRequests) lines.push(`pending requests: ${ov.pendingRequests.map((p) => p.patient).join(', ') || 'none'}`);
      if (ov.user.role === 'patient') lines.push(`contributes to anonymous statistics: ${ov.statsConsent?.contribute ? 'yes' : 'no'}`);
      if (ov.appointments) lines.push(`appointments: ${ov.appointments.length}`);
      if (ov.staff) lines.push(`staff: ${ov.staff.map((s) => `${s.id} (${s.role}${s.active ? '' : ', inactive'})`).join(', ')}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

export function addAppointmentCommands(appointment: Command): Command {
  appointment.description('book, cancel and list appointments');
  withUserOptions(appointment.command('book').description('patient: book a doctor'))
    .requiredOption('--doctor <id>', 'doctor user id')
    .requiredOption('--at <datetime>', 'local date and time, YYYY-MM-DD HH:MM (in the future)')
    .option('--json', 'machine-readable output')
    .action(async (o: Opts & { doctor: string; at: string }) => {
      const doctor = flag('doctor', o.doctor, parseUserId)!;
      const at = flag('at', o.at, (t) => parseFutureDateTime(t))!;
      const session = await signIn(o);
      const r = await session.book(doctor, at);
      if (reportOutcome(r, `booked ${r.value} with ${doctor} on ${formatDateTime(at)}`, o.json) && o.json) json({ appointment: r.value, tx: r.id });
    });
  withUserOptions(appointment.command('cancel').description('patient, or the doctor of the appointment: cancel it'))
    .argument('<appointment>', 'appointment id (apt-…)')
    .option('--patient <id>', "the appointment's patient (default: yourself, for patients)")
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: Opts & { patient?: string }) => {
      const session = await signIn(o);
      let patient = o.patient;
      if (!patient && session.keys.role === 'doctor') patient = (await session.overview()).appointments?.find((a) => a.id === id)?.patient;
      if (!patient && session.keys.role !== 'patient') throw new UsageError(`no appointment ${id} of yours; give --patient`);
      const r = await session.cancel(patientOf(session, patient), id);
      if (reportOutcome(r, `cancelled ${id}`, o.json) && o.json) json({ appointment: id, cancelled: true, tx: r.id });
    });
  withUserOptions(appointment.command('list').description('your appointments'))
    .option('--json', 'machine-readable output')
    .action(async (o: Opts) => {
      const session = await signIn(o);
      const list = [...((await session.overview()).appointments ?? [])].sort((a, b) => a.at - b.at);
      if (o.json) return void json({ appointments: list });
      process.stdout.write(
        `${textTable(
          ['When', 'Patient', 'Doctor', 'Status', 'Appointment'],
          list.map((a) => [formatDateTime(a.at), a.patient, a.doctor, a.status, a.id]),
        )}\n`,
      );
    });
  return appointment;
}
