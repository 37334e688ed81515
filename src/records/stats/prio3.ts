import { randomBytes } from 'node:crypto';
import { Prio3, Prio3Histogram } from '@divviup/prio3';
import { MedLedgerError } from '../errors.js';
import { bucketCount, bucketRange, measures, valueCount, type Measure, type MeasureName, type StatName, type StatsInstance } from './measures.js';

/**
 * Prio3 (draft-irtf-cfrg-vdaf-08, @divviup/prio3 0.8.0) over encoded bytes (issue 13). The package encodes but
 * does not decode; the decoders here follow the draft's wire formats and are checked against its test vectors
 * (test/vectors/prio3). Nodes work only with bytes: every function takes and returns encoded shares.
 *
 * Wire formats (vdaf-08 §7.2.6, all Prio3 instances here use joint randomness, seeds of 16 bytes, Field128):
 *  - public share: one joint-randomness part (seed) per aggregator;
 *  - leader input share (aggregator 0): measurement share ‖ proof share (field elements) ‖ blind (seed);
 *  - helper input share: measurement seed ‖ proof seed ‖ blind (three seeds, expanded with the XOF);
 *  - preparation share: verifier share (field elements) ‖ joint-randomness part (seed);
 *  - preparation message: the joint-randomness seed; aggregate share: field elements.
 */
type AnyPrio3 = Prio3<unknown, unknown>;
export type Prio3Vdaf = AnyPrio3;

/** XOF usage tags of vdaf-08 §7.2.1 (the package keeps them private). */
const USAGE_MEASUREMENT_SHARE = 1;
const USAGE_PROOF_SHARE = 2;

/** Chunk length of the ParallelSum gadget: about √(measurement length), the draft's suggestion. */
export function chunkLengthFor(measurementLength: number): number {
  return Math.max(1, Math.round(Math.sqrt(measurementLength)));
}

/**
 * A fresh (uncached) Prio3 instance: tests use this to build forged reports. One Prio3Histogram per measure with
 * one bucket per stored value (281 for blood pressure, 231 heart rate, 201 temperature): its proof checks the
 * measurement is exactly one-hot, so an accepted report is one value in [lo, hi], with nothing else to forge.
 */
export function createVdaf(measure: MeasureName, _instance: StatsInstance, shares: number): Prio3Vdaf {
  const length = valueCount(measures[measure]);
  return new Prio3Histogram({ shares, length, chunkLength: chunkLengthFor(length) }) as unknown as AnyPrio3;
}

// Bounded: 4 measures × 1 instance × the share counts one process meets (one network: one value).
const cache = new Map<string, Prio3Vdaf>();
export function vdafFor(measure: MeasureName, instance: StatsInstance, shares: number): Prio3Vdaf {
  const key = `${measure}/${instance}/${shares}`;
  let vdaf = cache.get(key);
  if (!vdaf) {
    if (cache.size >= 64) cache.clear();
    vdaf = createVdaf(measure, instance, shares);
    cache.set(key, vdaf);
  }
  return vdaf;
}

const buf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const u8 = (b: Uint8Array) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function malformed(what: string, detail: string): never {
  throw new MedLedgerError('MALFORMED', `malformed ${what}: ${detail}`);
}

interface Sizes {
  seed: number;
  element: number;
  measurementLen: number;
  proofsLen: number;
  verifiersLen: number;
  outputLen: number;
}

function sizes(vdaf: Prio3Vdaf): Sizes {
  const flp = vdaf.flp;
  return {
    seed: vdaf.xof.seedSize,
    element: flp.field.encodedSize,
    measurementLen: flp.measurementLen,
    proofsLen: flp.proofLen * vdaf.proofs,
    verifiersLen: flp.verifierLen * vdaf.proofs,
    outputLen: flp.outputLen,
  };
}

function decodeElements(vdaf: Prio3Vdaf, bytes: Uint8Array, what: string): bigint[] {
  try {
    return vdaf.flp.field.decode(bytes);
  } catch (err) {
    return malformed(what, (err as Error).message);
  }
}

