import { z } from 'zod';
import type { RecordContent } from '../content.js';

/**
 * The measures private statistics are computed over (issue 13). Each has a fixed integer range [lo, hi] in its
 * stored unit and fixed histogram buckets; a report carries x = value − lo, never the value itself in clear.
 * Temperature is stored as tenths of °C so every measure is an integer.
 */
export const measureNames = ['systolic', 'diastolic', 'heartRate', 'temperature'] as const;
export type MeasureName = (typeof measureNames)[number];
export const measureSchema = z.enum(measureNames);

/**
 * One Prio3 instance per measure: a Prio3Histogram with one bucket per stored value (PROTOCOL §10.2). Its proof
 * is exactly one-hot, so an accepted report is one value in [lo, hi]; every statistic comes from the counts.
 */
export const instanceNames = ['histogram'] as const;
export type StatsInstance = (typeof instanceNames)[number];
export const instanceSchema = z.enum(instanceNames);

export const statNames = ['count', 'mean', 'stddev', 'histogram', 'median', 'mode'] as const;
export type StatName = (typeof statNames)[number];
export const statSchema = z.enum(statNames);

export interface Measure {
  name: MeasureName;
  lo: number;
  hi: number;
  /** Histogram bucket width in the stored unit. */
  bucketWidth: number;
  /** Stored unit per display unit (10 for temperature in tenths of °C). */
  scale: number;
  unit: string;
}

export const measures: Record<MeasureName, Measure> = {
  systolic: { name: 'systolic', lo: 20, hi: 300, bucketWidth: 10, scale: 1, unit: 'mmHg' },
  diastolic: { name: 'diastolic', lo: 20, hi: 300, bucketWidth: 10, scale: 1, unit: 'mmHg' },
  heartRate: { name: 'heartRate', lo: 20, hi: 250, bucketWidth: 10, scale: 1, unit: 'bpm' },
  temperature: { name: 'temperature', lo: 250, hi: 450, bucketWidth: 5, scale: 10, unit: '°C' },
};

/** Every statistic comes from the one histogram instance (one job per (measure, batch)). */
export function instanceOf(_stat: StatName): StatsInstance {
  return 'histogram';
}

/** Length of the measure's Prio3Histogram: one bucket per stored value lo..hi. */
export function valueCount(m: Measure): number {
  return m.hi - m.lo + 1;
}

/** Display buckets (bucketWidth wide) the fine per-value counts are summed into. */
export function bucketCount(m: Measure): number {
  return Math.ceil((m.hi - m.lo + 1) / m.bucketWidth);
}

/** The stored-unit range [lo, hi] of bucket i (the last bucket may be narrower). */
export function bucketRange(m: Measure, i: number): { lo: number; hi: number } {
  const lo = m.lo + i * m.bucketWidth;
  return { lo, hi: Math.min(m.hi, lo + m.bucketWidth - 1) };
}

export function inRange(m: Measure, value: number): boolean {
  return Number.isInteger(value) && value >= m.lo && value <= m.hi;
}

/** x = value − lo; throws on a value outside the range (the client never builds such a report). */
export function encodeX(m: Measure, value: number): number {
  if (!inRange(m, value)) throw new RangeError(`${m.name} value outside ${m.lo}..${m.hi}`);
  return value - m.lo;
}

/** The histogram instance's measurement: the index of the value's own bucket, x = value − lo. */
export function histogramMeasurement(m: Measure, value: number): number {
  return encodeX(m, value);
}

/**
 * The measure values of a record's vitals, in stored units; values outside a measure's range are left out.
 * Only the patient's client calls this: the values never leave it in clear.
 */
export function measureValues(content: Pick<RecordContent, 'vitals'>): { measure: MeasureName; value: number }[] {
  const out: { measure: MeasureName; value: number }[] = [];
  const v = content.vitals;
  const push = (measure: MeasureName, value: number) => {
    if (inRange(measures[measure], value)) out.push({ measure, value });
  };
  if (v.bloodPressure !== undefined) {
    const match = /^(\d{2,3})\/(\d{2,3})$/.exec(v.bloodPressure);
    if (match) {
      push('systolic', Number(match[1]));
      push('diastolic', Number(match[2]));
    }
  }
  if (v.heartRate !== undefined) push('heartRate', v.heartRate);
  if (v.temperature !== undefined) push('temperature', Math.round(v.temperature * 10));
  return out;
}
