import { writeSync } from 'node:fs';

/**
 * TEST-ONLY crash points for the fault tests (test/faults/crashPoint.test.ts). Production never sets
 * MEDLEDGER_CRASH_POINT: without it `crashPoint` is a no-op comparison.
 *
 * `MEDLEDGER_CRASH_POINT=<point>` makes the process kill itself with SIGKILL (as abrupt as `kill -9`: no
 * handler, no flush, no close of the LevelDB) the first time a block commit at height ≥
 * `MEDLEDGER_CRASH_AT_HEIGHT` (default 1) that stages at least one payload file reaches that point:
 * - `commit:after-payload-files`: the block's payload files are staged, its LevelDB batch not yet written;
 * - `commit:after-batch`: the LevelDB batch is written, the staged payload files not yet promoted.
 */
export type CrashPointName = 'commit:after-payload-files' | 'commit:after-batch';

const armed = process.env.MEDLEDGER_CRASH_POINT;
const atHeight = Number(process.env.MEDLEDGER_CRASH_AT_HEIGHT ?? 1);

export function crashPoint(point: CrashPointName, height: number, stagedFiles: number): void {
  if (armed !== point || height < atHeight || stagedFiles === 0) return;
  writeSync(2, `crash point ${point} at height ${height} (${stagedFiles} staged payload files): SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
}