function needLength(bytes: Uint8Array, expected: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) malformed(what, 'expected bytes');
  if (bytes.length !== expected) malformed(what, `${bytes.length} bytes, expected ${expected}`);
}

// ---- decoders (the package has encoders only) ----

export interface PublicShare {
  jointRandParts: Buffer[];
}

export function decodePublicShare(vdaf: Prio3Vdaf, bytes: Uint8Array): PublicShare {
  const { seed } = sizes(vdaf);
  needLength(bytes, seed * vdaf.shares, 'public share');
  const b = buf(bytes);
  return { jointRandParts: Array.from({ length: vdaf.shares }, (_, i) => Buffer.from(b.subarray(i * seed, (i + 1) * seed))) };
}

export interface InputShare {
  measurementShare: bigint[];
  proofsShare: bigint[];
  wireMeasurementShare: Buffer;
  wireProofShare: Buffer;
  blind: Buffer;
}

/** Expected byte length of aggregator `aggregatorId`'s input share. */
export function inputShareLength(vdaf: Prio3Vdaf, aggregatorId: number): number {
  const s = sizes(vdaf);
  return aggregatorId === 0 ? (s.measurementLen + s.proofsLen) * s.element + s.seed : 3 * s.seed;
}

/** Decodes an input share; a helper's seeds are expanded as in the draft's sharding (async: the XOF is). */
export async function decodeInputShare(vdaf: Prio3Vdaf, aggregatorId: number, bytes: Uint8Array): Promise<InputShare> {
  if (!Number.isInteger(aggregatorId) || aggregatorId < 0 || aggregatorId >= vdaf.shares) malformed('input share', `aggregator ${aggregatorId}`);
  const s = sizes(vdaf);
  needLength(bytes, inputShareLength(vdaf, aggregatorId), 'input share');
  const b = Buffer.from(bytes);
  if (aggregatorId === 0) {
    const mEnd = s.measurementLen * s.element;
    const pEnd = mEnd + s.proofsLen * s.element;
    const wireMeasurementShare = b.subarray(0, mEnd);
    const wireProofShare = b.subarray(mEnd, pEnd);
    return {
      measurementShare: decodeElements(vdaf, wireMeasurementShare, 'input share'),
      proofsShare: decodeElements(vdaf, wireProofShare, 'input share'),
      wireMeasurementShare,
      wireProofShare,
      blind: b.subarray(pEnd),
    };
  }
  const wireMeasurementShare = b.subarray(0, s.seed);
  const wireProofShare = b.subarray(s.seed, 2 * s.seed);
  const field = vdaf.flp.field;
  const measurementShare = await vdaf.xof.expandIntoVec(
    field,
    wireMeasurementShare,
    vdaf.domainSeparationTag(USAGE_MEASUREMENT_SHARE),
    Buffer.of(aggregatorId),
    s.measurementLen,
  );
  const proofsShare = await vdaf.xof.expandIntoVec(
    field,
    wireProofShare,
    vdaf.domainSeparationTag(USAGE_PROOF_SHARE),
    Buffer.of(vdaf.proofs, aggregatorId),
    s.proofsLen,
  );
  return { measurementShare, proofsShare, wireMeasurementShare, wireProofShare, blind: b.subarray(2 * s.seed) };
}

export interface PrepShare {
  verifiersShare: bigint[];
  jointRandomnessPart: Buffer;
}

export function prepShareLength(vdaf: Prio3Vdaf): number {
  const s = sizes(vdaf);
  return s.verifiersLen * s.element + s.seed;
}

export function decodePrepShare(vdaf: Prio3Vdaf, bytes: Uint8Array): PrepShare {
  const s = sizes(vdaf);
  needLength(bytes, prepShareLength(vdaf), 'preparation share');
  const b = Buffer.from(bytes);
  const vEnd = s.verifiersLen * s.element;
  return { verifiersShare: decodeElements(vdaf, b.subarray(0, vEnd), 'preparation share'), jointRandomnessPart: b.subarray(vEnd) };
}

