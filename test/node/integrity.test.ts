import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityMonitor, type IntegrityMonitorOptions } from '../../src/node/integrity/monitor.js';
import { Ledger } from '../../src/node/ledger.js';
import { LedgerStore } from '../../src/node/store/ledgerStore.js';
import { indexKey, K, rawLevel, seqKey } from '../../src/node/store/testSupport.js';
import type { AuditEvent } from '../../src/records/audit.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { ChainBuilder } from '../support/chainBuilder.js';

/**
 * The node's integrity monitor against a real LevelDB on disk, written by the node's own store code from a
 * real certified chain; then one thing is altered in the database, as an intruder or a failing disk would,
 * and the monitor must name the first bad height and say what is wrong.
 */
const chain = ChainBuilder.create();
chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), chain.registerPatient('pat-2', 'hosp-b'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
const rec = chain.createRecord('pat-1', 'pat-1', 'temperature 37.1; blood pressure 118/76');
chain.finalize([rec.tx, chain.grant('pat-1', 'doc-1').tx]);
const read = chain.readRecord('doc-1', 'pat-1', rec.record);
chain.finalize([read, chain.readRecord('doc-1', 'pat-2', 'rec-00000000000000ff'), chain.registerPatient('pat-3', 'hosp-c')]);
// A block big enough for the signature worker path (64+ transactions).
chain.finalize(Array.from({ length: 80 }, (_, i) => chain.registerPatient(`bulk-${i}`, 'hosp-d')));
chain.finalize([chain.readRecord('pat-1', 'pat-1', rec.record)]);
chain.finalize([]);
const HEAD = chain.height; // 6

let baseDir: string;
const dirs: string[] = [];
const open: { store: LedgerStore; monitor?: IntegrityMonitor }[] = [];

beforeAll(async () => {
  baseDir = await mkdtemp(join(tmpdir(), 'medledger-integrity-base-'));
  const store = await LedgerStore.open(join(baseDir, 'ledger'));
  const ledger = await Ledger.open(store, chain.genesis);
  for (const b of chain.blocks) await ledger.commit(b.finalized);
  await store.close();
});

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.monitor?.stop();
    if (rawLevel(o.store).status === 'open') await o.store.close();
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

afterAll(async () => {
  await rm(baseDir, { recursive: true, force: true });
});

/** A fresh copy of the stored chain, altered by `tamper` before the ledger is opened on it. */
async function storeCopy(tamper?: (store: LedgerStore) => Promise<void>): Promise<{ ledger: Ledger; store: LedgerStore }> {
  const dir = await mkdtemp(join(tmpdir(), 'medledger-integrity-'));
  dirs.push(dir);
  await cp(baseDir, dir, { recursive: true });
  const store = await LedgerStore.open(join(dir, 'ledger'));
  open.push({ store });
  if (tamper) await tamper(store);
  return { store, ledger: await Ledger.open(store, chain.genesis) };
}

function monitorOf(ledger: Ledger, opts: Partial<IntegrityMonitorOptions> = {}, logs?: string[]): IntegrityMonitor {
  const sink = new Writable({ write: (chunk, _enc, done) => (logs?.push(String(chunk)), done()) });
  const monitor = new IntegrityMonitor(ledger, { logger: pino({ level: 'info' }, sink), ...opts });
  open.find((o) => o.store === ledger.store)!.monitor = monitor;
  return monitor;
}

async function scan(tamper?: (store: LedgerStore) => Promise<void>, opts: Partial<IntegrityMonitorOptions> = {}) {
  const { ledger } = await storeCopy(tamper);
  return monitorOf(ledger, opts).scanOnce();
}

const eventAt = async (store: LedgerStore, h: number, i: number) => (await store.getEvent(h, i))!;

describe('integrity monitor', () => {
  it('verifies an untouched store from genesis to the head, with and without worker threads', async () => {
    expect(await scan()).toEqual({ ok: true, verifiedHeight: HEAD });
    expect(await scan(undefined, { workers: true })).toEqual({ ok: true, verifiedHeight: HEAD });
  });

  it('one flipped byte in a stored block: alert at that height, and an error in the log', async () => {
    const { ledger } = await storeCopy(async (store) => {
      const bytes = (await store.getBlockBytes(3))!;
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      await rawLevel(store).put(K.block(3), bytes);
    });
    const logs: string[] = [];
    const status = await monitorOf(ledger, {}, logs).scanOnce();
    expect(status).toMatchObject({ ok: false, verifiedHeight: 2, alert: { height: 3, problem: expect.any(String), since: expect.any(Number) } });
    const line = logs.map((l) => JSON.parse(l) as { level: number; msg: string; height?: number }).find((l) => l.level === 50);
    expect(line).toMatchObject({ height: 3, msg: expect.stringContaining("No data integrity in the server's database") });
  });

  it('a flipped byte at every 11th position of a small block is caught at its own height', async () => {
    // Every 11th, not every byte: each position costs a full rescan (all of them would take ~30 s).
    const { ledger, store } = await storeCopy();
    const original = (await store.getBlockBytes(5))!;
    const monitor = monitorOf(ledger);
    for (let at = 0; at < original.length; at += 11) {
      const bytes = Uint8Array.from(original);
      bytes[at]! ^= 0x20;
      await rawLevel(store).put(K.block(5), bytes);
      const fresh = new IntegrityMonitor(ledger, { logger: pino({ level: 'silent' }), workers: false });
      const status = await fresh.scanOnce();
      await fresh.stop();
      expect(status.alert?.height, `byte ${at}`).toBe(5);
    }
    await rawLevel(store).put(K.block(5), original);
    expect((await monitor.scanOnce()).ok).toBe(true);
  });

  it('a missing or foreign commit certificate, a wrong block-hash index', async () => {
    expect(await scan((s) => rawLevel(s).del(K.cert(4)))).toMatchObject({ alert: { height: 4, problem: expect.stringMatching(/no commit certificate/) } });
    expect(await scan(async (s) => rawLevel(s).put(K.cert(4), (await rawLevel(s).get(K.cert(3)))!))).toMatchObject({
      alert: { height: 4, problem: expect.stringMatching(/certificate/) },
    });
    expect(await scan(async (s) => rawLevel(s).del(K.blockByHash(chain.blocks[1]!.executed.hashHex)))).toMatchObject({
      alert: { height: 2, problem: expect.stringMatching(/block-hash index/) },
    });
  });

  it('an altered, a deleted or an extra audit event', async () => {
    const altered = await scan(async (s) => {
      const e = await eventAt(s, 3, 1);
      await rawLevel(s).put(K.event(seqKey(3, 1)), encodeCanonical({ ...e, outcome: 'success', reason: undefined } satisfies AuditEvent));
    });
    expect(altered).toMatchObject({ alert: { height: 3, problem: expect.stringMatching(/audit event 1 .* differs/) } });
    expect(await scan((s) => rawLevel(s).del(K.event(seqKey(3, 0))))).toMatchObject({
      alert: { height: 3, problem: expect.stringMatching(/audit event 0 .* missing/) },
    });
    expect(await scan(async (s) => rawLevel(s).put(K.event(seqKey(2, 7)), (await rawLevel(s).get(K.event(seqKey(2, 0))))!))).toMatchObject({
      alert: { height: 2, problem: expect.stringMatching(/belongs to no transaction/) },
    });
  });

  it('a transaction deleted from the index only is an index inconsistency at its height', async () => {
    const status = await scan((s) => rawLevel(s).del(K.txLocation(read.idHex)));
    expect(status).toMatchObject({ ok: false, alert: { height: 3, problem: expect.stringMatching(/^index inconsistency: .*transaction location/) } });
    expect(status.alert!.problem).toContain(read.idHex.slice(0, 12));
  });

  it('an audit index entry removed, pointing nowhere, or pointing to the wrong event', async () => {
    const e = (s: LedgerStore) => eventAt(s, 3, 0); // doc-1 reads pat-1's record
    const removed = await scan(async (s) => rawLevel(s).del(indexKey('patient', 'pat-1', seqKey(3, 0))));
    expect(removed).toMatchObject({
      alert: { height: 3, problem: expect.stringMatching(/^index inconsistency: audit event of transaction .* has no patient index entry/) },
    });
    expect((await e((await storeCopy()).store)).tx).toBe(read.idHex);
    const dangling = await scan((s) => rawLevel(s).put(indexKey('patient', 'pat-2', seqKey(2, 9)), new Uint8Array(0)));
    expect(dangling).toMatchObject({
      alert: { height: 2, problem: expect.stringMatching(/patient index entry .* points to audit event .* which does not exist/) },
    });
    // pat-3's trail would show doc-1's read of pat-1's record.
    const wrong = await scan((s) => rawLevel(s).put(indexKey('patient', 'pat-3', seqKey(3, 0)), new Uint8Array(0)));
    expect(wrong).toMatchObject({ alert: { height: 3, problem: expect.stringMatching(/does not match the audit event it points to/) } });
    const location = await scan((s) => rawLevel(s).put(K.txLocation(read.idHex), new TextEncoder().encode(seqKey(2, 0))));
    expect(location).toMatchObject({ alert: { height: 2, problem: expect.stringMatching(/index inconsistency/) } });
  });

  it('state on disk that the chain does not yield', async () => {
    const status = await scan(async (s) => {
      const key = K.state('users', 'pat-1');
      const user = decodeCanonical((await rawLevel(s).get(key))!) as Record<string, unknown>;
      await rawLevel(s).put(key, encodeCanonical({ ...user, lastNonce: 999 }));
    });
    expect(status).toMatchObject({ ok: false, alert: { height: HEAD, problem: expect.stringMatching(/state entry s\/users\/pat-1 differs/) } });
    expect(await scan((s) => rawLevel(s).put(K.state('users', 'ghost-1'), encodeCanonical({ id: 'ghost-1' })))).toMatchObject({
      alert: { problem: expect.stringMatching(/not derived from any block/) },
    });
  });

  it('running: follows new blocks as they commit, and a periodic rescan catches a later alteration', async () => {
    const { ledger, store } = await storeCopy();
    const monitor = monitorOf(ledger, { rescanIntervalMs: 300, crossCheckIntervalMs: 100 });
    monitor.start();
    // Generous waits: these are liveness conditions, and the suite runs on a loaded machine.
    await waitFor(() => monitor.status().verifiedHeight === HEAD, 15_000);
    const [more] = ChainBuilderContinuation.next();
    await ledger.commit(more!.finalized);
    await waitFor(() => monitor.status().verifiedHeight === HEAD + 1, 15_000);
    expect(monitor.status().ok).toBe(true);
    const bytes = (await store.getBlockBytes(2))!;
    bytes[40]! ^= 0x01;
    await rawLevel(store).put(K.block(2), bytes);
    await waitFor(() => monitor.status().ok === false, 15_000);
    expect(monitor.status()).toMatchObject({ ok: false, verifiedHeight: 1, alert: { height: 2 } });
    await monitor.stop();
  }, 60_000);

  it('running: a block altered on disk right after its commit is caught by the follow check', async () => {
    const { ledger, store } = await storeCopy();
    // The follow check runs two seconds after a commit: ample time (even on a loaded machine) to alter the
    // block before it is checked, so the check must find the alteration, not a block it already passed.
    const monitor = monitorOf(ledger, { followDelayMs: 2_000 });
    monitor.start();
    await waitFor(() => monitor.status().verifiedHeight === HEAD);
    const [first, second] = ChainBuilderContinuation.next(2);
    await ledger.commit(first!.finalized);
    await waitFor(() => monitor.status().verifiedHeight === HEAD + 1, 15_000);
    await ledger.commit(second!.finalized);
    const bytes = (await store.getBlockBytes(HEAD + 2))!;
    bytes[bytes.length - 5]! ^= 0x01;
    await rawLevel(store).put(K.block(HEAD + 2), bytes);
    await waitFor(() => monitor.status().ok === false, 15_000);
    expect(monitor.status()).toMatchObject({
      verifiedHeight: HEAD + 1,
      alert: { height: HEAD + 2, problem: 'the stored block is not the block this node committed' },
    });
  }, 40_000);
});

/** More blocks on top of the shared chain (built once, for the running-monitor tests). */
const ChainBuilderContinuation = {
  built: [] as ReturnType<ChainBuilder['finalize']>[],
  next(count = 1) {
    while (this.built.length < count) this.built.push(chain.finalize([chain.readRecord('pat-1', 'pat-1', rec.record)]));
    return this.built.slice(0, count);
  },
};

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
