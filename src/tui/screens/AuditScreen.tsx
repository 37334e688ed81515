import { Text } from 'ink';
import { useState } from 'react';
import { formatDateTime } from '../../client/auditView.js';
import { optional, parseDateTime, parseRecordId, parseUserId } from '../../client/inputs.js';
import type { AuditFilter } from '../../records/tx/types.js';
import { AuditTable } from '../components/AuditTable.js';
import { check, Form, type FieldSpec, type FormValues } from '../components/Form.js';
import { LoadState } from '../components/LoadState.js';
import { Screen } from '../components/Screen.js';
import { useApp, useSession } from '../context.js';
import { deniedText } from '../hooks/useAction.js';
import { useAsync } from '../hooks/useAsync.js';
import { FORM_HELP } from './FormScreen.js';
import { useKeys } from '../hooks/useKeys.js';

type FilterKey = keyof AuditFilter;
const ANY = 'any';

/** The filter form's fields; fixed filters (own data, own hospital) are not shown. */
function filterFields(filter: AuditFilter, hidden: FilterKey[], opts: { patientRequired: boolean; patients?: string[] }): FieldSpec[] {
  const dateText = (ms: number | undefined) => (ms === undefined ? '' : formatDateTime(ms).slice(0, 16));
  const all: (FieldSpec & { name: FilterKey })[] = [
    {
      name: 'patient',
      label: 'Patient',
      initial: filter.patient ?? opts.patients?.[0] ?? '',
      ...(opts.patients?.length ? { hint: `granted: ${opts.patients.join(', ')}` } : {}),
      validate: check(opts.patientRequired ? parseUserId : optional(parseUserId)),
    },
    { name: 'user', label: 'User (who acted)', initial: filter.user ?? '', validate: check(optional(parseUserId)) },
    { name: 'record', label: 'Record', initial: filter.record ?? '', validate: check(optional(parseRecordId)) },
    {
      name: 'action',
      label: 'Action',
      kind: 'choice',
      options: [ANY, 'C', 'R', 'U', 'D', 'E'],
      initial: filter.action ?? ANY,
      hint: '←→  C create · R read · U update · D delete · E execute',
    },
    { name: 'outcome', label: 'Outcome', kind: 'choice', options: [ANY, 'success', 'denied'], initial: filter.outcome ?? ANY },
    { name: 'from', label: 'From', initial: dateText(filter.from), hint: 'YYYY-MM-DD [HH:MM]', validate: check(optional((t) => parseDateTime(t))) },
    {
      name: 'to',
      label: 'To',
      initial: dateText(filter.to),
      hint: 'YYYY-MM-DD [HH:MM], inclusive',
      validate: (v, all) => {
        const to = optional((t) => parseDateTime(t, { endOfDay: true }))(v);
        if (!to.ok) return to.error;
        const from = optional((t) => parseDateTime(t))(all.from ?? '');
        return from.ok && from.value !== undefined && to.value !== undefined && to.value < from.value ? '"to" is before "from"' : undefined;
      },
    },
  ];
  return all.filter((f) => !hidden.includes(f.name));
}

function filterFrom(values: FormValues, base: AuditFilter): AuditFilter {
  const text = (k: string) => values[k]?.trim() || undefined;
  const date = (k: string, endOfDay: boolean) => {
    const r = parseDateTime(values[k] ?? '', { endOfDay });
    return values[k]?.trim() && r.ok ? r.value : undefined;
  };
  const merged: AuditFilter = { ...base };
  const set = <K extends FilterKey>(k: K, v: AuditFilter[K] | undefined) => {
    if (!(k in values)) return;
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  };
  set('patient', text('patient'));
  set('user', text('user'));
  set('record', text('record'));
  set('action', values.action && values.action !== ANY ? (values.action as AuditFilter['action']) : undefined);
  set('outcome', values.outcome && values.outcome !== ANY ? (values.outcome as AuditFilter['outcome']) : undefined);
  set('from', date('from', false));
  set('to', date('to', true));
  return merged;
}