export function decodePrepMessage(vdaf: Prio3Vdaf, bytes: Uint8Array): { jointRand: Buffer } {
  needLength(bytes, sizes(vdaf).seed, 'preparation message');
  return { jointRand: Buffer.from(bytes) };
}

export function aggregateShareLength(vdaf: Prio3Vdaf): number {
  const s = sizes(vdaf);
  return s.outputLen * s.element;
}

/** Decodes an aggregate (or output) share: the vector of field elements. */
export function decodeAggregateShare(vdaf: Prio3Vdaf, bytes: Uint8Array): bigint[] {
  needLength(bytes, aggregateShareLength(vdaf), 'aggregate share');
  return decodeElements(vdaf, bytes, 'aggregate share');
}

/** Preparation state (kept by a node between its prepareInit and prepareNext): output share ‖ corrected seed. */
export function encodePrepState(vdaf: Prio3Vdaf, state: { outputShare: bigint[]; correctedJointRandSeed: Uint8Array }): Uint8Array {
  return u8(Buffer.concat([vdaf.flp.field.encode(state.outputShare), state.correctedJointRandSeed]));
}

export function decodePrepState(vdaf: Prio3Vdaf, bytes: Uint8Array): { outputShare: bigint[]; correctedJointRandSeed: Buffer } {
  const s = sizes(vdaf);
  needLength(bytes, s.outputLen * s.element + s.seed, 'preparation state');
  const b = Buffer.from(bytes);
  const end = s.outputLen * s.element;
  return { outputShare: decodeElements(vdaf, b.subarray(0, end), 'preparation state'), correctedJointRandSeed: b.subarray(end) };
}

// ---- the flow over bytes ----

export interface ShardedReport {
  nonce: Uint8Array;
  publicShare: Uint8Array;
  /** One encoded input share per aggregator, in aggregator (genesis) order. */
  inputShares: Uint8Array[];
}

/** Client side: shards a measurement. `nonce`/`rand` are fixed only by test vectors; otherwise random. */
export async function shard(vdaf: Prio3Vdaf, measurement: unknown, fixed?: { nonce: Uint8Array; rand: Uint8Array }): Promise<ShardedReport> {
  const nonce = Buffer.from(fixed?.nonce ?? randomBytes(vdaf.nonceSize));
  const rand = Buffer.from(fixed?.rand ?? randomBytes(vdaf.randSize));
  const { publicShare, inputShares } = await vdaf.shardEncoded(measurement, nonce, rand);
  return { nonce: u8(nonce), publicShare: u8(publicShare), inputShares: inputShares.map(u8) };
}

/** Aggregator side, step 1: from its own input share, the preparation state to keep and the share to send. */
export async function prepareInit(
  vdaf: Prio3Vdaf,
  verifyKey: Uint8Array,
  aggregatorId: number,
  nonce: Uint8Array,
  publicShare: Uint8Array,
  inputShare: Uint8Array,
): Promise<{ prepState: Uint8Array; prepShare: Uint8Array }> {
  needLength(verifyKey, vdaf.verifyKeySize, 'verify key');
  needLength(nonce, vdaf.nonceSize, 'nonce');
  const pub = decodePublicShare(vdaf, publicShare);
  const share = await decodeInputShare(vdaf, aggregatorId, inputShare);
  const { preparationState, preparationShare } = await vdaf.prepareInit(buf(verifyKey), aggregatorId, null, buf(nonce), pub, share);
  const state = preparationState as { outputShare: bigint[]; correctedJointRandSeed: Buffer };
  return { prepState: encodePrepState(vdaf, state), prepShare: u8(vdaf.encodePreparationShare(preparationShare)) };
}

/** The validity proof of a report failed (or its shares are inconsistent): the report is dropped. */
export class ProofFailed extends Error {
  constructor(message = 'Prio3 validity proof failed') {
    super(message);
    this.name = 'ProofFailed';
  }
}

