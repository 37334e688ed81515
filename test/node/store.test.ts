import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeBlock, genesisBlock, headerHash } from '../../src/consensus/block.js';
import { validateBlock, type ParentRef } from '../../src/consensus/blockExecution.js';
import { genesisState } from '../../src/consensus/genesis.js';
import { verifyCertificate } from '../../src/consensus/votes.js';
import { Ledger } from '../../src/node/ledger.js';
import { LedgerStore, StoreDamage } from '../../src/node/store/ledgerStore.js';
import { K, rawLevel, seqKey } from '../../src/node/store/testSupport.js';
import type { AuditEvent } from '../../src/records/audit.js';
import { bytesEqual, toHex } from '../../src/records/crypto/bytes.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { blobPayloadSchema, grantPayloadSchema, parsePayload, rewrapForGrantee } from '../../src/records/envelope.js';
import type { MemoryState } from '../../src/records/state/memoryState.js';
import { tableNames } from '../../src/records/state/types.js';
import { batchOf } from '../../src/records/stats/batches.js';
import { aggregateShareLength, vdafFor } from '../../src/records/stats/prio3.js';
import { buildStatsReportBody } from '../../src/records/stats/report.js';
import type { AuditFilter, Tx } from '../../src/records/tx/types.js';
import { ChainBuilder, type FinalBlock } from '../support/chainBuilder.js';

/**
 * The LevelDB store against a real database on disk (one fresh directory under the OS temp dir per test,
 * removed afterwards), fed with blocks built from real signed transactions and finalized by real
 * precommit certificates (test/support/chainBuilder.ts). No mocks.
 */

const dirs: string[] = [];
const openStores = new Set<LedgerStore>();

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'medledger-store-'));
  dirs.push(dir);
  return dir;
}

async function openStore(dir: string): Promise<LedgerStore> {
  const store = await LedgerStore.open(dir);
  openStores.add(store);
  return store;
}

async function closeStore(store: LedgerStore): Promise<void> {
  openStores.delete(store);
  await store.close();
}

afterEach(async () => {
  for (const store of openStores) if (rawLevel(store).status === 'open') await store.close();
  openStores.clear();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function commitChain(store: LedgerStore, chain: ChainBuilder, blocks: FinalBlock[] = chain.blocks): Promise<void> {
  await store.initGenesis(...chain.genesisArgs());
  for (const b of blocks) await store.commitBlock(b.finalized);
}

/**
 * Plain data for `toEqual`: LevelDB and cborg hand out Buffers in some places and Uint8Arrays in others;
 * both are byte strings, so compare them as Uint8Arrays.
 */
function plain<T>(value: T): T {
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  if (Array.isArray(value)) return value.map(plain) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)])) as T;
  return value;
}

/** Every table as plain data, for `toEqual` between two states. */
function snapshot(state: MemoryState): Record<string, Record<string, unknown>> {
  return plain(Object.fromEntries(tableNames.map((t) => [t, Object.fromEntries(state.entries(t))])));
}

/** Every key and value of the database, to prove that a failed write left nothing behind. */
async function dump(store: LedgerStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const [key, value] of rawLevel(store).iterator()) out.set(key, toHex(value));
  return out;
}

async function keysWithPrefix(store: LedgerStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const key of rawLevel(store).keys({ gte: prefix, lt: `${prefix}\xff` })) out.push(key);
  return out;
}

/**
 * Re-verifies the stored chain from genesis as a syncing node would: every block decodes, its successor
 * carries its certificate, the certificate verifies, and re-execution against the state reproduces the
 * block's hash and audit events. Returns the state it ends with.
 */
async function verifyStoredChain(store: LedgerStore, chain: ChainBuilder): Promise<MemoryState> {
  const genesis = chain.genesis;
  const state = genesisState(genesis);
  const block0 = (await store.getBlock(0))!;
  expect(plain(block0)).toEqual(plain(genesisBlock(genesis)));
  let parent: ParentRef = { header: block0.header, hash: headerHash(block0.header) };
  const head = store.head()!;
  for (let h = 1; h <= head.height; h++) {
    const block = (await store.getBlock(h))!;
    const cert = (await store.getCertificate(h))!;
    const executed = validateBlock(block, parent, state, { genesis });
    verifyCertificate(cert, genesis.validators, genesis.file.network, { height: h, block: executed.hash });
    for (let i = 0; i < executed.events.length; i++) expect(plain(await store.getEvent(h, i))).toEqual(plain(executed.events[i]));
    state.write(executed.changes);
    parent = { header: block.header, hash: executed.hash };
  }
  expect(bytesEqual(parent.hash, head.hash)).toBe(true);
  return state;
}

// ---------------------------------------------------------------------------------------------------
// 1. Persistence across close / reopen
// ---------------------------------------------------------------------------------------------------

