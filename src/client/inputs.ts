import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { bloodPressureSchema, vitalSignsSchema, type FileContent, type RecordContent } from '../records/content.js';
import { recordIdSchema, userIdSchema } from '../records/ids.js';
import type { AuditFilter } from '../records/tx/types.js';
import type { ZodType } from 'zod';

/**
 * Parsing and checking what a user types (TUI forms and CLI flags alike): each parser returns the value
 * or one short sentence saying what is wrong, shown next to the field or printed by the CLI.
 */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(error: string): Parsed<T> => ({ ok: false, error });

export function parseUserId(text: string): Parsed<string> {
  const r = userIdSchema.safeParse(text.trim());
  return r.success ? ok(r.data) : bad(r.error.issues[0]?.message ?? 'invalid user id');
}

export function parseRecordId(text: string): Parsed<string> {
  const r = recordIdSchema.safeParse(text.trim());
  return r.success ? ok(r.data) : bad(r.error.issues[0]?.message ?? 'invalid record id');
}

/** An optional field: empty text is "not given". */
export function optional<T>(parse: (text: string) => Parsed<T>): (text: string) => Parsed<T | undefined> {
  return (text) => (text.trim() === '' ? ok(undefined) : parse(text));
}

function numberIn(text: string, what: string, schema: ZodType<number>, integer = false): Parsed<number> {
  const t = text.trim().replace(',', '.');
  if (!/^-?\d+(\.\d+)?$/.test(t)) return bad(`${what} must be a number`);
  const n = Number(t);
  if (integer && !Number.isInteger(n)) return bad(`${what} must be a whole number`);
  const r = schema.safeParse(n);
  return r.success ? ok(n) : bad(r.error?.issues[0]?.message ?? `${what} is out of range`);
}

export const parseTemperature = (text: string) => numberIn(text, 'temperature', vitalSignsSchema.shape.temperature.unwrap());
export const parseHeartRate = (text: string) => numberIn(text, 'heart rate', vitalSignsSchema.shape.heartRate.unwrap(), true);

export function parseBloodPressure(text: string): Parsed<string> {
  const r = bloodPressureSchema.safeParse(text.trim());
  return r.success ? ok(r.data) : bad(r.error.issues[0]?.message ?? 'blood pressure must look like 120/80');
}

export function parsePositiveInt(text: string, what = 'value'): Parsed<number> {
  const t = text.trim();
  return /^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= Number.MAX_SAFE_INTEGER ? ok(Number(t)) : bad(`${what} must be a positive whole number`);
}

/**
 * A local date and time: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS` (a `T` also works).
 * A bare date means its first millisecond, or its last with `endOfDay` (so "to 2025-03-01" includes that day).
 */
export function parseDateTime(text: string, opts: { endOfDay?: boolean } = {}): Parsed<number> {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim());
  if (!m) return bad('date must look like 2025-03-14 or 2025-03-14 09:30');
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hasTime = m[4] !== undefined;
  const [hour, minute, second] = hasTime ? [Number(m[4]), Number(m[5]), Number(m[6] ?? 0)] : opts.endOfDay ? [23, 59, 59] : [0, 0, 0];
  const date = new Date(year, month - 1, day, hour, minute, second, !hasTime && opts.endOfDay ? 999 : 0);
  // Date rolls 2025-02-30 over into March: compare the fields back to refuse impossible dates.
  if (date.getFullYear() !== year || date.getMonth() !== month - 1 || date.getDate() !== day || date.getHours() !== hour || date.getMinutes() !== minute) {
    return bad('no such date or time');
  }
  return ok(date.getTime());
}

export function parseFutureDateTime(text: string, now = Date.now()): Parsed<number> {
  const r = parseDateTime(text);
  if (!r.ok) return r;
  return r.value > now ? r : bad('the time must be in the future');
}

export function parseApiUrls(text: string): Parsed<string[]> {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) return bad('give at least one node API URL');
  for (const p of parts) {
    let url: URL;
    try {
      url = new URL(p);
    } catch {
      return bad(`not a URL: ${p}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return bad(`not an http URL: ${p}`);
  }
  return ok(parts);
}

const AUDIT_ACTIONS = ['C', 'R', 'U', 'D', 'E'] as const;
export function parseAuditAction(text: string): Parsed<AuditFilter['action']> {
  const t = text.trim().toUpperCase();
  return (AUDIT_ACTIONS as readonly string[]).includes(t) ? ok(t as AuditFilter['action']) : bad('action is one of C, R, U, D, E');
}

export function parseOutcome(text: string): Parsed<AuditFilter['outcome']> {
  const t = text.trim().toLowerCase();
  return t === 'success' || t === 'denied' ? ok(t) : bad('outcome is success or denied');
}

// ---- record content ---------------------------------------------------------------------------

export interface RecordFields {
  title?: string;
  temperature?: number;
  bloodPressure?: string;
  heartRate?: number;
  notes?: string;
}

/** The record content for the given fields (empty strings and absent values are left out). */
export function recordContentOf(f: RecordFields): RecordContent {
  return {
    ...(f.title ? { title: f.title } : {}),
    vitals: {
      ...(f.temperature !== undefined ? { temperature: f.temperature } : {}),
      ...(f.bloodPressure ? { bloodPressure: f.bloodPressure } : {}),
      ...(f.heartRate !== undefined ? { heartRate: f.heartRate } : {}),
    },
    ...(f.notes ? { notes: f.notes } : {}),
  };
}

// ---- files ------------------------------------------------------------------------------------

/** Leaves room in the node's 2 MiB payload limit for the envelope and the wrapped keys. */
export const MAX_ATTACHMENT_BYTES = 1536 * 1024;

const MIME: Record<string, string> = {
  '.txt': 'text/plain',
  '.md': 'text/markdown',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.dcm': 'application/dicom',
  '.xml': 'application/xml',
};

export function checkAttachmentPath(path: string): Parsed<string> {
  const p = path.trim();
  if (!p) return bad('give the path of a file');
  if (!existsSync(p)) return bad(`no such file: ${p}`);
  const st = statSync(p);
  if (!st.isFile()) return bad(`not a regular file: ${p}`);
  if (st.size > MAX_ATTACHMENT_BYTES) return bad(`file is larger than ${MAX_ATTACHMENT_BYTES / 1024} KiB`);
  return ok(p);
}

/** Reads a file from disk as record file content (name, MIME type from the extension, bytes). */
export function readAttachment(path: string): FileContent {
  const checked = checkAttachmentPath(path);
  if (!checked.ok) throw new Error(checked.error);
  const name = basename(checked.value).slice(0, 255);
  return { name, mime: MIME[extname(name).toLowerCase()] ?? 'application/octet-stream', data: new Uint8Array(readFileSync(checked.value)) };
}

/** Writes a decrypted file where the user asked; never overwrites an existing file. */
export function saveAttachment(path: string, file: FileContent): string {
  const target = existsSync(path) && statSync(path).isDirectory() ? `${path.replace(/\/+$/, '')}/${basename(file.name)}` : path;
  writeFileSync(target, file.data, { flag: 'wx', mode: 0o600 });
  return target;
}

export function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
