import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { fromBase64, utf8 } from '../../src/records/crypto/bytes.js';
import { pollUntil } from '../support/poll.js';
import { TestNetwork } from '../support/testNetwork.js';

/** Files under `dir` (recursively) that contain any of the needles, as `path#needle`. */
async function scanDir(dir: string, needles: Uint8Array[]): Promise<string[]> {
  const hits: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        await walk(path);
        continue;
      }
      const bytes = await readFile(path);
      needles.forEach((n, i) => {
        if (bytes.indexOf(n) >= 0) hits.push(`${path.slice(dir.length)}#${i}`);
      });
    }
  };
  await walk(dir);
  return hits;
}

/**
 * Short slices across a ciphertext: LevelDB's write-ahead log splits records at 32 KiB block boundaries,
 * so one long needle could miss a copy; any 24-byte slice of random ciphertext is unique in practice.
 */
function slices(bytes: Uint8Array, count = 8): Uint8Array[] {
  const out: Uint8Array[] = [];
  const step = Math.max(1, Math.floor((bytes.length - 24) / (count - 1)));
  for (let off = 0; off + 24 <= bytes.length && out.length < count; off += step) out.push(bytes.slice(off, off + 24));
  return out;
}

const CANARY = `CANARY-del-${randomBytes(6).toString('hex')}`;
const filler = (label: string) => `${label} ${randomBytes(3_000).toString('base64')}`;

describe('a record deleted while one replica is down', () => {
  let net: TestNetwork;
  let patient: Session;

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    await net.start();
    patient = await net.patient(0, 'pat-del');
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('is purged on that replica once it syncs: no data directory holds its ciphertext, wrapped key or plaintext', async () => {
    const dataDir = (i: number) => net.node(i).dataDir;
    /** The ciphertext and the patient's wrapped key of a record's content, as the node serves them. */
    const storedBytes = async (s: Session, record: string) => {
      const res = await s.act('readRecord', { patient: 'pat-del', record, body: {} });
      const content = res.result?.kind === 'record' ? res.result.content : undefined;
      expect(content, record).toBeDefined();
      return { ciphertext: fromBase64(content!.c), wrappedKey: fromBase64(content!.key!.w) };
    };

    // One record node 3 stores before it goes down: only node 3's own purge can remove it there.
    const early = await patient.createRecord('pat-del', { vitals: { temperature: 37.9 }, notes: `${CANARY} ${filler('early')}` });
    expect(early.denied).toBeUndefined();
    const earlyBytes = await storedBytes(patient, early.value!);
    await pollUntil(
      'node 3 stores the early record',
      () => scanDir(dataDir(3), slices(earlyBytes.ciphertext)),
      (hits) => (hits.length > 0 ? null : 'no copy yet'),
      { intervalMs: 200 },
    );

    await net.processes[3]!.stop();
    // One record created and deleted while node 3 is down: it may only come to node 3 through sync.
    const doomed = await patient.createRecord('pat-del', { vitals: { temperature: 38.4 }, notes: `${CANARY} ${filler('doomed')}` });
    const kept = await patient.createRecord('pat-del', { vitals: { temperature: 36.6 }, notes: filler('kept') });
    expect(doomed.denied).toBeUndefined();
    expect(kept.denied).toBeUndefined();
    expect(
      await net
        .api(3)
        .status()
        .catch(() => null),
    ).toBeNull(); // node 3 is down for all of this
    const doomedBytes = await storedBytes(patient, doomed.value!);
    const keptBytes = await storedBytes(patient, kept.value!);
    expect(doomedBytes.ciphertext.length).toBeGreaterThan(3_000);
    const goneNeedles = [...slices(earlyBytes.ciphertext), earlyBytes.wrappedKey, ...slices(doomedBytes.ciphertext), doomedBytes.wrappedKey, utf8(CANARY)];
    const keptNeedles = [...slices(keptBytes.ciphertext), keptBytes.wrappedKey];

    // Control: before the deletions the replicas hold the ciphertexts, so the scan can find them.
    for (const i of [0, 1, 2]) expect((await scanDir(dataDir(i), slices(doomedBytes.ciphertext))).length, `node ${i}`).toBeGreaterThan(0);
    expect((await scanDir(dataDir(3), slices(earlyBytes.ciphertext))).length).toBeGreaterThan(0);

    const deletions = [await patient.deleteRecord('pat-del', early.value!), await patient.deleteRecord('pat-del', doomed.value!)];
    for (const d of deletions) expect(d.denied).toBeUndefined();

    // Node 3 comes back and syncs the creations and the deletions.
    net.processes[3]!.start();
    await net.processes[3]!.waitReady(30_000, (s) => s.peers.length === 3);
    await net.waitFor((s) => s.height >= deletions[1]!.height!, { nodes: [3] });
    const at3 = await net.sessionAt(3, patient);
    for (const r of [early, doomed]) expect((await at3.readRecord('pat-del', r.value!)).denied).toBe('record-deleted');
    // It fetched the payloads it missed: the record that stays is readable there (so the deleted one
    // would have come along too, had a peer still served it).
    await pollUntil(
      'node 3 serves the kept record',
      () => at3.readRecord('pat-del', kept.value!),
      (r) => (r.value?.content?.notes?.startsWith('kept ') ? null : `denied ${r.denied ?? '-'}, error ${r.value?.error ?? '-'}`),
      { timeoutMs: 20_000, intervalMs: 500 },
    );

    // A clean stop, no compaction by the test: LevelDB keeps a deleted value in its log and table files
    // until a compaction passes over it, so the node itself must compact what a deletion purged (the
    // proposals it kept while undecided carried the ciphertext; LevelDB held the wrapped keys).
    await net.stop();
    for (const i of [0, 1, 2, 3]) {
      expect(await scanDir(dataDir(i), goneNeedles), `node ${i}`).toEqual([]);
      // Control: the same scan finds the record that was not deleted, on every replica.
      expect((await scanDir(dataDir(i), keptNeedles)).length, `node ${i}`).toBeGreaterThan(0);
    }
  }, 90_000);
});