/** Six blocks touching every table: users, hospitals, records, appointments, slots (with deletions). */
async function buildVariedChain(): Promise<{ chain: ChainBuilder; record: string; blob: string; plaintext: string }> {
  const chain = ChainBuilder.create();
  chain.finalize([
    chain.registerPatient('pat-1', 'hosp-a'),
    chain.registerPatient('pat-2', 'hosp-b'),
    ...chain.enrol('admin-a', 'doc-1', 'doctor'),
    ...chain.enrol('admin-b', 'aud-1', 'auditor'),
    ...chain.enrol('admin-c', 'doc-2', 'doctor'),
  ]);
  const slot1 = chain.clock + 86_400_000;
  chain.finalize([
    chain.grant('pat-1', 'doc-1').tx,
    chain.sign('pat-1', { type: 'bookAppointment', patient: 'pat-1', body: { appointment: chain.appointmentId(), doctor: 'doc-1', at: slot1 } }),
    chain.sign('pat-1', { type: 'bookAppointment', patient: 'pat-1', body: { appointment: chain.appointmentId(), doctor: 'doc-1', at: slot1 + 3_600_000 } }),
    chain.sign('doc-2', { type: 'requestAccess', patient: 'pat-2', body: {} }),
  ]);
  const plaintext = 'temperature 37.2 C; blood pressure 121/79';
  const rec = chain.createRecord('doc-1', 'pat-1', plaintext);
  const own = chain.createRecord('pat-2', 'pat-2', 'pat-2 notes');
  chain.finalize([rec.tx, own.tx]);
  const firstApt = [...chain.state.entries('appointments')][0]![0];
  chain.finalize([
    chain.approve('pat-2', 'doc-2').tx,
    chain.readRecord('doc-1', 'pat-1', rec.record),
    chain.readRecord('doc-2', 'pat-1', rec.record), // denied: no grant
    chain.sign('doc-1', { type: 'cancelAppointment', patient: 'pat-1', body: { appointment: firstApt } }), // deletes a slot
  ]);
  chain.finalize([
    chain.sign('admin-c', { type: 'deactivateUser', body: { user: 'doc-2' } }),
    chain.updateRecord('pat-1', 'pat-1', rec.record, 2, 'temperature 36.8 C').tx,
    chain.attachFile('doc-1', 'pat-1', rec.record, 'x-ray bytes').tx,
  ]);
  // Statistics (issue 13): ten opted-in patients report, the closed batch is queried, one hospital answers.
  const reporters = Array.from({ length: 10 }, (_, i) => `stat-${i}`);
  chain.finalize(reporters.map((p) => chain.registerPatient(p, 'hosp-a')));
  const records = reporters.map((p) => chain.createRecord(p, p, 'bp 120/80'));
  chain.finalize([...records.map((r) => r.tx), ...reporters.map((p) => chain.sign(p, { type: 'statsConsent', patient: p, body: { contribute: true } }))]);
  const batch = batchOf(chain.genesis.stats, chain.clock);
  const bodies = await Promise.all(
    reporters.map((p, i) =>
      buildStatsReportBody({
        genesisHash: chain.genesis.hash,
        patient: p,
        record: records[i]!.record,
        version: 1,
        measure: 'systolic',
        value: 120,
        batch: batch.label,
        aggregatorKeys: chain.aggregators.map((a) => a.publicKey),
      }),
    ),
  );
  chain.finalize(reporters.map((p, i) => chain.sign(p, { type: 'statsReport', patient: p, record: records[i]!.record, body: bodies[i]! })));
  chain.clock = batch.end + 1_000;
  const query = chain.sign('aud-1', { type: 'statsQuery', body: { measure: 'systolic', stat: 'count', batch: batch.label } });
  chain.finalize([query]);
  const share = new Uint8Array(aggregateShareLength(vdafFor('systolic', 'histogram', 4)));
  chain.finalize([
    chain.sign('hosp-a', { type: 'statsAggregate', via: 'hosp-a', body: { job: query.idHex, share, used: 10, dropped: 0, digest: new Uint8Array(32) } }),
  ]);
  chain.finalize([]); // an empty (heartbeat) block
  return { chain, record: rec.record, blob: rec.blob, plaintext };
}

describe('persistence', () => {
  it('reopens with the same head, state, blocks, certificates and events', async () => {
    const { chain, blob, plaintext } = await buildVariedChain();
    const events = chain.events();
    expect(events.some((e) => e.outcome === 'denied')).toBe(true);
    const dir = await tempDir();

    let store = await openStore(dir);
    expect(store.head()).toBeNull();
    await commitChain(store, chain);
    expect(snapshot(await store.loadState())).toEqual(snapshot(chain.state));
    await closeStore(store);

    store = await openStore(dir);
    const head = store.head()!;
    expect(head.height).toBe(chain.height);
    expect(toHex(head.hash)).toBe(toHex(chain.head.hash));

    // State: every table, compared with the in-memory state after the same blocks.
    const loaded = await store.loadState();
    const expected = snapshot(chain.state);
    expect(snapshot(loaded)).toEqual(expected);
    for (const table of tableNames) expect(Object.keys(expected[table]!).length, table).toBeGreaterThan(0);
    expect(expected.users!['doc-2']).toMatchObject({ active: false });
    expect(Object.keys(expected.slots!)).toHaveLength(1); // one booked, one cancelled (deleted slot)

    // Blocks, certificates, hash and transaction lookups, events.
    expect(plain(await store.getBlock(0))).toEqual(plain(genesisBlock(chain.genesis)));
    for (const [i, b] of chain.blocks.entries()) {
      const h = i + 1;
      expect(plain(await store.getBlock(h))).toEqual(plain(b.executed.block));
      expect(plain(await store.getBlockBytes(h))).toEqual(plain(encodeBlock(b.executed.block)));
      expect(plain(await store.getCertificate(h))).toEqual(plain(b.cert));
      expect(plain(await store.getHeader(h))).toEqual(plain({ header: b.executed.block.header, hash: b.executed.hash }));
      expect(await store.heightOfHash(b.executed.hashHex)).toBe(h);
      if (h > 1) expect(plain(chain.blocks[h - 1]!.executed.block.lastCommit)).toEqual(plain(await store.getCertificate(h - 1)));
      for (const [index, tx] of b.executed.txs.entries()) {
        expect(await store.txLocation(tx.idHex)).toEqual({ height: h, index });
        expect(plain(await store.getEvent(h, index))).toEqual(plain(b.executed.events[index]));
      }
      expect(await store.getEvent(h, b.executed.txs.length)).toBeUndefined();
    }
    expect(await store.getBlock(chain.height + 1)).toBeUndefined();
    expect(await store.getCertificate(0)).toBeUndefined();
    expect(await store.txLocation('00'.repeat(32))).toBeUndefined();

    // Payloads survive the reopen too: the doctor opens the content the first block sealed.
    const found = (await store.getBlob(blob, 'doc-1'))!;
    expect(chain.open(found.payload, found.key!, blob, 'doc-1')).toBe(plaintext);

    // The stored chain re-verifies from genesis and re-execution ends in the same state.
    expect(snapshot(await verifyStoredChain(store, chain))).toEqual(expected);
  });

  it('a Ledger reopened on the directory continues the chain', async () => {
    const { chain } = await buildVariedChain();
    const dir = await tempDir();
    let store = await openStore(dir);
    const ledger = await Ledger.open(store, chain.genesis);
    for (const b of chain.blocks) {
      const executed = ledger.validateNext(b.executed.block);
      expect(executed.hashHex).toBe(b.executed.hashHex);
      await ledger.commit({ ...b.finalized, executed });
    }
    await closeStore(store);

    store = await openStore(dir);
    const reopened = await Ledger.open(store, chain.genesis);
    expect(reopened.height).toBe(chain.height);
    expect(snapshot(reopened.state)).toEqual(snapshot(chain.state));
    expect(plain(await reopened.headCertificate())).toEqual(plain(chain.blocks.at(-1)!.cert));

    const next = chain.finalize([chain.readRecord('pat-1', 'pat-1', [...chain.state.entries('records')][0]![0])]);
    await reopened.commit({ ...next.finalized, executed: reopened.validateNext(next.executed.block) });
    await closeStore(store);
    store = await openStore(dir);
    expect(store.head()!.height).toBe(chain.height);
    expect(snapshot(await store.loadState())).toEqual(snapshot(chain.state));
  });
});

