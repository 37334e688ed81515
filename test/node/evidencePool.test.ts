import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EvidencePool, MAX_EVIDENCE_RECORDS, type Evidence } from '../../src/node/evidencePool.js';
import { LedgerStore } from '../../src/node/store/ledgerStore.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function proposalEvidence(validator: number, height: number): Evidence {
  return { kind: 'proposal', validator, height, round: 0, first: { block: `a${height}` }, second: { block: `b${height}` }, seenAt: height };
}

describe('evidence pool bound (real LevelDB)', () => {
  it(`keeps at most ${MAX_EVIDENCE_RECORDS} records on disk, never dropping a validator's first proof`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'medledger-evidence-'));
    dirs.push(dir);
    const store = await LedgerStore.open(dir);
    const pool = new EvidencePool(store, pino({ level: 'silent' }));
    // A byzantine validator equivocating at every height (validator 3), and two others once each, early.
    await pool.record(proposalEvidence(1, 1));
    await pool.record(proposalEvidence(2, 1));
    const heights = MAX_EVIDENCE_RECORDS + 50;
    for (let h = 1; h <= heights; h++) {
      await pool.record(proposalEvidence(3, h));
      await pool.record(proposalEvidence(3, h)); // reported twice at one height: stored once
      pool.nextHeight();
    }
    const refs = await store.evidenceRefs();
    expect(refs).toHaveLength(MAX_EVIDENCE_RECORDS);
    const ids = new Set(refs.map((r) => `${r.height}/${r.id}`));
    // Each validator's first proof survives the pruning; the oldest of the rest went first.
    expect(ids.has('1/proposal-1')).toBe(true);
    expect(ids.has('1/proposal-2')).toBe(true);
    expect(ids.has('1/proposal-3')).toBe(true);
    expect(ids.has('2/proposal-3')).toBe(false);
    expect(ids.has(`${heights}/proposal-3`)).toBe(true);
    expect((await store.listEvidence()).length).toBe(MAX_EVIDENCE_RECORDS);

    // The bound holds across a restart: the pool reads what is on disk before adding.
    await store.close();
    const reopened = await LedgerStore.open(dir);
    const again = new EvidencePool(reopened, pino({ level: 'silent' }));
    await again.record(proposalEvidence(0, heights + 1));
    expect(await reopened.evidenceRefs()).toHaveLength(MAX_EVIDENCE_RECORDS);
    await reopened.close();
  }, 120_000);
});
