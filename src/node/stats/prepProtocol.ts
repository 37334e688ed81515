import { z } from 'zod';
import { decodeCanonical, encodeCanonical } from '../../records/encoding.js';
import { MedLedgerError } from '../../records/errors.js';
import { bytes, uintSchema } from '../../records/ids.js';
import { MAX_BATCH_REPORTS } from '../../records/state/statsRules.js';

/**
 * `/medledger/<network>/stats-prep/1` (issue 13, PROTOCOL.md §6.6): a pull protocol between aggregators. A node
 * asks a peer for its preparation shares of one job; the peer answers with a header frame — `ready` with the
 * number of reports, or `not-ready` (it has not prepared the job yet: ask again later) — then, when ready, the
 * shares in report order (height, index) in frames of at most PREP_CHUNK entries. An empty entry marks a report
 * the peer could not prepare (its sealed share did not open or decode): that report is dropped by everyone.
 */
export const STATS_PREP_PROTOCOL = 'stats-prep';
/**
 * Reports one job may hold: bounds memory (prep state and shares ~0.5 KiB per report) and frames. The rules
 * keep a batch within it (MAX_BATCH_REPORTS), so a job of the chain never exceeds it.
 */
export const MAX_JOB_REPORTS = MAX_BATCH_REPORTS;
/** Entries per response frame. */
export const PREP_CHUNK = 1_024;
/** Largest preparation share of any measure and instance here is 240 bytes; the frame bound leaves room. */
export const MAX_PREP_SHARE_BYTES = 1_024;
export const PREP_MAX_FRAME_BYTES = PREP_CHUNK * (MAX_PREP_SHARE_BYTES + 8) + 64;
export const PREP_MAX_REQUEST_BYTES = 256;
/** Header frame plus the share frames of the largest job. */
export const PREP_MAX_FRAMES = 1 + Math.ceil(MAX_JOB_REPORTS / PREP_CHUNK);

const jobIdSchema = z.string().regex(/^[0-9a-f]{64}$/);
const requestSchema = z.strictObject({ job: jobIdSchema });
const headerSchema = z.union([
  z.strictObject({ status: z.literal('ready'), count: uintSchema.max(MAX_JOB_REPORTS) }),
  z.strictObject({ status: z.literal('not-ready') }),
]);
const chunkSchema = z.strictObject({ shares: z.array(bytes()).min(1).max(PREP_CHUNK) });

function parse<T>(schema: z.ZodType<T>, data: Uint8Array, what: string): T {
  let value: unknown;
  try {
    value = decodeCanonical(data, what);
  } catch (err) {
    throw new MedLedgerError('MALFORMED', `malformed ${what}: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new MedLedgerError('MALFORMED', `malformed ${what}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export function encodePrepRequest(job: string): Uint8Array {
  return encodeCanonical({ job });
}

export function decodePrepRequest(data: Uint8Array): string {
  if (data.length > PREP_MAX_REQUEST_BYTES) throw new MedLedgerError('TOO_LARGE', 'stats-prep request too large');
  return parse(requestSchema, data, 'stats-prep request').job;
}

/** The frames of an answer: `shares` undefined = not ready; an entry undefined = the report is invalid here. */
export function* encodePrepResponse(shares: readonly (Uint8Array | undefined)[] | undefined): Generator<Uint8Array> {
  if (!shares) {
    yield encodeCanonical({ status: 'not-ready' });
    return;
  }
  yield encodeCanonical({ status: 'ready', count: shares.length });
  for (let i = 0; i < shares.length; i += PREP_CHUNK) {
    yield encodeCanonical({ shares: shares.slice(i, i + PREP_CHUNK).map((s) => s ?? new Uint8Array(0)) });
  }
}

/**
 * Reads a peer's answer frame by frame, checking every bound as it comes: the header's count must be the
 * job's report count (both sides read the same closed batch from the same chain), every entry empty or
 * exactly `shareLength` bytes, and the entries must add up to the count — no more, no fewer.
 * Returns undefined when the peer is not ready; a share list (undefined = invalid report) otherwise.
 */
export async function readPrepResponse(
  frames: AsyncIterable<Uint8Array>,
  expect: { count: number; shareLength: number },
): Promise<(Uint8Array | undefined)[] | undefined> {
  let header: z.infer<typeof headerSchema> | undefined;
  const out: (Uint8Array | undefined)[] = [];
  for await (const frame of frames) {
    if (!header) {
      header = parse(headerSchema, frame, 'stats-prep header');
      if (header.status === 'not-ready') return undefined;
      if (header.count !== expect.count) throw new MedLedgerError('MALFORMED', `stats-prep answer has ${header.count} reports, the job has ${expect.count}`);
      continue;
    }
    const chunk = parse(chunkSchema, frame, 'stats-prep frame');
    if (out.length + chunk.shares.length > expect.count) throw new MedLedgerError('MALFORMED', `stats-prep answer has more than ${expect.count} entries`);
    for (const s of chunk.shares) {
      if (s.length === 0) out.push(undefined);
      else if (s.length === expect.shareLength) out.push(s);
      else throw new MedLedgerError('MALFORMED', `stats-prep entry of ${s.length} bytes, expected ${expect.shareLength}`);
    }
  }
  if (!header) throw new MedLedgerError('MALFORMED', 'stats-prep answer is empty');
  if (header.status === 'not-ready') return undefined;
  if (out.length !== expect.count) throw new MedLedgerError('MALFORMED', `stats-prep answer has ${out.length} entries, expected ${expect.count}`);
  return out;
}