// ---------------------------------------------------------------------------------------------------
// 2. Audit indexes: 10,000 events, every query compared with a brute-force filter
// ---------------------------------------------------------------------------------------------------

/** mulberry32: reproducible choices. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LOAD_BLOCKS = 20;
const TXS_PER_BLOCK = 500;
const BLOCK_GAP_MS = 60_000;
/** Transactions are signed up to 9 minutes before their block (the window allows 10). */
const MAX_TX_AGE_MS = 9 * 60_000;

interface IndexChain {
  chain: ChainBuilder;
  patients: string[];
  doctors: string[];
  auditors: string[];
  records: Map<string, string[]>;
  loadStart: number;
}

function buildIndexChain(): IndexChain {
  const chain = ChainBuilder.create();
  const hospitals = chain.validators.map((v) => v.hospital);
  const admins = chain.validators.map((v) => v.admin);
  const patients = Array.from({ length: 8 }, (_, i) => `pat-${i}`);
  const doctors = Array.from({ length: 6 }, (_, i) => `doc-${i}`);
  const auditors = ['aud-0', 'aud-1'];
  chain.finalize([
    ...patients.map((p, i) => chain.registerPatient(p, hospitals[i % 4]!)),
    ...doctors.flatMap((d, i) => chain.enrol(admins[i % 4]!, d, 'doctor')),
    ...auditors.flatMap((a, i) => chain.enrol(admins[(i + 1) % 4]!, a, 'auditor')),
  ]);
  // pat-i grants doc-(i mod 6), and doc-((i+1) mod 6) for odd i; even patients grant an auditor.
  const grants: Tx[] = [];
  patients.forEach((p, i) => {
    grants.push(chain.grant(p, doctors[i % 6]!).tx);
    if (i % 2 === 1) grants.push(chain.grant(p, doctors[(i + 1) % 6]!).tx);
    else grants.push(chain.grant(p, auditors[(i / 2) % 2]!).tx);
  });
  chain.finalize(grants);
  const records = new Map<string, string[]>();
  const creates: Tx[] = [];
  for (const p of patients) {
    const ids = [chain.recordId(), chain.recordId()];
    records.set(p, ids);
    for (const record of ids)
      creates.push(chain.sign(p, { type: 'createRecord', patient: p, record, body: { recipients: chain.recipientsFor(p).map((r) => r.id) } }));
  }
  chain.finalize(creates);

  const granted = (p: string) => Object.keys(chain.state.get('users', p)!.grants ?? {});
  const rand = seeded(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const loadStart = chain.clock + MAX_TX_AGE_MS;
  for (let k = 0; k < LOAD_BLOCKS; k++) {
    const blockTime = loadStart + k * BLOCK_GAP_MS;
    const txs: Tx[] = [];
    for (let j = 0; j < TXS_PER_BLOCK; j++) {
      const time = blockTime - Math.floor(rand() * MAX_TX_AGE_MS);
      const p = pick(patients);
      const record = pick(records.get(p)!);
      const staff = granted(p);
      const r = rand();
      const other = pick(doctors.filter((d) => !staff.includes(d)));
      if (r < 0.3) txs.push(chain.sign(p, { type: 'readRecord', patient: p, record, time, body: {} }));
      else if (r < 0.5) txs.push(chain.sign(pick(staff), { type: 'readRecord', patient: p, record, time, body: {} }));
      else if (r < 0.6)
        txs.push(chain.sign(other, { type: 'readRecord', patient: p, record, time, body: {} })); // denied
      else if (r < 0.66)
        txs.push(chain.sign(pick(auditors), { type: 'readRecord', patient: p, record, time, body: {} })); // granted or denied
      else if (r < 0.76) {
        const actor = rand() < 0.5 ? p : pick(staff.filter((s) => s.startsWith('doc-')));
        txs.push(
          chain.sign(actor, {
            type: 'createRecord',
            patient: p,
            record: chain.recordId(),
            time,
            body: { recipients: chain.recipientsFor(p).map((x) => x.id) },
          }),
        );
      } else if (r < 0.81) {
        txs.push(
          chain.sign(other, {
            type: 'createRecord',
            patient: p,
            record: chain.recordId(),
            time,
            body: { recipients: chain.recipientsFor(p).map((x) => x.id) },
          }),
        ); // denied
      } else if (r < 0.88) txs.push(chain.sign(p, { type: 'listRecords', patient: p, time, body: {} }));
      else if (r < 0.94) txs.push(chain.sign(p, { type: 'queryAudit', time, body: { filter: { patient: p } } }));
      else if (r < 0.97) {
        const h = pick([0, 1, 2, 3]);
        txs.push(chain.sign(admins[h]!, { type: 'queryAudit', time, body: { filter: { hospital: hospitals[h]! } } }));
      } else txs.push(chain.sign(pick(doctors), { type: 'queryAudit', time, body: { filter: { patient: p } } })); // granted or denied
    }
    chain.finalize(txs, { time: blockTime });
  }
  return { chain, patients, doctors, auditors, records, loadStart };
}

type Query = AuditFilter & { staffOnly?: boolean };

/** What `queryEvents` must answer: the filter applied to every event, newest first in the index's order. */
function bruteForce(all: AuditEvent[], f: Query): AuditEvent[] {
  const byTime = !f.record && !f.patient && !f.user && !f.hospital;
  return all
    .filter(
      (e) =>
        (f.patient === undefined || e.patient === f.patient) &&
        (f.user === undefined || e.agent.user === f.user) &&
        (f.record === undefined || e.record === f.record) &&
        (f.hospital === undefined || e.agent.hospital === f.hospital) &&
        (f.action === undefined || e.action === f.action) &&
        (f.outcome === undefined || e.outcome === f.outcome) &&
        (f.from === undefined || e.recorded >= f.from) &&
        (f.to === undefined || e.recorded <= f.to) &&
        (!f.staffOnly || e.agent.role !== 'patient'),
    )
    .sort((a, b) => (byTime ? b.recorded - a.recorded : 0) || b.height - a.height || b.index - a.index);
}

/** Follows the cursor to the end; checks page sizes, order and that no event comes twice. */
async function readAll(store: LedgerStore, filter: Query, limit: number): Promise<{ events: AuditEvent[]; pages: number }> {
  const events: AuditEvent[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await store.queryEvents(filter, { limit, ...(cursor ? { cursor } : {}) });
    pages++;
    expect(page.events.length).toBeLessThanOrEqual(limit);
    events.push(...page.events);
    if (!page.cursor) break;
    expect(page.cursor).not.toBe(cursor);
    cursor = page.cursor;
    if (pages > 20_000) throw new Error('cursor does not advance');
  }
  expect(new Set(events.map((e) => e.tx)).size).toBe(events.length);
  return { events, pages };
}

describe('audit indexes over 10,000 events', () => {
  let ix: IndexChain;
  let all: AuditEvent[];
  let template: string;
  let store: LedgerStore;

  // The chain is built and written once into a template directory; each test gets a fresh copy of it.
  beforeAll(async () => {
    ix = buildIndexChain();
    all = ix.chain.events();
    template = await mkdtemp(join(tmpdir(), 'medledger-store-template-'));
    const s = await LedgerStore.open(template);
    await commitChain(s, ix.chain);
    await s.close();
  });
  afterAll(async () => {
    if (template) await rm(template, { recursive: true, force: true });
  });

  async function filledStore(): Promise<LedgerStore> {
    const dir = await tempDir();
    await cp(template, dir, { recursive: true });
    store = await openStore(dir);
    expect(store.head()!.height).toBe(ix.chain.height);
    return store;
  }

  /** Pages through `filter` and compares with the brute-force answer: same events, same order. */
  async function check(filter: Query, limit: number, opts: { min?: number } = {}): Promise<AuditEvent[]> {
    const expected = bruteForce(all, filter);
    expect(expected.length, JSON.stringify(filter)).toBeGreaterThanOrEqual(opts.min ?? 1);
    const { events, pages } = await readAll(store, filter, limit);
    expect(
      events.map((e) => `${e.height}:${e.index}`),
      JSON.stringify(filter),
    ).toEqual(expected.map((e) => `${e.height}:${e.index}`));
    // Whole events, field by field (canonical encoding: key order does not matter).
    expect(events.map((e) => toHex(encodeCanonical(e)))).toEqual(expected.map((e) => toHex(encodeCanonical(e))));
    if (expected.length > limit) expect(pages).toBeGreaterThan(1);
    return events;
  }

  it('the chain has the intended shape', () => {
    const load = all.filter((e) => e.height > 3);
    expect(load).toHaveLength(LOAD_BLOCKS * TXS_PER_BLOCK);
    expect(all.length).toBeGreaterThanOrEqual(10_000);
    const count = (p: (e: AuditEvent) => boolean) => all.filter(p).length;
    expect(count((e) => e.action === 'R' && e.outcome === 'success')).toBeGreaterThan(2_000);
    expect(count((e) => e.action === 'R' && e.outcome === 'denied')).toBeGreaterThan(500);
    expect(count((e) => e.action === 'C' && e.outcome === 'success')).toBeGreaterThan(500);
    expect(count((e) => e.action === 'C' && e.outcome === 'denied')).toBeGreaterThan(100);
    expect(count((e) => e.type === 'queryAudit' && e.patient === undefined)).toBeGreaterThan(100);
    // Recorded times are not in chain order: the time index and the chain-order indexes differ.
    expect(load.some((e, i) => i > 0 && e.recorded < load[i - 1]!.recorded)).toBe(true);
  });

  it("a patient's trail, newest first, paged with the cursor without gaps or duplicates", async () => {
    await filledStore();
    const trail = await check({ patient: 'pat-3' }, 50);
    expect(trail.length).toBeGreaterThan(1_000);
    await check({ patient: 'pat-0' }, 173);
    await check({ patient: 'pat-7' }, 1_000_000); // one page
    const first = await store.queryEvents({ patient: 'pat-3' }, { limit: 10 });
    expect(first.events.map((e) => e.tx)).toEqual(trail.slice(0, 10).map((e) => e.tx));
    expect(first.cursor).toBeDefined();
    const second = await store.queryEvents({ patient: 'pat-3' }, { limit: 10, cursor: first.cursor! });
    expect(second.events.map((e) => e.tx)).toEqual(trail.slice(10, 20).map((e) => e.tx));
    // Unknown patient: empty, no cursor.
    expect(await store.queryEvents({ patient: 'nobody-here' }, { limit: 10 })).toEqual({ events: [] });
  });

  it("a user's trail (staff and patients as actors)", async () => {
    await filledStore();
    for (const u of ['doc-1', 'doc-4', 'aud-0', 'pat-2', 'admin-b']) await check({ user: u }, 97);
  });

  it('a time range through the time index, with and without other fields', async () => {
    await filledStore();
    const from = ix.loadStart + 5 * BLOCK_GAP_MS + 12_345;
    const to = ix.loadStart + 9 * BLOCK_GAP_MS - 4_321;
    const events = await check({ from, to }, 200);
    expect(events.length).toBeGreaterThan(1_000);
    // Ordered by recorded time (newest first), not chain order, and spanning many blocks.
    expect(new Set(events.map((e) => e.height)).size).toBeGreaterThan(4);
    await check({ from: ix.loadStart + 17 * BLOCK_GAP_MS }, 300);
    await check({ to: ix.loadStart }, 300);
    await check({ from: to, to }, 10, { min: 0 });
    await check({ from, to, outcome: 'denied' }, 64);
    await check({ from, to, action: 'C' }, 64);
    expect(await store.queryEvents({ from: ix.loadStart + 10 * 86_400_000 }, { limit: 5 })).toEqual({ events: [] });
    // Both bounds are inclusive, through the time index and through a chain-order index.
    const pivot = all.find((e, i) => i > 5_000 && e.patient !== undefined)!;
    expect((await check({ from: pivot.recorded, to: pivot.recorded }, 10)).map((e) => e.tx)).toContain(pivot.tx);
    expect((await check({ patient: pivot.patient!, from: pivot.recorded, to: pivot.recorded }, 10)).map((e) => e.tx)).toContain(pivot.tx);
  });

  it('combinations: patient with action, outcome and time range', async () => {
    await filledStore();
    await check({ patient: 'pat-1', action: 'R' }, 41);
    await check({ patient: 'pat-1', outcome: 'denied' }, 41);
    await check({ patient: 'pat-6', action: 'C', outcome: 'success' }, 41);
    // Time ranges exercise the early stop of chain-order scans (events far older than `from`).
    await check({ patient: 'pat-6', from: ix.loadStart + 3 * BLOCK_GAP_MS, to: ix.loadStart + 7 * BLOCK_GAP_MS }, 23);
    await check({ patient: 'pat-1', from: ix.loadStart + 15 * BLOCK_GAP_MS }, 23);
    await check({ patient: 'pat-6', to: ix.loadStart + 2 * BLOCK_GAP_MS }, 23);
    await check({ patient: 'pat-1', action: 'R', outcome: 'denied', from: ix.loadStart + 10 * BLOCK_GAP_MS - 30_000 }, 7);
    await check({ patient: 'pat-6', user: 'doc-0', outcome: 'success' }, 7, { min: 0 });
  });

  it('admin queries: staff actions of one hospital', async () => {
    await filledStore();
    for (const h of ['hosp-b', 'hosp-c']) {
      const events = await check({ hospital: h, staffOnly: true }, 120);
      expect(events.every((e) => e.agent.role !== 'patient' && e.agent.hospital === h)).toBe(true);
    }
    // Without staffOnly the hospital index also holds its patients' own actions.
    await check({ hospital: 'hosp-a' }, 300);
    await check({ hospital: 'hosp-b', user: 'doc-1', staffOnly: true }, 50);
    await check({ hospital: 'hosp-b', user: 'pat-1', staffOnly: true }, 50, { min: 0 });
    await check({ hospital: 'hosp-c', staffOnly: true, outcome: 'denied', from: ix.loadStart + 4 * BLOCK_GAP_MS, to: ix.loadStart + 12 * BLOCK_GAP_MS }, 33);
    await check({ hospital: 'hosp-a', staffOnly: true, action: 'E' }, 33);
  });

  it('record trails', async () => {
    await filledStore();
    for (const p of ['pat-2', 'pat-5']) {
      for (const record of ix.records.get(p)!) {
        const trail = await check({ record }, 60);
        expect(trail.at(-1)!.type).toBe('createRecord');
        await check({ record, patient: p, outcome: 'denied' }, 5);
      }
    }
    const record = ix.records.get('pat-2')![0]!;
    await check({ record, action: 'R', from: ix.loadStart + 8 * BLOCK_GAP_MS }, 3);
    await check({ record, user: 'pat-2' }, 9);
    // A record created during the load: a short trail, paged one event at a time.
    const young = all.find((e) => e.height > 10 && e.type === 'createRecord' && e.outcome === 'success')!;
    await check({ record: young.record! }, 1);
  });

  it('every event returned is the stored event', async () => {
    await filledStore();
    const page = await store.queryEvents({ patient: 'pat-4' }, { limit: 200 });
    for (const e of page.events) expect(await store.getEvent(e.height, e.index)).toEqual(e);
  });
});

// ---------------------------------------------------------------------------------------------------
// 3. Payloads: storage, grants, and the purge on record deletion
// ---------------------------------------------------------------------------------------------------

/** Files of the store (the LevelDB directory and its payload files) that contain any of the needles. */
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
  await walk(`${dir}-payloads`);
  return hits;
}