/**
 * Combines every aggregator's preparation share of one report (in aggregator order) into the preparation
 * message. Throws ProofFailed when the proof does not verify, MALFORMED when a share does not decode.
 */
export async function combinePrepShares(vdaf: Prio3Vdaf, prepShares: Uint8Array[]): Promise<Uint8Array> {
  if (prepShares.length !== vdaf.shares) malformed('preparation shares', `${prepShares.length} shares, expected ${vdaf.shares}`);
  const decoded = prepShares.map((s) => decodePrepShare(vdaf, s));
  try {
    return u8(vdaf.encodePreparationMessage(await vdaf.unshardPreparationShares(null, decoded)));
  } catch {
    throw new ProofFailed();
  }
}

/** Aggregator side, step 2: the encoded output share; ProofFailed when the joint randomness disagrees. */
export function prepareNext(vdaf: Prio3Vdaf, prepState: Uint8Array, prepMessage: Uint8Array): Uint8Array {
  const state = decodePrepState(vdaf, prepState);
  const message = decodePrepMessage(vdaf, prepMessage);
  let out: ReturnType<Prio3Vdaf['prepareNext']>;
  try {
    out = vdaf.prepareNext(state, message);
  } catch {
    throw new ProofFailed('joint randomness check failed');
  }
  if (!('outputShare' in out)) throw new ProofFailed('unexpected preparation round');
  return u8(Buffer.from(vdaf.flp.field.encode(out.outputShare as bigint[])));
}

/** Sums an aggregator's output shares (encoded) into its encoded aggregate share. */
export function aggregate(vdaf: Prio3Vdaf, outputShares: Uint8Array[]): Uint8Array {
  const decoded = outputShares.map((s) => decodeAggregateShare(vdaf, s));
  return u8(vdaf.encodeAggregatorShare(vdaf.aggregate(null, decoded)));
}

/** The aggregate as exact integers: the field sum of every aggregator's aggregate share (in any order). */
export function unshardSums(vdaf: Prio3Vdaf, aggregateShares: Uint8Array[]): bigint[] {
  if (aggregateShares.length !== vdaf.shares) malformed('aggregate shares', `${aggregateShares.length} shares, expected ${vdaf.shares}`);
  const field = vdaf.flp.field;
  return aggregateShares.map((s) => decodeAggregateShare(vdaf, s)).reduce((acc, v) => field.vecAdd(acc, v));
}

// ---- results ----

export interface MomentsResult {
  count: number;
  /** Mean in display units (°C for temperature). */
  mean: number;
  /** Population standard deviation (divides by n, not n − 1), display units. */
  stddev: number;
}

export interface HistogramBucket {
  /** Inclusive bounds in display units. */
  lo: number;
  hi: number;
  count: number;
}

