import { z } from 'zod';

/**
 * Statistics batches (issue 13): fixed, non-overlapping periods of report time set in the genesis. Calendar
 * months in UTC labelled 'YYYY-MM' by default; `batchMs` (test networks) cuts time into periods of that length
 * from the epoch, labelled by their ISO start without milliseconds ('2026-12-01T21:30:00Z').
 */
export const statsSettingSchema = z.union([
  z.strictObject({ batch: z.literal('month') }),
  z.strictObject({
    batchMs: z
      .number()
      .int()
      .min(1_000)
      .max(366 * 86_400_000),
  }),
]);
export type StatsSetting = z.infer<typeof statsSettingSchema>;
export const DEFAULT_STATS_SETTING: StatsSetting = { batch: 'month' };

export const batchLabelSchema = z.string().regex(/^(\d{4}-\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)$/, 'batch: YYYY-MM or an ISO start time');

export interface Batch {
  label: string;
  /** First millisecond in the batch. */
  start: number;
  /** First millisecond after the batch: a block at or after this time closes it. */
  end: number;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The batch a time (ms since epoch) belongs to. */
export function batchOf(setting: StatsSetting, time: number): Batch {
  if ('batchMs' in setting) {
    const start = Math.floor(time / setting.batchMs) * setting.batchMs;
    return { label: isoSeconds(start), start, end: start + setting.batchMs };
  }
  const d = new Date(time);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { label: `${pad(y, 4)}-${pad(m + 1)}`, start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
}

/** Parses a batch label under a setting; undefined when it is not the exact label of a batch there. */
export function parseBatch(setting: StatsSetting, label: string): Batch | undefined {
  if (!batchLabelSchema.safeParse(label).success) return undefined;
  let start: number;
  if ('batchMs' in setting) {
    if (label.length === 7) return undefined;
    start = Date.parse(label);
  } else {
    if (label.length !== 7) return undefined;
    const [y, m] = label.split('-').map(Number) as [number, number];
    if (m < 1 || m > 12) return undefined;
    start = Date.UTC(y, m - 1, 1);
  }
  if (!Number.isFinite(start) || start < 0) return undefined;
  const batch = batchOf(setting, start);
  return batch.label === label && batch.start === start ? batch : undefined;
}

/** A batch is closed once a block's time reaches its end: no report can be added any more. */
export function batchClosed(batch: Batch, blockTime: number): boolean {
  return blockTime >= batch.end;
}