/**
 * Short slices of a ciphertext: the write-ahead log splits records at 32 KiB block boundaries, so one
 * long needle could miss a copy; any 24-byte slice of random ciphertext is unique in practice.
 */
function slices(bytes: Uint8Array, count = 6): Uint8Array[] {
  const out: Uint8Array[] = [];
  const step = Math.max(1, Math.floor((bytes.length - 24) / (count - 1)));
  for (let off = 0; off + 24 <= bytes.length && out.length < count; off += step) out.push(bytes.slice(off, off + 24));
  return out;
}

/** Bytes distinctive enough for a scan; random so that the AEAD output is incompressible anyway. */
function content(label: string, size = 6_000): string {
  let s = `${label}:`;
  while (s.length < size) s += Math.random().toString(36).slice(2);
  return s;
}

/**
 * Makes LevelDB drop what the store deleted, then closes the directory for a scan. LevelDB deletes by
 * writing tombstones; the old value stays in the write-ahead log or a table file until a compaction merges
 * the two. `compactRange` alone is not enough: it first flushes the memtable, and LevelDB may place that
 * flush directly at level 2 (PickLevelForMemTableOutput) — one file holding both the value and its
 * tombstone, at the deepest level, which `compactRange` never rewrites. Reopening first turns the log into
 * a level-0 table (log recovery always writes level 0), which `compactRange` then merges down, dropping
 * the shadowed values. That is deterministic for these small databases (everything fits in one memtable);
 * it is not a guarantee LevelDB gives in general (see the report on purge).
 */
