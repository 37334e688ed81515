import { describe, expect, it } from 'vitest';
import { utf8 } from '../../../src/records/crypto/bytes.js';
import { sha256 } from '../../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../../../src/records/crypto/keyAgreement.js';
import { isMedLedgerError } from '../../../src/records/errors.js';
import { batchClosed, batchOf, parseBatch } from '../../../src/records/stats/batches.js';
import {
  bucketCount,
  histogramMeasurement,
  measures,
  measureValues,
  valueCount,
  type MeasureName,
  type StatsInstance,
} from '../../../src/records/stats/measures.js';
import {
  aggregate,
  bucketCounts,
  chunkLengthFor,
  combinePrepShares,
  computeStat,
  createVdaf,
  decodeInputShare,
  decodePrepMessage,
  decodePrepState,
  encodePrepState,
  inputShareLength,
  momentsResult,
  prepareInit,
  prepareNext,
  ProofFailed,
  shard,
  vdafFor,
  type Prio3Vdaf,
  type ShardedReport,
} from '../../../src/records/stats/prio3.js';
import { openShare, sealShare, type ShareContext } from '../../../src/records/stats/sealing.js';

const N = 4;
const verifyKey = sha256(utf8('test verify key')).subarray(0, 16);

/** Every aggregator's side of a batch, in one process: prepareInit, combine, prepareNext, aggregate. */
async function runBatch(vdaf: Prio3Vdaf, reports: ShardedReport[]): Promise<{ aggShares: Uint8Array[]; used: number; dropped: number }> {
  const outputs: Uint8Array[][] = Array.from({ length: vdaf.shares }, () => []);
  let dropped = 0;
  for (const r of reports) {
    const prepped = [];
    for (let i = 0; i < vdaf.shares; i++) prepped.push(await prepareInit(vdaf, verifyKey, i, r.nonce, r.publicShare, r.inputShares[i]!));
    let message: Uint8Array;
    try {
      message = await combinePrepShares(
        vdaf,
        prepped.map((p) => p.prepShare),
      );
    } catch (err) {
      expect(err).toBeInstanceOf(ProofFailed);
      dropped++;
      continue;
    }
    for (let i = 0; i < vdaf.shares; i++) outputs[i]!.push(prepareNext(vdaf, prepped[i]!.prepState, message));
  }
  return { aggShares: outputs.map((o) => aggregate(vdaf, o)), used: reports.length - dropped, dropped };
}

const systolic = Array.from({ length: 30 }, (_, i) => 100 + ((i * 37) % 61)); // 100..160, known

function exactStats(values: number[]) {
  const n = values.length;
  const mean = values.reduce((a, v) => a + v, 0) / n;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
  return { mean, stddev: Math.sqrt(variance) };
}

describe('measures and batches', () => {
  it('extracts vitals in stored units and encodes x = v − lo', () => {
    expect(measureValues({ vitals: { bloodPressure: '120/80', heartRate: 72, temperature: 37.2 } })).toEqual([
      { measure: 'systolic', value: 120 },
      { measure: 'diastolic', value: 80 },
      { measure: 'heartRate', value: 72 },
      { measure: 'temperature', value: 372 },
    ]);
    expect(measureValues({ vitals: {} })).toEqual([]);
    const m = measures.systolic;
    expect(histogramMeasurement(m, 20)).toBe(0);
    expect(histogramMeasurement(m, 300)).toBe(valueCount(m) - 1);
    expect(histogramMeasurement(measures.temperature, 372)).toBe(122);
    expect(() => histogramMeasurement(m, 301)).toThrow(RangeError);
    expect(() => histogramMeasurement(m, 19)).toThrow(RangeError);
  });

  it('one Prio3Histogram per measure with exactly one bucket per stored value lo..hi (the proof range is the range)', () => {
    const lengths = { systolic: 281, diastolic: 281, heartRate: 231, temperature: 201 };
    const chunks = { systolic: 17, diastolic: 17, heartRate: 15, temperature: 14 };
    for (const name of Object.keys(lengths) as MeasureName[]) {
      const vdaf = createVdaf(name, 'histogram', N);
      expect(vdaf.flp.measurementLen).toBe(lengths[name]);
      expect(valueCount(measures[name])).toBe(lengths[name]);
      expect(chunkLengthFor(lengths[name])).toBe(chunks[name]);
    }
  });

  it('labels months in UTC and fixed periods by their ISO start; parsing accepts exact labels only', () => {
    const month = { batch: 'month' } as const;
    const t = Date.UTC(2026, 11, 31, 23, 59, 59, 999);
    expect(batchOf(month, t)).toEqual({ label: '2026-12', start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) });
    expect(parseBatch(month, '2026-12')).toEqual(batchOf(month, t));
    for (const bad of ['2026-13', '2026-00', '2026-1', '2026-12-01T00:00:00Z', 'x']) expect(parseBatch(month, bad)).toBeUndefined();
    const fixed = { batchMs: 30 * 60_000 };
    const b = batchOf(fixed, Date.UTC(2026, 11, 1, 21, 45));
    expect(b.label).toBe('2026-12-01T21:30:00Z');
    expect(parseBatch(fixed, b.label)).toEqual(b);
    expect(parseBatch(fixed, '2026-12-01T21:31:00Z')).toBeUndefined(); // not a batch start
    expect(parseBatch(fixed, '2026-12')).toBeUndefined();
    expect(batchClosed(b, b.end - 1)).toBe(false);
    expect(batchClosed(b, b.end)).toBe(true);
  });
});