function describeFilter(f: AuditFilter): string {
  const parts = Object.entries(f)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${k === 'from' || k === 'to' ? formatDateTime(v as number).slice(0, 16) : String(v)}`);
  return parts.length ? parts.join(' · ') : 'none';
}

/**
 * Doctors and auditors start here: the audit trail of one patient who granted them access (the
 * ledger refuses, and records, any other), with the other filters.
 */
export function AuditFilterScreen({ patients }: { patients: string[] }) {
  const app = useApp();
  return (
    <Screen title="Audit trail — choose a patient and filters" help={FORM_HELP}>
      <Form
        fields={filterFields({}, [], { patientRequired: true, patients })}
        submitLabel="Show audit trail"
        onCancel={app.back}
        onSubmit={(v) => app.replace(<AuditScreen filter={filterFrom(v, {})} />)}
      />
    </Screen>
  );
}

/**
 * The audit table, newest first, a page at a time (the cursor of each answer leads to the next). The
 * query is itself a transaction, so looking at the trail is recorded in it too.
 */
export function AuditScreen({ filter: initial, fixed = [], pageSize = 12 }: { filter: AuditFilter; fixed?: FilterKey[]; pageSize?: number }) {
  const session = useSession();
  const app = useApp();
  const [filter, setFilter] = useState<AuditFilter>(initial);
  // Cursors of the pages before the current one: `p` goes back, `n` forward.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [selected, setSelected] = useState(0);
  const [editing, setEditing] = useState(false);
  const cursor = cursors[cursors.length - 1];
  const page = useAsync(() => session.queryAudit(filter, { limit: pageSize, ...(cursor ? { cursor } : {}) }), [filter, cursor]);
  const result = page.state === 'done' ? page.value : undefined;
  const events = result?.value?.events ?? [];
  const next = result?.value?.cursor;
  const isAdmin = session.keys.role === 'admin';
  const hidden: FilterKey[] = [...fixed, 'hospital', ...(isAdmin ? (['patient'] as FilterKey[]) : [])];

  useKeys(
    (input, key) => {
      if (key.escape) return app.back();
      if (key.upArrow || input === 'k') return setSelected((i) => Math.max(0, i - 1));
      if (key.downArrow || input === 'j') return setSelected((i) => Math.min(events.length - 1, i + 1));
      if ((input === 'n' || key.pageDown) && next) {
        setSelected(0);
        return setCursors((c) => [...c, next]);
      }
      if ((input === 'p' || key.pageUp) && cursors.length > 1) {
        setSelected(0);
        return setCursors((c) => c.slice(0, -1));
      }
      if (input === 'f') return setEditing(true);
      if (input === 'r') return page.reload();
    },
    { isActive: !app.busy && !editing },
  );

  if (editing) {
    return (
      <Screen title="Audit trail — filters" help={FORM_HELP}>
        <Form
          fields={filterFields(filter, hidden, { patientRequired: !isAdmin && session.keys.role !== 'patient' })}
          submitLabel="Apply filters"
          onCancel={() => setEditing(false)}
          onSubmit={(v) => {
            setFilter(filterFrom(v, filter));
            setCursors([undefined]);
            setSelected(0);
            setEditing(false);
          }}
        />
      </Screen>
    );
  }

  return (
    <Screen
      title={`Audit trail${filter.patient ? ` of ${filter.patient}` : filter.hospital ? ` of ${filter.hospital}'s staff` : ''} — newest first`}
      help={[
        ['↑↓', 'row'],
        ['n', 'next page'],
        ['p', 'previous page'],
        ['f', 'filters'],
        ['r', 'reload'],
        ['Esc', 'back'],
      ]}
    >
      <Text dimColor>
        filters: {describeFilter(filter)} · page {cursors.length}
        {next ? ' · more: n' : ''}
      </Text>
      <LoadState of={page} loading="querying the ledger (the query is audited too)…" />
      {result?.denied ? <Text color="red">{deniedText(result.denied)}</Text> : null}
      {result && !result.denied ? <AuditTable events={events} selected={Math.min(selected, events.length - 1)} /> : null}
    </Screen>
  );
}