async function compactOnDisk(dir: string): Promise<void> {
  const store = await openStore(dir);
  await rawLevel(store).compactRange('\x00', '\xff');
  await closeStore(store);
}

describe('payloads', () => {
  it('stores blobs and wrapped keys; grants add keys; deleting a record purges all of it while the chain verifies', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-b', 'doc-1', 'doctor'), ...chain.enrol('admin-c', 'doc-2', 'doctor')]);

    // The record to delete (three blobs) and a record that stays.
    const r1 = chain.createRecord('pat-1', 'pat-1', content('R1 content v1'));
    const r3 = chain.createRecord('pat-1', 'pat-1', content('R3 stays'));
    const b2 = chain.finalize([r1.tx, r3.tx]);
    const r1v2 = chain.updateRecord('pat-1', 'pat-1', r1.record, 2, content('R1 content v2'));
    const r1file = chain.attachFile('pat-1', 'pat-1', r1.record, content('R1 attached file'));
    chain.finalize([r1v2.tx, r1file.tx]);

    const dir = await tempDir();
    let store = await openStore(dir);
    await commitChain(store, chain);

    // Blobs: ciphertext + the reader's wrapped key, opening to the plaintext.
    for (const s of [r1, r1v2, r1file, r3]) {
      const found = (await store.getBlob(s.blob, 'pat-1'))!;
      expect(toHex(found.payload)).toBe(toHex(s.payload));
      expect(chain.open(found.payload, found.key!, s.blob, 'pat-1')).toBe(new TextDecoder().decode(s.plaintext));
      expect((await store.getBlob(s.blob, 'doc-1'))!.key).toBeUndefined();
      expect(plain(await store.getPayload(s.tx.idHex))).toEqual(plain({ payload: s.payload, redacted: false }));
    }
    expect(b2.payloads.size).toBe(2);
    const patientBlobs = (await store.keysOfPatient('pat-1', 'pat-1')).map((k) => k.blob).sort();
    expect(patientBlobs).toEqual(chain.blobsOf('pat-1').map((b) => b.blob));
    expect(patientBlobs).toHaveLength(4);
    expect(await store.keysOfPatient('pat-1', 'doc-1')).toEqual([]);
    expect(await store.getBlob('rec-00000000000000ff/content/1', 'pat-1')).toBeUndefined();

    // Grant: the patient re-wraps every key for the doctor; the doctor can open every blob.
    const grant = chain.grant('pat-1', 'doc-1');
    expect(grant.blobs).toHaveLength(4);
    chain.finalize([grant.tx]);
    await store.commitBlock(chain.blocks.at(-1)!.finalized);
    expect((await store.keysOfPatient('pat-1', 'doc-1')).map((k) => k.blob).sort()).toEqual(patientBlobs);
    for (const s of [r1, r1v2, r1file, r3]) {
      const found = (await store.getBlob(s.blob, 'doc-1'))!;
      expect(chain.open(found.payload, found.key!, s.blob, 'doc-1')).toBe(new TextDecoder().decode(s.plaintext));
    }
    // New content after the grant is wrapped for the doctor inside its own payload.
    const r2 = chain.createRecord('doc-1', 'pat-1', content('R2 by the doctor'));
    chain.finalize([r2.tx]);
    await store.commitBlock(chain.blocks.at(-1)!.finalized);
    expect(chain.open((await store.getBlob(r2.blob, 'doc-1'))!.payload, (await store.getBlob(r2.blob, 'doc-1'))!.key!, r2.blob, 'doc-1')).toBe(
      new TextDecoder().decode(r2.plaintext),
    );

    // Before the deletion the ciphertexts and wrapped keys are on disk: the scan below is meaningful.
    const r1Blobs = [r1, r1v2, r1file];
    const grantKeys = parsePayload(grantPayloadSchema, grant.payload, 'grant').keys;
    const r1Needles = [
      ...r1Blobs.flatMap((s) => slices(s.ciphertext)),
      ...r1Blobs.map((s) => grantKeys[s.blob]!.w), // keys wrapped for the doctor inside the grant payload
      ...r1Blobs.map((s) => parsePayload(blobPayloadSchema, s.payload, 'payload').keys['pat-1']!.w),
    ];
    await closeStore(store);
    expect((await scanDir(dir, r1Needles)).length).toBeGreaterThan(0);
    store = await openStore(dir);

    // Delete R1.
    chain.finalize([chain.deleteRecord('pat-1', 'pat-1', r1.record)]);
    await store.commitBlock(chain.blocks.at(-1)!.finalized);

    for (const s of r1Blobs) {
      expect(await store.getBlob(s.blob, 'pat-1')).toBeUndefined();
      expect(await store.getBlob(s.blob, 'doc-1')).toBeUndefined();
      expect(await store.getPayload(s.tx.idHex)).toBeUndefined();
    }
    for (const prefix of [
      K.recordBlobPrefix(r1.record),
      `wk/${r1.record}/`,
      `gb/${r1.record}/`,
      `bl/${r1.record}/`,
      `${K.patientBlobPrefix('pat-1')}${r1.record}/`,
    ]) {
      expect(await keysWithPrefix(store, prefix), prefix).toEqual([]);
    }
    // The grant payload is redacted: R1's keys are gone, R3's stay.
    const redacted = (await store.getPayload(grant.tx.idHex))!;
    expect(redacted.redacted).toBe(true);
    expect(Object.keys(parsePayload(grantPayloadSchema, redacted.payload, 'grant').keys)).toEqual([r3.blob]);
    // What remains is intact.
    expect((await store.keysOfPatient('pat-1', 'pat-1')).map((k) => k.blob).sort()).toEqual([r2.blob, r3.blob].sort());
    expect((await store.keysOfPatient('pat-1', 'doc-1')).map((k) => k.blob).sort()).toEqual([r2.blob, r3.blob].sort());
    const stays = (await store.getBlob(r3.blob, 'doc-1'))!;
    expect(chain.open(stays.payload, stays.key!, r3.blob, 'doc-1')).toBe(new TextDecoder().decode(r3.plaintext));
    expect(plain(await store.getPayload(r2.tx.idHex))).toEqual(plain({ payload: r2.payload, redacted: false }));

    // The chain still decodes, its certificates verify and re-execution reproduces every block.
    expect(snapshot(await verifyStoredChain(store, chain))).toEqual(snapshot(chain.state));
    expect(snapshot(await store.loadState())).toEqual(snapshot(chain.state));
    expect((await store.queryEvents({ record: r1.record }, { limit: 100 })).events.map((e) => e.type)).toEqual([
      'deleteRecord',
      'attachFile',
      'updateRecord',
      'createRecord',
    ]);

    // No file of the database holds R1's ciphertext or wrapped keys once LevelDB has compacted.
    await closeStore(store);
    await compactOnDisk(dir);
    expect(await scanDir(dir, r1Needles)).toEqual([]);
    // Control: what was not deleted is still found by the same scan.
    expect((await scanDir(dir, slices(r3.ciphertext))).length).toBeGreaterThan(0);
  });

  it('purges the keys of a record from every grant payload that carried them (grant, revoke, grant again)', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([
      chain.registerPatient('pat-1', 'hosp-a'),
      ...chain.enrol('admin-b', 'doc-1', 'doctor'),
      chain.sign('doc-1', { type: 'requestAccess', patient: 'pat-1', body: {} }),
    ]);
    const rec = chain.createRecord('pat-1', 'pat-1', content('twice granted'));
    const keep = chain.createRecord('pat-1', 'pat-1', content('kept'));
    chain.finalize([rec.tx, keep.tx]);
    const first = chain.approve('pat-1', 'doc-1'); // approveRequest: a grant payload too
    chain.finalize([first.tx]);
    chain.finalize([chain.revoke('pat-1', 'doc-1')]);
    const second = chain.grant('pat-1', 'doc-1');
    chain.finalize([second.tx]);
    expect(first.blobs).toEqual(second.blobs);
    chain.finalize([chain.deleteRecord('pat-1', 'pat-1', rec.record)]);

    const dir = await tempDir();
    let store = await openStore(dir);
    await commitChain(store, chain);

    for (const g of [first, second]) {
      const stored = (await store.getPayload(g.tx.idHex))!;
      expect(stored.redacted, g.tx.tx.type).toBe(true);
      expect(Object.keys(parsePayload(grantPayloadSchema, stored.payload, 'grant').keys), g.tx.tx.type).toEqual([keep.blob]);
    }
    expect(await keysWithPrefix(store, `wk/${rec.record}/`)).toEqual([]);
    expect(await keysWithPrefix(store, `gb/${rec.record}/`)).toEqual([]);
    expect(await store.getBlob(rec.blob, 'doc-1')).toBeUndefined();
    expect((await store.getBlob(keep.blob, 'doc-1'))!.key).toBeDefined();

    await closeStore(store);
    await compactOnDisk(dir);
    const needles = [...slices(rec.ciphertext), ...[first, second].map((g) => parsePayload(grantPayloadSchema, g.payload, 'grant').keys[rec.blob]!.w)];
    expect(await scanDir(dir, needles)).toEqual([]);
    store = await openStore(dir);
    expect(snapshot(await verifyStoredChain(store, chain))).toEqual(snapshot(chain.state));
  });

  it('a record created and deleted in one block is purged too', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
    chain.finalize([chain.grant('pat-1', 'doc-1').tx]);
    const rec = chain.createRecord('doc-1', 'pat-1', content('short-lived'));
    const file = chain.attachFile('doc-1', 'pat-1', rec.record, content('short-lived file'));
    const other = chain.createRecord('pat-1', 'pat-1', content('survivor'));
    chain.finalize([rec.tx, file.tx, other.tx, chain.deleteRecord('doc-1', 'pat-1', rec.record)]);
    expect(chain.blocks.at(-1)!.executed.events.map((e) => e.outcome)).toEqual(['success', 'success', 'success', 'success']);

    const dir = await tempDir();
    const store = await openStore(dir);
    await commitChain(store, chain);
    for (const s of [rec, file]) {
      expect(await store.getBlob(s.blob, 'pat-1')).toBeUndefined();
      expect(await store.getBlob(s.blob, 'doc-1')).toBeUndefined();
      expect(await store.getPayload(s.tx.idHex)).toBeUndefined();
    }
    for (const prefix of [
      K.recordBlobPrefix(rec.record),
      `wk/${rec.record}/`,
      `gb/${rec.record}/`,
      `bl/${rec.record}/`,
      `${K.patientBlobPrefix('pat-1')}${rec.record}/`,
    ]) {
      expect(await keysWithPrefix(store, prefix), prefix).toEqual([]);
    }
    expect((await store.keysOfPatient('pat-1', 'doc-1')).map((k) => k.blob)).toEqual([other.blob]);
    expect(snapshot(await verifyStoredChain(store, chain))).toEqual(snapshot(chain.state));
    // The purged payloads were never written at all: not even the write-ahead log has them.
    await closeStore(store);
    expect(await scanDir(dir, [...slices(rec.ciphertext), ...slices(file.ciphertext)])).toEqual([]);
    expect((await scanDir(dir, slices(other.ciphertext))).length).toBeGreaterThan(0);
  });

  it("a grant payload cannot put keys on another patient's blobs", async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), chain.registerPatient('pat-2', 'hosp-b'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
    chain.finalize([chain.grant('pat-2', 'doc-1').tx]);
    const theirs = chain.createRecord('pat-2', 'pat-2', content('pat-2 record'));
    const mine = chain.createRecord('pat-1', 'pat-1', content('pat-1 record'));
    chain.finalize([theirs.tx, mine.tx]);
    // pat-1's client wraps its own data key under the name of pat-2's blob (and of a blob that does not
    // exist): the payload is well formed and matches its hash, so admission cannot tell.
    const own = chain.blobsOf('pat-1')[0]!;
    const forged = rewrapForGrantee([own], chain.me('pat-1'), { id: 'doc-1', encKey: chain.keys('doc-1').enc.publicKey });
    const forgedKeys = parsePayload(grantPayloadSchema, forged.payload, 'grant').keys;
    const payload = encodeCanonical({
      keys: { [own.blob]: forgedKeys[own.blob]!, [theirs.blob]: forgedKeys[own.blob]!, 'rec-00000000000000aa/content/1': forgedKeys[own.blob]! },
    });
    const grant = chain.sign('pat-1', { type: 'grantAccess', patient: 'pat-1', body: { grantee: 'doc-1' } }, payload);
    chain.finalize([grant]);

    const dir = await tempDir();
    const store = await openStore(dir);
    await commitChain(store, chain);
    // doc-1 still opens pat-2's record with the key pat-2's payload gave it, and pat-1's with the grant.
    const found = (await store.getBlob(theirs.blob, 'doc-1'))!;
    expect(chain.open(found.payload, found.key!, theirs.blob, 'doc-1')).toBe(new TextDecoder().decode(theirs.plaintext));
    const granted = (await store.getBlob(mine.blob, 'doc-1'))!;
    expect(chain.open(granted.payload, granted.key!, mine.blob, 'doc-1')).toBe(new TextDecoder().decode(mine.plaintext));
    expect(await keysWithPrefix(store, 'wk/rec-00000000000000aa/')).toEqual([]);
    expect((await store.keysOfPatient('pat-2', 'doc-1')).map((k) => k.blob)).toEqual([theirs.blob]);
  });

  it('stores no payload of a denied transaction', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
    const denied = chain.createRecord('doc-1', 'pat-1', content('no grant'));
    chain.finalize([denied.tx]);
    expect(chain.blocks.at(-1)!.executed.events[0]!.outcome).toBe('denied');
    const dir = await tempDir();
    const store = await openStore(dir);
    await commitChain(store, chain);
    expect(await store.getPayload(denied.tx.idHex)).toBeUndefined();
    expect(await store.getBlob(denied.blob, 'pat-1')).toBeUndefined();
    expect(await store.keysOfPatient('pat-1', 'pat-1')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// 4. Atomicity and the genesis binding
// ---------------------------------------------------------------------------------------------------

describe('atomicity', () => {
  it('commitBlock for a block that does not extend the head throws and writes nothing', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-a')]);
    const rec = chain.createRecord('pat-1', 'pat-1', content('payload'));
    chain.finalize([rec.tx]);
    chain.finalize([chain.readRecord('pat-1', 'pat-1', rec.record)]);
    // A competing chain on the same genesis (same validators): its block 2 has another parent.
    const [b1, b2, b3] = chain.blocks as [FinalBlock, FinalBlock, FinalBlock];

    const dir = await tempDir();
    let store = await openStore(dir);
    await store.initGenesis(...chain.genesisArgs());
    const empty = await dump(store);
    // Height 2 before height 1: a gap.
    await expect(store.commitBlock(b2.finalized)).rejects.toThrow(/does not extend/);
    expect(await dump(store)).toEqual(empty);

    await store.commitBlock(b1.finalized);
    const afterOne = await dump(store);
    // The same height again, and a block two heights ahead.
    await expect(store.commitBlock(b1.finalized)).rejects.toThrow(/does not extend/);
    await expect(store.commitBlock(b3.finalized)).rejects.toThrow(/does not extend/);
    // The right height on the wrong parent (a fork's block 2).
    const forked = { ...b2.executed, block: { ...b2.executed.block, header: { ...b2.executed.block.header, parent: new Uint8Array(32).fill(7) } } };
    await expect(store.commitBlock({ ...b2.finalized, executed: forked })).rejects.toThrow(/does not extend/);
    expect(await dump(store)).toEqual(afterOne);
    expect(store.head()!.height).toBe(1);

    await closeStore(store);
    store = await openStore(dir);
    expect(plain(store.head())).toEqual(plain({ height: 1, hash: b1.executed.hash }));
    expect(await dump(store)).toEqual(afterOne);
    // And the chain continues normally from there.
    await store.commitBlock(b2.finalized);
    await store.commitBlock(b3.finalized);
    expect(store.head()!.height).toBe(3);
    expect(plain(await store.getPayload(rec.tx.idHex))).toEqual(plain({ payload: rec.payload, redacted: false }));
  });

  it('refuses a directory that belongs to another genesis', async () => {
    const chain = ChainBuilder.create();
    chain.finalize([chain.registerPatient('pat-1', 'hosp-b')]);
    const other = ChainBuilder.create({ network: 'other-network' });
    const dir = await tempDir();
    let store = await openStore(dir);
    await commitChain(store, chain);
    const before = await dump(store);

    await expect(store.initGenesis(...other.genesisArgs())).rejects.toThrow(/different genesis/);
    // The same genesis again is a no-op.
    await store.initGenesis(...chain.genesisArgs());
    expect(await dump(store)).toEqual(before);
    await closeStore(store);

    store = await openStore(dir);
    await expect(Ledger.open(store, other.genesis)).rejects.toThrow(/different genesis/);
    expect(await dump(store)).toEqual(before);
    const ledger = await Ledger.open(store, chain.genesis);
    expect(ledger.height).toBe(1);
    expect(toHex((await rawLevel(store).get(K.genesis))!)).toBe(toHex(chain.genesis.hash));
  });
});

describe('values read back', () => {
  it('a damaged value is a StoreDamage naming what it should hold; a damaged state row can be left out instead', async () => {
    const { chain } = await buildVariedChain();
    const store = await openStore(await tempDir());
    await commitChain(store, chain);
    const db = rawLevel(store);
    // Valid CBOR of the wrong shape, and bytes that are no CBOR at all.
    await db.put(K.event(seqKey(2, 0)), encodeCanonical({ tx: 'not an event' }));
    await expect(store.getEvent(2, 0)).rejects.toThrow(StoreDamage);
    await expect(store.getEvent(2, 0)).rejects.toMatchObject({ what: 'audit event 2/0', height: 2 });
    await db.put(K.cert(3), new Uint8Array([0xff, 0x00]));
    await expect(store.getCertificate(3)).rejects.toMatchObject({ name: 'StoreDamage', height: 3 });
    await db.put(K.consensus, encodeCanonical({ rs: 'not a round state', votes: [] }));
    await expect(store.loadRoundState()).rejects.toThrow(/damaged consensus round state/);

    await db.put(K.state('users', 'ghost-1'), encodeCanonical({ id: 'ghost-1' }));
    await expect(store.loadState()).rejects.toThrow(StoreDamage);
    const damaged: StoreDamage[] = [];
    const state = await store.loadState({ onDamage: (d) => damaged.push(d) });
    expect(damaged.map((d) => d.what)).toEqual(['state entry s/users/ghost-1']);
    expect(state.get('users', 'ghost-1')).toBeUndefined();
    expect(state.get('users', 'pat-1')).toBeDefined();
  });
});