describe('Prio3 over bytes: a full run with 4 aggregators', () => {
  it('gives exact count, mean, population stddev, histogram, median and mode of 30 values', async () => {
    const vdaf = vdafFor('systolic', 'histogram', N);
    const h = await runBatch(vdaf, await Promise.all(systolic.map((v) => shard(vdaf, histogramMeasurement(measures.systolic, v)))));
    expect(h).toMatchObject({ used: 30, dropped: 0 });

    const expected = exactStats(systolic);
    expect(computeStat('systolic', 'count', h.aggShares, h.used)).toEqual({ stat: 'count', count: 30 });
    const mean = computeStat('systolic', 'mean', h.aggShares, h.used);
    expect(mean).toEqual({ stat: 'mean', count: 30, mean: expected.mean });
    const sd = computeStat('systolic', 'stddev', h.aggShares, h.used);
    if (sd.stat !== 'stddev') throw new Error('stddev');
    expect(sd.stddev).toBeCloseTo(expected.stddev, 12);

    const hist = computeStat('systolic', 'histogram', h.aggShares, h.used);
    if (hist.stat !== 'histogram') throw new Error('histogram');
    const counts = new Array(bucketCount(measures.systolic)).fill(0);
    for (const v of systolic) counts[Math.floor((v - 20) / 10)]++;
    expect(hist.buckets.map((b) => b.count)).toEqual(counts);
    expect(hist.buckets[0]).toEqual({ lo: 20, hi: 29, count: 0 });
    expect(hist.buckets.at(-1)).toEqual({ lo: 300, hi: 300, count: 0 });

    const sorted = [...systolic].sort((a, b) => a - b);
    const medianBucket = Math.floor((sorted[14]! - 20) / 10); // lower median: the 15th of 30
    expect(computeStat('systolic', 'median', h.aggShares, h.used)).toMatchObject({ stat: 'median', bucket: medianBucket });
    const top = Math.max(...counts);
    expect(computeStat('systolic', 'mode', h.aggShares, h.used)).toMatchObject({ stat: 'mode', bucket: counts.indexOf(top) });
    // The aggregators' count must be what the aggregate holds.
    expect(() => computeStat('systolic', 'mean', h.aggShares, 29)).toThrow(/holds 30 reports/);
  });

  it('temperature is reported in °C; a tie for the mode goes to the lowest bucket', async () => {
    const values = [365, 366, 370, 371]; // two buckets of two
    const vdaf = vdafFor('temperature', 'histogram', N);
    const h = await runBatch(vdaf, await Promise.all(values.map((v) => shard(vdaf, histogramMeasurement(measures.temperature, v)))));
    expect(computeStat('temperature', 'mode', h.aggShares, 4)).toEqual({ stat: 'mode', count: 4, bucket: 23, lo: 36.5, hi: 36.9 });
    expect(computeStat('temperature', 'mean', h.aggShares, 4)).toEqual({ stat: 'mean', count: 4, mean: 36.8 });
  });

  it('moments and display buckets from exact per-value counts; the extremes of the range', () => {
    const m = measures.systolic;
    const counts = Array.from({ length: valueCount(m) }, () => 0n);
    counts[120 - 20] = 9n;
    expect(momentsResult('systolic', counts)).toEqual({ count: 9, mean: 120, stddev: 0 });
    counts[0] = 1n; // 20 mmHg
    counts[280] = 1n; // 300 mmHg
    const all = [...Array(9).fill(120), 20, 300] as number[];
    const r = momentsResult('systolic', counts);
    expect(r.count).toBe(11);
    expect(r.mean).toBeCloseTo(exactStats(all).mean, 12);
    expect(r.stddev).toBeCloseTo(exactStats(all).stddev, 12);
    const buckets = bucketCounts('systolic', counts);
    expect(buckets.length).toBe(bucketCount(m));
    expect([buckets[0], buckets[10], buckets[28]]).toEqual([1n, 9n, 1n]);
    expect(() => momentsResult('systolic', counts.slice(1))).toThrow(/281 value counts/);
    expect(() =>
      momentsResult(
        'systolic',
        counts.map(() => 0n),
      ),
    ).toThrow(/no report/);
  });
});

