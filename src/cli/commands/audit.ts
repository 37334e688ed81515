import { Option, type Command } from 'commander';
import { AUDIT_COLUMNS, auditRow, textTable } from '../../client/auditView.js';
import { parseAuditAction, parseDateTime, parseOutcome, parsePositiveInt, parseRecordId, parseUserId } from '../../client/inputs.js';
import type { AuditEvent } from '../../records/audit.js';
import { toFhirBundle } from '../../records/fhir.js';
import type { AuditFilter } from '../../records/tx/types.js';
import { UsageError } from '../passwordPrompt.js';
import { flag, reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/**
 * `medledger audit [filters] --format table|json|fhir`: the audit trail the user may see (PROTOCOL.md §3.4), newest
 * first, one page (`--limit`, `--cursor`) or every page (`--all`).
 *
 * Output formats are a map from name to formatter: a new format (e.g. FHIR) is one more entry here.
 */
export interface AuditPage {
  events: AuditEvent[];
  /** Present when more events follow: pass it as --cursor for the next page. */
  cursor?: string;
}

export interface AuditFormatContext {
  filter: AuditFilter;
  /** The signed-in user and the node's hospital, for formats that name the observer or the source. */
  user: string;
  hospital: string;
}

export type AuditFormatter = (page: AuditPage, ctx: AuditFormatContext) => string;

export const auditFormatters: Record<string, AuditFormatter> = {
  table: (page) => {
    const table = textTable(AUDIT_COLUMNS, page.events.map(auditRow));
    return `${table}\n${page.events.length} event(s)${page.cursor ? ` · more: --cursor ${page.cursor}` : ''}\n`;
  },
  json: (page) => `${JSON.stringify({ events: page.events, ...(page.cursor ? { cursor: page.cursor } : {}) })}\n`,
  // FHIR R4 Bundle of AuditEvent resources shaped after IHE BALP (src/records/fhir.ts); use --all for the whole trail.
  fhir: (page) => `${JSON.stringify(toFhirBundle(page.events, { timestamp: Date.now() }), null, 2)}\n`,
};

interface AuditOpts extends UserOptions {
  patient?: string;
  actor?: string;
  record?: string;
  hospital?: string;
  action?: string;
  outcome?: string;
  from?: string;
  to?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
  format: string;
}

/** At most this many pages with --all (50,000 events at the largest page size). */
const MAX_PAGES = 100;

export function addAuditCommand(cmd: Command): Command {
  return withUserOptions(cmd.description('query the audit trail: patients their own, doctors and auditors their patients, admins their staff'))
    .option('--patient <id>', 'whose data (default: yourself, for patients)')
    .option('--actor <id>', 'who acted (the "User" column)')
    .option('--record <id>', 'one record')
    .option('--hospital <id>', "admins: the hospital whose staff's actions (default: your own)")
    .option('--action <C|R|U|D|E>', 'create, read, update, delete or execute')
    .option('--outcome <success|denied>', 'only successes or only denials')
    .option('--from <date>', 'from this local date/time (YYYY-MM-DD [HH:MM])')
    .option('--to <date>', 'up to this local date/time, inclusive')
    .option('--limit <n>', 'events per page (1-500)', '50')
    .option('--cursor <cursor>', 'continue after a previous page')
    .option('--all', 'follow the cursor through every page')
    .addOption(new Option('--format <format>', 'output format').choices(Object.keys(auditFormatters)).default('table'))
    .action(async (o: AuditOpts) => {
      const formatter = auditFormatters[o.format];
      if (!formatter) throw new UsageError(`unknown format ${o.format}`);
      const limit = flag('limit', o.limit, (t) => parsePositiveInt(t, 'limit'))!;
      if (limit > 500) throw new UsageError('--limit: at most 500');
      const filter: AuditFilter = {
        ...(o.patient ? { patient: flag('patient', o.patient, parseUserId)! } : {}),
        ...(o.actor ? { user: flag('actor', o.actor, parseUserId)! } : {}),
        ...(o.record ? { record: flag('record', o.record, parseRecordId)! } : {}),
        ...(o.hospital ? { hospital: o.hospital } : {}),
        ...(o.action ? { action: flag('action', o.action, parseAuditAction)! } : {}),
        ...(o.outcome ? { outcome: flag('outcome', o.outcome, parseOutcome)! } : {}),
        ...(o.from ? { from: flag('from', o.from, (t) => parseDateTime(t))! } : {}),
        ...(o.to ? { to: flag('to', o.to, (t) => parseDateTime(t, { endOfDay: true }))! } : {}),
      };
      const session = await signIn(o);
      // The ledger's rules decide; these defaults only save typing the obvious.
      if (!filter.patient && session.keys.role === 'patient') filter.patient = session.userId;
      if (!filter.hospital && session.keys.role === 'admin') filter.hospital = session.keys.hospital;
      if (!filter.patient && (session.keys.role === 'doctor' || session.keys.role === 'auditor'))
        throw new UsageError('--patient is required: doctors and auditors see the trails of patients who granted them access');
      const events: AuditEvent[] = [];
      let cursor = o.cursor;
      for (let page = 0; page < (o.all ? MAX_PAGES : 1); page++) {
        const r = await session.queryAudit(filter, { limit, ...(cursor ? { cursor } : {}) });
        if (!reportOutcome(r, '', true)) return;
        events.push(...(r.value?.events ?? []));
        cursor = r.value?.cursor;
        if (!cursor) break;
      }
      process.stdout.write(formatter({ events, ...(cursor ? { cursor } : {}) }, { filter, user: session.userId, hospital: session.hospital }));
    });
}
