import { describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../../src/records/encoding.js';
import { isMedLedgerError } from '../../../src/records/errors.js';
import {
  decodePrepRequest,
  encodePrepRequest,
  encodePrepResponse,
  MAX_JOB_REPORTS,
  PREP_CHUNK,
  PREP_MAX_FRAME_BYTES,
  PREP_MAX_FRAMES,
  PREP_MAX_REQUEST_BYTES,
  readPrepResponse,
} from '../../../src/node/stats/prepProtocol.js';
import { prepShareLength, vdafFor } from '../../../src/records/stats/prio3.js';
import { measureNames, instanceNames } from '../../../src/records/stats/measures.js';

const JOB = 'ab'.repeat(32);
const LEN = 208;
const share = (i: number) => new Uint8Array(LEN).fill(i % 251);

async function* framesOf(frames: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* frames;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isMedLedgerError(err) ? `${err.code}: ${err.message}` : `other: ${(err as Error).message}`;
  }
}

describe('stats-prep messages', () => {
  it('round-trips a list of 2,500 entries in chunks, an invalid entry marked empty', async () => {
    const list = Array.from({ length: 2_500 }, (_, i) => (i % 7 === 3 ? undefined : share(i)));
    const frames = [...encodePrepResponse(list)];
    expect(frames).toHaveLength(1 + Math.ceil(2_500 / PREP_CHUNK));
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(PREP_MAX_FRAME_BYTES);
    const got = await readPrepResponse(framesOf(frames), { count: 2_500, shareLength: LEN });
    expect(got).toEqual(list);
  });

  it('not ready; and a ready job of zero reports', async () => {
    expect(await readPrepResponse(framesOf(encodePrepResponse(undefined)), { count: 12, shareLength: LEN })).toBeUndefined();
    expect(await readPrepResponse(framesOf(encodePrepResponse([])), { count: 0, shareLength: LEN })).toEqual([]);
  });

  it('refuses a wrong count, too many or too few entries, a wrong share length, malformed frames and an empty answer', async () => {
    const list = [share(1), share(2), share(3)];
    const frames = [...encodePrepResponse(list)];
    const read = (fs: Uint8Array[], count = 3) => code(readPrepResponse(framesOf(fs), { count, shareLength: LEN }));
    expect(await read(frames, 4)).toMatch(/^MALFORMED: .*has 3 reports, the job has 4/);
    // The header says 3 but a fourth entry follows (an extra frame).
    expect(await read([...frames, encodeCanonical({ shares: [share(4)] })])).toMatch(/^MALFORMED: .*more than 3 entries/);
    // The header says 3 but only two come.
    expect(await read([frames[0]!, encodeCanonical({ shares: [share(1), share(2)] })])).toMatch(/^MALFORMED: .*has 2 entries, expected 3/);
    expect(await read([frames[0]!, encodeCanonical({ shares: [share(1), new Uint8Array(LEN + 1), share(3)] })])).toMatch(/entry of 209 bytes, expected 208/);
    expect(await read([frames[0]!, encodeCanonical({ shares: [] })])).toMatch(/^MALFORMED: malformed stats-prep frame/);
    const big = encodeCanonical({ status: 'ready', count: PREP_CHUNK + 1 });
    expect(await read([big, encodeCanonical({ shares: Array.from({ length: PREP_CHUNK + 1 }, () => share(0)) })], PREP_CHUNK + 1)).toMatch(
      /^MALFORMED: malformed stats-prep frame/,
    );
    expect(await read([new Uint8Array([1, 2, 3])])).toMatch(/^MALFORMED: malformed stats-prep header/);
    expect(await read([encodeCanonical({ status: 'ready', count: MAX_JOB_REPORTS + 1 })], MAX_JOB_REPORTS + 1)).toMatch(
      /^MALFORMED: malformed stats-prep header/,
    );
    expect(await read([encodeCanonical({ status: 'ready', count: 3, extra: 1 })])).toMatch(/^MALFORMED/);
    expect(await read([])).toMatch(/^MALFORMED: stats-prep answer is empty/);
  });

  it('requests: a job id only, bounded in size', () => {
    expect(decodePrepRequest(encodePrepRequest(JOB))).toBe(JOB);
    expect(() => decodePrepRequest(encodeCanonical({ job: 'xyz' }))).toThrow(/malformed stats-prep request/);
    expect(() => decodePrepRequest(encodeCanonical({ job: JOB, more: 1 }))).toThrow(/malformed stats-prep request/);
    expect(() => decodePrepRequest(new Uint8Array(PREP_MAX_REQUEST_BYTES + 1))).toThrow(/too large/);
    expect(encodePrepRequest(JOB).length).toBeLessThan(PREP_MAX_REQUEST_BYTES);
  });

  it('the bounds hold for every measure and instance: a full chunk fits a frame, the largest job fits the frame count', () => {
    for (const m of measureNames)
      for (const inst of instanceNames) {
        const len = prepShareLength(vdafFor(m, inst, 4));
        const frames = [...encodePrepResponse(Array.from({ length: PREP_CHUNK }, () => new Uint8Array(len)))];
        expect(frames[1]!.length, `${m}/${inst}`).toBeLessThanOrEqual(PREP_MAX_FRAME_BYTES);
      }
    expect(PREP_MAX_FRAMES).toBe(1 + Math.ceil(MAX_JOB_REPORTS / PREP_CHUNK));
  });
});