describe('forged reports fail the proof at combine and are counted as dropped', () => {
  /** A client that skips the range check: its own encoding of the measurement into field elements. */
  function forging(measure: MeasureName, instance: StatsInstance, encoded: bigint[]): Prio3Vdaf {
    const vdaf = createVdaf(measure, instance, N);
    (vdaf.flp as unknown as { encode: () => bigint[] }).encode = () => encoded;
    return vdaf;
  }

  it('a histogram vector that is not one-hot (two buckets, a bucket of 5, a negative bucket, all zero)', async () => {
    const len = valueCount(measures.systolic);
    const honest = vdafFor('systolic', 'histogram', N);
    const p = honest.flp.field.modulus;
    const forgeries = [
      Array.from({ length: len }, (_, i) => (i === 3 || i === 4 ? 1n : 0n)),
      Array.from({ length: len }, (_, i) => (i === 3 ? 5n : 0n)),
      // a report that would add 2 at value 300 and take one away at 20: the mean could move, the proof refuses it.
      Array.from({ length: len }, (_, i) => (i === len - 1 ? 2n : i === 0 ? p - 1n : 0n)),
      Array.from({ length: len }, () => 0n),
    ];
    for (const encoded of forgeries) {
      const forged = await shard(forging('systolic', 'histogram', encoded), 0);
      const good = await shard(honest, 10);
      const run = await runBatch(honest, [good, forged]);
      expect(run).toMatchObject({ used: 1, dropped: 1 });
    }
  });

  it('a tampered input share (one byte of the leader share changed)', async () => {
    const vdaf = vdafFor('systolic', 'histogram', N);
    const report = await shard(vdaf, 7);
    const leader = Uint8Array.from(report.inputShares[0]!);
    leader[0]! ^= 1;
    const run = await runBatch(vdaf, [{ ...report, inputShares: [leader, ...report.inputShares.slice(1)] }]);
    expect(run).toMatchObject({ used: 0, dropped: 1 });
  });
});

describe('decoders refuse malformed bytes', () => {
  it('wrong lengths, field elements out of range, unknown aggregator', async () => {
    const vdaf = vdafFor('heartRate', 'histogram', N);
    const report = await shard(vdaf, 3);
    const code = async (f: () => unknown) => {
      try {
        await f();
      } catch (err) {
        return isMedLedgerError(err) ? err.code : String(err);
      }
      return 'ok';
    };
    expect(await code(() => decodeInputShare(vdaf, 0, report.inputShares[0]!.subarray(1)))).toBe('MALFORMED');
    expect(await code(() => decodeInputShare(vdaf, 1, report.inputShares[0]!))).toBe('MALFORMED');
    expect(await code(() => decodeInputShare(vdaf, N, report.inputShares[1]!))).toBe('MALFORMED');
    expect(report.inputShares.map((s, i) => s.length === inputShareLength(vdaf, i))).toEqual([true, true, true, true]);
    const notInField = Uint8Array.from(report.inputShares[0]!).fill(0xff, 0, 16);
    expect(await code(() => decodeInputShare(vdaf, 0, notInField))).toBe('MALFORMED');
    expect(await code(() => prepareInit(vdaf, verifyKey, 0, report.nonce, report.publicShare.subarray(1), report.inputShares[0]!))).toBe('MALFORMED');
    expect(await code(() => decodePrepMessage(vdaf, new Uint8Array(15)))).toBe('MALFORMED');
    expect(await code(() => combinePrepShares(vdaf, [new Uint8Array(3)]))).toBe('MALFORMED');
    const { prepState } = await prepareInit(vdaf, verifyKey, 0, report.nonce, report.publicShare, report.inputShares[0]!);
    expect(encodePrepState(vdaf, decodePrepState(vdaf, prepState))).toEqual(prepState);
    expect(() => prepareNext(vdaf, prepState, new Uint8Array(16))).toThrow(ProofFailed); // wrong joint randomness
  });
});

describe('sealing an input share to a hospital aggregator key', () => {
  const hospital = generateEncryptionKeyPair();
  const other = generateEncryptionKeyPair();
  const ctx: ShareContext = {
    genesisHash: sha256(utf8('genesis')),
    patient: 'pat-1',
    record: 'rec-0123456789abcdef',
    version: 2,
    measure: 'systolic',
    batch: '2026-12',
    instance: 'histogram',
    nonce: new Uint8Array(16).fill(7),
    hospitalIndex: 1,
  };
  const share = utf8('an input share');

  it('opens with the right key in the right place', () => {
    expect(openShare(hospital, ctx, sealShare(hospital.publicKey, ctx, share))).toEqual(share);
  });

  it('refuses a wrong key, a moved share (any field of the context), and altered bytes', () => {
    const sealed = sealShare(hospital.publicKey, ctx, share);
    expect(() => openShare(other, ctx, sealed)).toThrow(/decryption failed/);
    const moves: Partial<ShareContext>[] = [
      { genesisHash: sha256(utf8('other network')) },
      { patient: 'pat-2' },
      { record: 'rec-fedcba9876543210' },
      { version: 3 },
      { measure: 'diastolic' },
      { batch: '2026-11' },
      { nonce: new Uint8Array(16).fill(8) },
      { hospitalIndex: 2 },
    ];
    for (const move of moves) expect(() => openShare(hospital, { ...ctx, ...move }, sealed), JSON.stringify(Object.keys(move))).toThrow(/decryption failed/);
    const altered = Uint8Array.from(sealed);
    altered[40]! ^= 1;
    expect(() => openShare(hospital, ctx, altered)).toThrow(/decryption failed/);
    expect(() => openShare(hospital, ctx, sealed.subarray(0, 40))).toThrow(/too short/);
  });
});
