import type { Command } from 'commander';
import { formatDateTime, textTable } from '../../client/auditView.js';
import {
  formatBytes,
  parseBloodPressure,
  parseHeartRate,
  parsePositiveInt,
  parseRecordId,
  parseTemperature,
  parseUserId,
  readAttachment,
  recordContentOf,
  saveAttachment,
  type RecordFields,
} from '../../client/inputs.js';
import { fullyReadable, type DecryptedRecord, type Session } from '../../client/session.js';
import { UsageError } from '../passwordPrompt.js';
import { flag, json, patientOf, reportOutcome, signIn, withUserOptions, type UserOptions } from '../userSession.js';

/**
 * `medledger record create|list|show|update|copy|delete|attach|replace-file|remove-file`: the TUI's record
 * screens for scripts. Content is encrypted and decrypted here, exactly as in the TUI.
 */
interface PatientOpt extends UserOptions {
  patient?: string;
  json?: boolean;
}
interface ContentOpts extends PatientOpt {
  title?: string;
  temperature?: string;
  bp?: string;
  heartRate?: string;
  notes?: string;
}

const recordArg = (value: string) => flag('record', value, parseRecordId)!;

function withPatient(cmd: Command): Command {
  return withUserOptions(cmd)
    .option('--patient <id>', 'the patient whose records (default: yourself, for patients)')
    .option('--json', 'machine-readable output');
}

function withContent(cmd: Command): Command {
  return cmd
    .option('--title <text>', 'record title')
    .option('--temperature <celsius>', 'body temperature, e.g. 36.8')
    .option('--bp <sys/dia>', 'blood pressure, e.g. 120/80')
    .option('--heart-rate <bpm>', 'heart rate in beats per minute')
    .option('--notes <text>', 'free-text notes');
}

function fieldsFrom(o: ContentOpts): RecordFields {
  return {
    ...(o.title !== undefined ? { title: o.title } : {}),
    ...(o.temperature !== undefined ? { temperature: flag('temperature', o.temperature, parseTemperature)! } : {}),
    ...(o.bp !== undefined ? { bloodPressure: flag('bp', o.bp, parseBloodPressure)! } : {}),
    ...(o.heartRate !== undefined ? { heartRate: flag('heart-rate', o.heartRate, parseHeartRate)! } : {}),
    ...(o.notes !== undefined ? { notes: o.notes } : {}),
  };
}

async function start(o: PatientOpt, fallbackApis: string[] = []): Promise<{ session: Session; patient: string }> {
  if (o.patient !== undefined) flag('patient', o.patient, parseUserId);
  const session = await signIn(o, fallbackApis);
  return { session, patient: patientOf(session, o.patient) };
}

function printRecord(rec: DecryptedRecord): void {
  const m = rec.meta;
  const c = rec.content;
  const rows: [string, string][] = [
    ['record', `${m.id} (patient ${m.patient}, version ${m.version}${m.copiedFrom ? `, copied from ${m.copiedFrom}` : ''})`],
    ['created', `${formatDateTime(m.createdAt)} by ${m.createdBy}`],
    ['updated', formatDateTime(m.updatedAt)],
    ['title', c?.title ?? '-'],
    ['temperature', c?.vitals.temperature !== undefined ? `${c.vitals.temperature} °C` : '-'],
    ['blood pressure', c?.vitals.bloodPressure ? `${c.vitals.bloodPressure} mmHg` : '-'],
    ['heart rate', c?.vitals.heartRate !== undefined ? `${c.vitals.heartRate} bpm` : '-'],
    ['notes', c?.notes ?? '-'],
  ];
  if (rec.error) rows.push(['content', `not readable: ${rec.error}`]);
  for (const f of rec.files)
    rows.push([
      'file',
      f.content
        ? `${f.file} ${f.content.name} (${f.content.mime}, ${formatBytes(f.content.data.length)}, v${f.version})`
        : `${f.file} not readable: ${f.error}`,
    ]);
  for (const a of rec.attempts ?? []) rows.push(['not read via', `${a.api}: ${a.error}`]);
  if (rec.attempts?.length && rec.via) rows.push(['read via', rec.via]);
  process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(15)}${v}`).join('\n')}\n`);
}

