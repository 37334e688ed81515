import { ClassicLevel } from 'classic-level';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compactAway } from '../../src/node/store/compaction.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function openDb(): Promise<{ db: ClassicLevel<string, Uint8Array>; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'medledger-compact-'));
  dirs.push(dir);
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  return { db, dir };
}

/** Files of the database directory whose bytes contain the secret. */
async function filesHolding(dir: string, secret: Uint8Array): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir)) if ((await readFile(join(dir, name))).indexOf(secret) >= 0) out.push(name);
  return out;
}

/**
 * A deleted value sits in a table file beside its tombstone at the deepest level holding the range: the
 * memtable is flushed by a compaction of an unrelated range, and LevelDB places such a flush as deep as
 * level 2 when nothing overlaps it.
 */
async function deletedValueInDeepTable(): Promise<{ db: ClassicLevel<string, Uint8Array>; dir: string; secret: Uint8Array }> {
  const { db, dir } = await openDb();
  const secret = randomBytes(64); // random: snappy cannot shorten it out of recognition
  await db.put('m/cblock/aa', secret);
  await db.put('m/other', new Uint8Array([1]));
  await db.del('m/cblock/aa');
  await db.compactRange('zz/', 'zz/\xff');
  expect(await filesHolding(dir, secret)).toHaveLength(1);
  return { db, dir, secret };
}

describe('compactAway (real LevelDB)', () => {
  it('control: LevelDB compactRange over the prefix leaves the deleted value on disk', async () => {
    const { db, dir, secret } = await deletedValueInDeepTable();
    await db.compactRange('m/cblock/', 'm/cblock/\xff');
    expect(await filesHolding(dir, secret)).toHaveLength(1);
    await db.close();
  });

  it('removes the deleted value from every file, keeps live keys, and leaves no sentinel behind', async () => {
    const { db, dir, secret } = await deletedValueInDeepTable();
    const live = randomBytes(64);
    await db.put('m/cblock/bb', live);
    await compactAway(db, 'm/cblock/');
    expect(await filesHolding(dir, secret)).toEqual([]);
    expect(Buffer.from((await db.get('m/cblock/bb'))!)).toEqual(live);
    expect([...(await db.get('m/other'))!]).toEqual([1]);
    expect(await db.keys({ gte: 'm/', lt: 'm/\xff' }).all()).toEqual(['m/cblock/bb', 'm/other']);
    await db.close();
  });

  it('refuses a prefix that does not end in a separator', async () => {
    const { db } = await openDb();
    await expect(compactAway(db, 'm/cblock')).rejects.toThrow(/ending in '\/'/);
    await db.close();
  });
});
