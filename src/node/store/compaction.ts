import type { ClassicLevel } from 'classic-level';

/**
 * Rewrites every table file holding keys under `prefix` (which ends in '/'), so values deleted there leave
 * the disk. LevelDB's compactRange alone does not do that: it never rewrites the deepest level that holds
 * keys of the range (a file moved down unchanged keeps an old value beside its tombstone for good). Two
 * sentinel keys just outside the prefix ('a/b' < 'a/b/…' < 'a/b0') make each level's compaction output
 * span the whole range, so every level down to the deepest is merged; the sentinels are deleted after.
 */
export async function compactAway(db: ClassicLevel<string, Uint8Array>, prefix: string): Promise<void> {
  if (!prefix.endsWith('/')) throw new Error(`compactAway needs a prefix ending in '/', got ${JSON.stringify(prefix)}`);
  const floor = prefix.slice(0, -1);
  const ceiling = `${floor}0`; // '0' is the character after '/'
  const sentinel = new Uint8Array(0);
  await db.batch([
    { type: 'put', key: floor, value: sentinel },
    { type: 'put', key: ceiling, value: sentinel },
  ]);
  await db.compactRange(floor, ceiling);
  await db.batch([
    { type: 'del', key: floor },
    { type: 'del', key: ceiling },
  ]);
}