const recordJson = (rec: DecryptedRecord) => ({
  meta: rec.meta,
  ...(rec.content ? { content: rec.content } : {}),
  ...(rec.error ? { error: rec.error } : {}),
  files: rec.files.map((f) => ({
    file: f.file,
    version: f.version,
    ...(f.content ? { name: f.content.name, mime: f.content.mime, size: f.content.data.length } : { error: f.error }),
  })),
  ...(rec.via ? { via: rec.via } : {}),
  ...(rec.attempts?.length ? { attempts: rec.attempts } : {}),
});

export function addRecordCommands(record: Command): Command {
  record.description('create, list, show, update, copy and delete records (encrypted on this computer)');

  withContent(withPatient(record.command('create').description('create a record with vital signs, notes and files')))
    .option('--file <path...>', 'attach files from disk')
    .action(async (o: ContentOpts & { file?: string[] }) => {
      const content = recordContentOf(fieldsFrom(o));
      const files = (o.file ?? []).map((p) => readAttachment(p));
      const { session, patient } = await start(o);
      const created = await session.createRecord(patient, content);
      if (!reportOutcome(created, `created ${created.value}`, o.json)) return;
      const attached: string[] = [];
      for (const file of files) {
        const r = await session.attachFile(patient, created.value!, file);
        if (!reportOutcome(r, `attached ${file.name} as ${r.value}`, o.json)) return;
        attached.push(r.value!);
      }
      if (o.json) json({ record: created.value, tx: created.id, files: attached });
    });

  withPatient(record.command('list').description("list a patient's records (an audited read)")).action(async (o: PatientOpt) => {
    const { session, patient } = await start(o);
    const r = await session.listRecords(patient);
    if (!reportOutcome(r, '', true)) return;
    const records = r.value ?? [];
    if (o.json) return void json({ records });
    const rows = records.map((m) => [
      m.id,
      formatDateTime(m.createdAt),
      formatDateTime(m.updatedAt),
      m.createdBy,
      String(m.version),
      String(Object.values(m.files).filter((f) => !f.removed).length),
    ]);
    process.stdout.write(`${textTable(['Record', 'Created', 'Updated', 'By', 'Version', 'Files'], rows)}\n`);
  });

  withPatient(record.command('show').description('read and decrypt one record (an audited read)'))
    .argument('<record>', 'record id', recordArg)
    .option('--version <n>', 'an earlier version')
    .option('--save-files <dir>', 'write the decrypted files into this directory')
    .addHelpText(
      'after',
      '\n--api may name several nodes, comma-separated: when the content or a file cannot be read through one\n(it does not decrypt, or the node no longer stores it), the record is read again through the next (each\nread is audited). Exit 2 when the content or a file could not be read through any of them.',
    )
    .action(async (id: string, o: PatientOpt & { version?: string; saveFiles?: string }) => {
      const version = flag('version', o.version, (t) => parsePositiveInt(t, 'version'));
      const [api, ...fallbacks] = o.api
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean);
      if (!api) throw new UsageError('--api: no node API URL given');
      const { session, patient } = await start({ ...o, api }, fallbacks);
      const r = await session.readRecord(patient, id, version);
      if (!reportOutcome(r, '', true) || !r.value) return;
      if (o.json) json(recordJson(r.value));
      else printRecord(r.value);
      for (const f of r.value.files) if (o.saveFiles && f.content) process.stderr.write(`saved ${saveAttachment(o.saveFiles, f.content)}\n`);
      if (!fullyReadable(r.value)) {
        const tried = 1 + (r.value.attempts?.length ?? 0);
        process.stderr.write(`error: the content of ${id} could not be read${tried > 1 ? ` through any of ${tried} nodes` : ''}\n`);
        process.exitCode = 2;
      }
    });

  withContent(withPatient(record.command('update').description('save a new version; fields not given keep their current value')))
    .argument('<record>', 'record id', recordArg)
    .option('--clear <field...>', 'remove fields: title, temperature, bp, heart-rate, notes')
    .action(async (id: string, o: ContentOpts & { clear?: string[] }) => {
      const changes = fieldsFrom(o);
      const clear = new Set(o.clear ?? []);
      for (const c of clear) if (!['title', 'temperature', 'bp', 'heart-rate', 'notes'].includes(c)) throw new UsageError(`--clear: unknown field ${c}`);
      const { session, patient } = await start(o);
      const current = await session.readRecord(patient, id);
      if (!reportOutcome(current, '', true)) return;
      const c = current.value?.content;
      if (!c) throw new Error(`the current content of ${id} is not readable: ${current.value?.error ?? 'no content'}`);
      const merged: RecordFields = {
        title: c.title,
        temperature: c.vitals.temperature,
        bloodPressure: c.vitals.bloodPressure,
        heartRate: c.vitals.heartRate,
        notes: c.notes,
        ...changes,
      };
      const names: Record<string, keyof RecordFields> = {
        title: 'title',
        temperature: 'temperature',
        bp: 'bloodPressure',
        'heart-rate': 'heartRate',
        notes: 'notes',
      };
      for (const field of clear) delete merged[names[field]!];
      const r = await session.updateRecord(patient, id, current.value!.meta.version, recordContentOf(merged));
      if (reportOutcome(r, `updated ${id} to version ${current.value!.meta.version + 1}`, o.json) && o.json)
        json({ record: id, version: current.value!.meta.version + 1, tx: r.id });
    });

  withPatient(record.command('copy').description("copy a record's current content into a new record of the same patient"))
    .argument('<record>', 'record id', recordArg)
    .action(async (id: string, o: PatientOpt) => {
      const { session, patient } = await start(o);
      const r = await session.copyRecord(patient, id);
      if (reportOutcome(r, `copied ${id} to ${r.value}`, o.json) && o.json) json({ record: r.value, from: id, tx: r.id });
    });

  withPatient(record.command('delete').description("delete a record (its content is purged from every replica's store)"))
    .argument('<record>', 'record id', recordArg)
    .action(async (id: string, o: PatientOpt) => {
      const { session, patient } = await start(o);
      const r = await session.deleteRecord(patient, id);
      if (reportOutcome(r, `deleted ${id}`, o.json) && o.json) json({ record: id, deleted: true, tx: r.id });
    });

  withPatient(record.command('attach').description('attach a file from disk to a record'))
    .argument('<record>', 'record id', recordArg)
    .argument('<path>', 'file to attach')
    .action(async (id: string, path: string, o: PatientOpt) => {
      const file = readAttachment(path);
      const { session, patient } = await start(o);
      const r = await session.attachFile(patient, id, file);
      if (reportOutcome(r, `attached ${file.name} as ${r.value}`, o.json) && o.json) json({ record: id, file: r.value, tx: r.id });
    });

  withPatient(record.command('replace-file').description("replace an attached file's content with a file from disk"))
    .argument('<record>', 'record id', recordArg)
    .argument('<file>', 'file id (file-…)')
    .argument('<path>', 'new content')
    .action(async (id: string, fileId: string, path: string, o: PatientOpt) => {
      const file = readAttachment(path);
      const { session, patient } = await start(o);
      const current = await session.readRecord(patient, id);
      if (!reportOutcome(current, '', true)) return;
      const meta = current.value?.meta.files[fileId];
      if (!meta || meta.removed) throw new UsageError(`${id} has no file ${fileId}`);
      const r = await session.replaceFile(patient, id, fileId, meta.version, file);
      if (reportOutcome(r, `replaced ${fileId} (version ${meta.version + 1})`, o.json) && o.json)
        json({ record: id, file: fileId, version: meta.version + 1, tx: r.id });
    });

  withPatient(record.command('remove-file').description('remove a file from a record'))
    .argument('<record>', 'record id', recordArg)
    .argument('<file>', 'file id (file-…)')
    .action(async (id: string, fileId: string, o: PatientOpt) => {
      const { session, patient } = await start(o);
      const r = await session.removeFile(patient, id, fileId);
      if (reportOutcome(r, `removed ${fileId}`, o.json) && o.json) json({ record: id, file: fileId, removed: true, tx: r.id });
    });

  return record;
}