export interface HistogramResult {
  count: number;
  buckets: HistogramBucket[];
  /** Index of the bucket holding the lower median (the ⌈n/2⌉-th smallest value). */
  median: number;
  /** Index of the fullest bucket; ties go to the lowest. */
  mode: number;
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
function toNumber(v: bigint, what: string): number {
  if (v < 0n || v > MAX_EXACT) throw new MedLedgerError('MALFORMED', `${what} out of range`);
  return Number(v);
}

function needValueCounts(m: Measure, counts: bigint[]): void {
  if (counts.length !== valueCount(m)) throw new MedLedgerError('MALFORMED', `the ${m.name} aggregate has ${valueCount(m)} value counts`);
  for (const c of counts) toNumber(c, 'value count');
}

/**
 * count, mean and population stddev from the exact per-value counts c_x (x = value − lo): mean = lo + Σx·c/n,
 * variance = (nΣx²·c − (Σx·c)²)/n², both numerators exact in bigint (and ≥ 0: the counts are non-negative).
 */
export function momentsResult(measure: MeasureName, counts: bigint[]): MomentsResult {
  const m: Measure = measures[measure];
  needValueCounts(m, counts);
  let n = 0n;
  let s1 = 0n;
  let s2 = 0n;
  counts.forEach((c, x) => {
    const bx = BigInt(x);
    n += c;
    s1 += bx * c;
    s2 += bx * bx * c;
  });
  if (n === 0n) throw new MedLedgerError('MALFORMED', 'no report in the aggregate');
  const count = toNumber(n, 'count');
  const mean = (m.lo + toNumber(s1, 'sum') / count) / m.scale;
  const stddev = Math.sqrt(toNumber(n * s2 - s1 * s1, 'variance')) / count / m.scale;
  return { count, mean, stddev };
}

/** The display-bucket counts (bucketWidth wide) of the exact per-value counts. */
export function bucketCounts(measure: MeasureName, counts: bigint[]): bigint[] {
  const m = measures[measure];
  needValueCounts(m, counts);
  const out = Array.from({ length: bucketCount(m) }, () => 0n);
  counts.forEach((c, x) => {
    const i = Math.floor(x / m.bucketWidth);
    out[i] = out[i]! + c;
  });
  return out;
}

/** The histogram in display buckets, with median and mode buckets, from display-bucket counts. */
export function histogramResult(measure: MeasureName, counts: bigint[]): HistogramResult {
  const m = measures[measure];
  if (counts.length !== bucketCount(m)) throw new MedLedgerError('MALFORMED', `histogram has ${bucketCount(m)} buckets`);
  const numbers = counts.map((c) => toNumber(c, 'bucket count'));
  const total = numbers.reduce((a, c) => a + c, 0);
  const buckets = numbers.map((count, i) => {
    const r = bucketRange(m, i);
    return { lo: r.lo / m.scale, hi: r.hi / m.scale, count };
  });
  let mode = 0;
  for (let i = 1; i < numbers.length; i++) if (numbers[i]! > numbers[mode]!) mode = i;
  let median = 0;
  const rank = Math.ceil(total / 2);
  for (let seen = 0, i = 0; i < numbers.length; i++) {
    seen += numbers[i]!;
    if (seen >= rank) {
      median = i;
      break;
    }
  }
  return { count: total, buckets, median, mode };
}

export type StatResult =
  | { stat: 'count'; count: number }
  | { stat: 'mean'; count: number; mean: number }
  | { stat: 'stddev'; count: number; stddev: number; mean: number }
  | { stat: 'histogram'; count: number; buckets: HistogramBucket[] }
  | { stat: 'median' | 'mode'; count: number; bucket: number; lo: number; hi: number };

/** The exact per-value counts of a job from every hospital's aggregate share, checked against `count` used. */
export function valueCounts(measure: MeasureName, aggregateShares: Uint8Array[], count: number, shares = aggregateShares.length): bigint[] {
  const sums = unshardSums(vdafFor(measure, 'histogram', shares), aggregateShares);
  needValueCounts(measures[measure], sums);
  const total = sums.reduce((a, c) => a + c, 0n);
  if (total !== BigInt(count)) throw new MedLedgerError('MALFORMED', `the aggregate holds ${total} reports, the aggregators say ${count}`);
  return sums;
}

/**
 * The querier's final step: the result of `stat` from every hospital's aggregate share (genesis order) over
 * `count` reports used (what the statsAggregate transactions agree on).
 */
export function computeStat(measure: MeasureName, stat: StatName, aggregateShares: Uint8Array[], count: number, shares = aggregateShares.length): StatResult {
  const counts = valueCounts(measure, aggregateShares, count, shares);
  if (stat === 'count') return { stat, count };
  if (stat === 'mean' || stat === 'stddev') {
    const r = momentsResult(measure, counts);
    return stat === 'mean' ? { stat, count, mean: r.mean } : { stat: 'stddev', count, stddev: r.stddev, mean: r.mean };
  }
  const h = histogramResult(measure, bucketCounts(measure, counts));
  if (stat === 'histogram') return { stat, count, buckets: h.buckets };
  const bucket = stat === 'median' ? h.median : h.mode;
  const b = h.buckets[bucket]!;
  return { stat, count, bucket, lo: b.lo, hi: b.hi };
}
