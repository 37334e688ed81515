import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ApiAdmissionLimits,
  MAX_NONCE_GAP,
  MAX_PENDING_PER_USER,
  nonceCeiling,
  REGISTRATIONS_PER_DAY,
  REGISTRATIONS_PER_MINUTE,
  TokenBuckets,
  TX_BURST_PER_USER,
  TX_RATE_PER_USER,
} from '../../../src/node/admissionLimits.js';
import { parseNodeConfig } from '../../../src/node/config.js';
import { Mempool, type PendingTx } from '../../../src/node/mempool.js';
import { admitTx, type AdmissionOptions } from '../../../src/node/txAdmission.js';
import { BoundedTxCache } from '../../../src/node/txCache.js';
import { isMedLedgerError, type MedLedgerError } from '../../../src/records/errors.js';
import type { Tx } from '../../../src/records/tx/types.js';
import { createLedger, type Ledger } from '../../support/ledgerFixture.js';

/**
 * Admission limits against a user or a local process trying to spam a node for free: nonce floods, one
 * user filling the mempool, API floods, registration floods, and the mempool's per-user bookkeeping.
 * In-process: a real state and real signed transactions (ledgerFixture), the node's own admitTx and Mempool.
 */

const BIG = { maxTxs: 1_000_000, maxBytes: 1 << 30 };

/** A ledger with registered patients; `admit` runs the node's admission against its committed state. */
function setup(patients: string[] = ['pat-1', 'pat-2'], mempool = new Mempool(BIG)) {
  const ledger = createLedger();
  for (const p of patients) ledger.registerPatient(p, 'hosp-a');
  const deps = { ledger: { state: ledger.state, height: ledger.height, txCache: new BoundedTxCache(), genesis: { hash: ledger.genesisHash } }, mempool };
  const admit = (tx: Tx, opts: Partial<AdmissionOptions> = {}) => admitTx(deps, tx.bytes, undefined, { now: ledger.clock, ...opts });
  return { ledger, mempool, admit };
}

/** An audited read of the patient's own list: valid, payload-free, one per nonce. */
function read(ledger: Ledger, patient: string, fields: { nonce?: number; time?: number } = {}): Tx {
  return ledger.sign(patient, { type: 'listRecords', patient, body: {}, ...fields });
}

function registration(ledger: Ledger, id: string, fields: { time?: number } = {}): Tx {
  return ledger.sign(id, { type: 'registerPatient', via: 'hosp-a', body: { encKey: ledger.keys(id).encKey }, ...fields });
}

function refusal(fn: () => unknown): MedLedgerError {
  try {
    fn();
  } catch (err) {
    if (isMedLedgerError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('one pending nonce sequence per user', () => {
  it('refuses every transaction with the nonce of one already pending (different id, same nonce), also from gossip', () => {
    const { ledger, mempool, admit } = setup();
    const nonce = ledger.nextNonce('pat-1');
    // 50 different transactions (different times, so different ids) all with one nonce.
    const flood = Array.from({ length: 50 }, (_, i) => read(ledger, 'pat-1', { nonce, time: ledger.clock - i }));
    expect(new Set(flood.map((t) => t.idHex)).size).toBe(50);
    expect(admit(flood[0]!).status).toBe('added');
    for (const tx of flood.slice(1)) {
      const err = refusal(() => admit(tx)); // gossip path: no API options
      expect(err.code).toBe('CONFLICT');
      expect(err.message).toContain(`nonce ${nonce}`);
    }
    expect(mempool.size).toBe(1);
    // The same transaction again is an idempotent duplicate, not a conflict.
    expect(admit(flood[0]!).status).toBe('duplicate');
    // Once it is gone (committed or expired), the nonce slot is free again.
    mempool.remove(flood[0]!.idHex);
    expect(admit(flood[1]!).status).toBe('added');
    mempool.checkInvariants();
  });

  it('refuses a second pending registration of the same user id, whatever its nonce or key', () => {
    const { ledger, admit, mempool } = setup([]);
    expect(admit(registration(ledger, 'pat-new')).status).toBe('added');
    const other = ledger.sign(
      'pat-new',
      { type: 'registerPatient', via: 'hosp-a', body: { encKey: ledger.keys('squatter').encKey } },
      { signWith: 'squatter' },
    );
    expect(refusal(() => admit(other)).code).toBe('CONFLICT');
    expect(mempool.size).toBe(1);
  });

  it('refuses a nonce too far ahead of committed + pending (bounded gap), and accepts clock-derived nonces', () => {
    const { ledger, admit, mempool } = setup();
    const last = ledger.user('pat-1').lastNonce;
    const ceiling = nonceCeiling(last, 0, ledger.clock);
    expect(ceiling).toBe((ledger.clock + 60_000) * 1000 + MAX_NONCE_GAP);
    for (const nonce of [Number.MAX_SAFE_INTEGER, ceiling + 1, ceiling * 2]) {
      const err = refusal(() => admit(read(ledger, 'pat-1', { nonce })));
      expect(err.code).toBe('CONFLICT');
      expect(err.message).toMatch(/too far ahead/);
    }
    // A client's nonce is the clock in microseconds (client/session.ts): that is in bounds.
    expect(admit(read(ledger, 'pat-1', { nonce: ledger.clock * 1000 })).status).toBe('added');
    expect(admit(read(ledger, 'pat-1', { nonce: ceiling })).status).toBe('added');
    expect(mempool.size).toBe(2);
    // Sequential counters: the gap counts from committed + pending.
    expect(nonceCeiling(10, 3, 0)).toBe(Math.max(13, 60_000 * 1000) + MAX_NONCE_GAP);
    expect(nonceCeiling(1e16, 3, 0)).toBe(1e16 + 3 + MAX_NONCE_GAP);
  });
});

describe('per-user cap on pending transactions', () => {
  it(`admits ${MAX_PENDING_PER_USER} of one user, refuses the next with UNAVAILABLE, and still admits others`, () => {
    const { ledger, mempool, admit } = setup();
    for (let i = 0; i < MAX_PENDING_PER_USER; i++) expect(admit(read(ledger, 'pat-1')).status).toBe('added');
    const err = refusal(() => admit(read(ledger, 'pat-1')));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/pat-1 already has 64 transactions waiting/);
    expect(mempool.pendingOf('pat-1')).toBe(MAX_PENDING_PER_USER);
    expect(admit(read(ledger, 'pat-2')).status).toBe('added');
    // A slot frees when one leaves the mempool.
    const first = mempool.candidates(1)[0]!;
    mempool.remove(first.tx.idHex);
    expect(admit(read(ledger, 'pat-1')).status).toBe('added');
    mempool.checkInvariants();
  });

  it('the cap comes from the node config (limits.mempoolMaxPerUser)', () => {
    const config = parseNodeConfig(
      {
        name: 'n',
        hospital: 'hosp-a',
        dataDir: 'd',
        genesisFile: 'g',
        validatorKeyFile: 'v',
        api: { port: 0 },
        p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        limits: { mempoolMaxPerUser: 3 },
      },
      '/tmp',
    );
    const { ledger, admit } = setup(['pat-1'], new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxPerUser: config.limits.mempoolMaxPerUser }));
    for (let i = 0; i < 3; i++) admit(read(ledger, 'pat-1'));
    expect(refusal(() => admit(read(ledger, 'pat-1'))).code).toBe('UNAVAILABLE');
  });
});

describe('bounded mempool with fair eviction', () => {
  it('when full, a light user evicts the newest transaction of the heaviest user, whose waiter is told; the heaviest is refused', () => {
    const evictions: { id: string; error: MedLedgerError }[] = [];
    const mempool = new Mempool({ maxTxs: 10, maxBytes: 1 << 20 }, { onEvict: (e, error) => evictions.push({ id: e.tx.idHex, error }) });
    const { ledger, admit } = setup(['heavy', 'light', 'mid'], mempool);
    const heavy = Array.from({ length: 8 }, () => read(ledger, 'heavy'));
    for (const tx of heavy) admit(tx);
    admit(read(ledger, 'mid'));
    admit(read(ledger, 'mid'));
    expect(mempool.size).toBe(10);

    // The heaviest user is refused: the node is full and they hold the most.
    const refused = refusal(() => admit(read(ledger, 'heavy')));
    expect(refused.code).toBe('UNAVAILABLE');
    expect(mempool.pendingOf('heavy')).toBe(8);

    // A light user gets in; heavy's newest (highest nonce) goes, and its waiter gets an error.
    const lightTx = read(ledger, 'light');
    const admitted = admit(lightTx);
    expect(admitted.status).toBe('added');
    expect(admitted.status === 'added' && admitted.evicted.map((e) => e.tx.idHex)).toEqual([heavy[7]!.idHex]);
    expect(evictions).toHaveLength(1);
    expect(evictions[0]!.id).toBe(heavy[7]!.idHex);
    expect(evictions[0]!.error.code).toBe('UNAVAILABLE');
    expect(evictions[0]!.error.message).toMatch(/evicted/);
    expect(mempool.size).toBe(10);
    expect(mempool.has(lightTx.idHex)).toBe(true);
    expect(mempool.pendingOf('heavy')).toBe(7);

    // Fill up to the point where nobody holds more than one above the newcomer: then it is refused too.
    for (let i = 0; i < 3; i++) admit(read(ledger, 'light'));
    // heavy 4, mid 2, light 4: light (4) may not evict heavy (4); mid (2) may (4 > 3).
    expect(mempool.pendingOf('heavy')).toBe(4);
    expect(refusal(() => admit(read(ledger, 'light'))).code).toBe('UNAVAILABLE');
    expect(admit(read(ledger, 'mid')).status).toBe('added');
    expect(mempool.pendingOf('heavy') + mempool.pendingOf('light')).toBe(7);
    mempool.checkInvariants();
    // The heavy user's remaining transactions still form a prefix of its sequence, in nonce order.
    const heavyLeft = mempool
      .candidates(100)
      .filter((e) => e.tx.tx.actor === 'heavy')
      .map((e) => e.tx.idHex);
    expect(heavyLeft).toEqual(heavy.slice(0, heavyLeft.length).map((t) => t.idHex));
  });

  it("a mempool full by bytes evicts as many of the heaviest users' payloads as needed, or refuses without evicting", () => {
    const ledger = createLedger();
    const evicted: string[] = [];
    const mempool = new Mempool({ maxTxs: 1000, maxBytes: 10_000 }, { onEvict: (e) => evicted.push(e.tx.idHex) });
    const entry = (actor: string, bytes: number): PendingTx => ({ tx: read(ledger, actor), payload: new Uint8Array(bytes), receivedAt: 0 });
    for (let i = 0; i < 6; i++) mempool.add(entry('whale', 1_300));
    expect(mempool.byteSize).toBeGreaterThan(8_000);
    const before = mempool.byteSize;
    // 4,000 bytes from a user with nothing pending: two or three of the whale's newest go.
    const res = mempool.add(entry('minnow', 4_000));
    expect(res.added).toBe(true);
    expect(evicted.length).toBeGreaterThanOrEqual(2);
    expect(mempool.byteSize).toBeLessThanOrEqual(10_000);
    expect(mempool.byteSize).toBeGreaterThan(before - evicted.length * 2_000);
    // More than the whole mempool can hold: refused, nothing evicted.
    const n = evicted.length;
    expect(refusal(() => mempool.add(entry('other', 20_000))).code).toBe('UNAVAILABLE');
    expect(evicted.length).toBe(n);
    mempool.checkInvariants();
  });

  it("candidates keep each user's nonce order whatever the arrival order, and stop at the limit", () => {
    const ledger = createLedger();
    const mempool = new Mempool(BIG);
    const txs = ['usr-a', 'usr-b', 'usr-c'].flatMap((u) => Array.from({ length: 20 }, () => read(ledger, u)));
    // Arrival order shuffled (deterministically).
    const order = txs.map((t, i) => ({ t, k: (i * 37) % txs.length })).sort((x, y) => x.k - y.k);
    for (const { t } of order) mempool.add({ tx: t, receivedAt: 0 });
    const all = mempool.candidates(1_000);
    expect(all).toHaveLength(60);
    for (const u of ['usr-a', 'usr-b', 'usr-c']) {
      const nonces = all.filter((e) => e.tx.tx.actor === u).map((e) => e.tx.tx.nonce);
      expect(nonces).toEqual([...nonces].sort((x, y) => x - y));
    }
    expect(mempool.candidates(7)).toHaveLength(7);
    expect(mempool.candidates(0)).toHaveLength(0);
  });
});

describe('API rate limit per user (token bucket)', () => {
  const limits = () =>
    new ApiAdmissionLimits({ txPerSecondPerUser: TX_RATE_PER_USER, txBurstPerUser: TX_BURST_PER_USER, registrationsPerMinute: 30, registrationsPerDay: 2000 });

  it(`admits a burst of ${TX_BURST_PER_USER} then ${TX_RATE_PER_USER}/s through the API, refuses the excess with UNAVAILABLE; gossip is not limited`, () => {
    const { ledger, admit } = setup(['pat-1', 'pat-2'], new Mempool({ ...BIG, maxPerUser: 10_000 }));
    const api = limits();
    const now = ledger.clock;
    for (let i = 0; i < TX_BURST_PER_USER; i++) expect(admit(read(ledger, 'pat-1'), { api, now }).status).toBe('added');
    const err = refusal(() => admit(read(ledger, 'pat-1'), { api, now }));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/too many submissions from pat-1 at this node: retry in 1 s/);
    // Another user has their own bucket; a peer's gossip of pat-1's transactions is not limited here.
    expect(admit(read(ledger, 'pat-2'), { api, now }).status).toBe('added');
    expect(admit(read(ledger, 'pat-1'), { now }).status).toBe('added');
    // One second later, 20 more.
    for (let i = 0; i < TX_RATE_PER_USER; i++) expect(admit(read(ledger, 'pat-1'), { api, now: now + 1000 }).status).toBe('added');
    expect(refusal(() => admit(read(ledger, 'pat-1'), { api, now: now + 1000 })).code).toBe('UNAVAILABLE');
  });

  it("only the holder of a user's key spends that user's budget", () => {
    const { ledger, admit } = setup();
    const api = new ApiAdmissionLimits({ txPerSecondPerUser: 1, txBurstPerUser: 2, registrationsPerMinute: 30, registrationsPerDay: 2000 });
    for (let i = 0; i < 10; i++) {
      const forged = ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} }, { signWith: 'mallory' });
      expect(refusal(() => admit(forged, { api })).code).toBe('KEY_MISMATCH');
    }
    expect(admit(read(ledger, 'pat-1'), { api }).status).toBe('added');
    expect(admit(read(ledger, 'pat-1'), { api }).status).toBe('added');
    expect(refusal(() => admit(read(ledger, 'pat-1'), { api })).code).toBe('UNAVAILABLE');
  });

  it('keeps at most maxBuckets buckets, dropping the least recently used', () => {
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 1, maxBuckets: 3 });
    for (let i = 0; i < 10; i++) expect(buckets.take(`u${i}`, 0)).toBe(0);
    expect(buckets.size).toBe(3);
    expect(buckets.take('u9', 0)).toBe(1000);
    expect(buckets.take('u9', 1000)).toBe(0);
  });
});

describe('registration limit per node (API)', () => {
  it(`defaults to ${REGISTRATIONS_PER_MINUTE}/minute and ${REGISTRATIONS_PER_DAY}/day in the node config`, () => {
    const config = parseNodeConfig(
      { name: 'n', hospital: 'hosp-a', dataDir: 'd', genesisFile: 'g', validatorKeyFile: 'v', api: { port: 0 }, p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] } },
      '/tmp',
    );
    expect(config.limits).toMatchObject({
      registrationsPerMinute: 30,
      registrationsPerDay: 2000,
      txPerSecondPerUser: 20,
      txBurstPerUser: 100,
      mempoolMaxPerUser: 64,
    });
  });

  it('refuses the registration over the per-minute limit with "retry in N s", accepts again a minute later; gossip is not limited', () => {
    const { ledger, admit, mempool } = setup([]);
    const api = new ApiAdmissionLimits({
      txPerSecondPerUser: 20,
      txBurstPerUser: 100,
      registrationsPerMinute: REGISTRATIONS_PER_MINUTE,
      registrationsPerDay: REGISTRATIONS_PER_DAY,
    });
    const t0 = ledger.clock;
    for (let i = 0; i < REGISTRATIONS_PER_MINUTE; i++) expect(admit(registration(ledger, `pat-${i}`), { api, now: t0 + i * 100 }).status).toBe('added');
    const err = refusal(() => admit(registration(ledger, 'pat-late', { time: t0 + 10_000 }), { api, now: t0 + 10_000 }));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe('registration limit reached at this node: retry in 50 s');
    // A peer's gossip of a registration accepted elsewhere is not this node's limit.
    expect(admit(registration(ledger, 'pat-elsewhere', { time: t0 + 10_000 }), { now: t0 + 10_000 }).status).toBe('added');
    // Refused or invalid registrations do not use up the quota: one more fits once the first leaves the window.
    expect(admit(registration(ledger, 'pat-late', { time: t0 + 60_000 }), { api, now: t0 + 60_000 }).status).toBe('added');
    expect(refusal(() => admit(registration(ledger, 'pat-later', { time: t0 + 60_000 }), { api, now: t0 + 60_000 })).code).toBe('UNAVAILABLE');
    expect(mempool.size).toBe(REGISTRATIONS_PER_MINUTE + 2);
  });

  it('refuses over the per-day limit until the oldest registration is a day old', () => {
    const { ledger, admit } = setup([]);
    const api = new ApiAdmissionLimits({ txPerSecondPerUser: 20, txBurstPerUser: 100, registrationsPerMinute: 1000, registrationsPerDay: 5 });
    const t0 = ledger.clock;
    for (let i = 0; i < 5; i++) admit(registration(ledger, `pat-${i}`), { api, now: t0 });
    const err = refusal(() => admit(registration(ledger, 'pat-x', { time: t0 + 3_600_000 }), { api, now: t0 + 3_600_000 }));
    expect(err.message).toBe(`registration limit reached at this node: retry in ${23 * 3600} s`);
  });
});

describe('mempool bookkeeping stays exact', () => {
  it('after any sequence of add / remove / expire / candidates (property)', () => {
    const ledger = createLedger();
    const actors = ['usr-0', 'usr-1', 'usr-2', 'usr-3', 'usr-4'];
    const t0 = ledger.clock;
    // A pool of signed transactions: per actor, nonces 1..12, two variants each (same nonce, different id).
    const pool: Tx[] = [];
    for (const a of actors) {
      for (let nonce = 1; nonce <= 12; nonce++) {
        for (let v = 0; v < 2; v++) pool.push(read(ledger, a, { nonce, time: t0 + nonce * 1_000 + v * 60_000 * (1 + (nonce % 5)) }));
      }
    }
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('add' as const), i: fc.nat(pool.length - 1), payload: fc.nat(600) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), i: fc.nat(200) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), at: fc.nat(15 * 60_000) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('candidates' as const), limit: fc.nat(40) }) },
    );
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 10, maxLength: 200, size: 'max' }),
        fc.integer({ min: 5, max: 30 }),
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 3_000, max: 12_000 }),
        (ops, maxTxs, maxPerUser, maxBytes) => {
          const model = new Map<string, PendingTx>();
          const evictedSeen: string[] = [];
          const mempool = new Mempool({ maxTxs, maxBytes, maxPerUser }, { onEvict: (e) => evictedSeen.push(e.tx.idHex) });
          for (const o of ops) {
            if (o.kind === 'add') {
              const tx = pool[o.i]!;
              const entry: PendingTx = { tx, receivedAt: 0, ...(o.payload > 0 ? { payload: new Uint8Array(o.payload) } : {}) };
              const countsBefore = new Map(actors.map((a) => [a, mempool.pendingOf(a)]));
              try {
                const res = mempool.add(entry);
                if (res.added) {
                  expect(model.has(tx.idHex)).toBe(false);
                  for (const v of res.evicted) {
                    // Fairness: a victim's user held more than the newcomer would after admission.
                    expect(countsBefore.get(v.tx.tx.actor)!).toBeGreaterThan(countsBefore.get(tx.tx.actor)! + 1);
                    expect(model.delete(v.tx.idHex)).toBe(true);
                  }
                  model.set(tx.idHex, entry);
                } else {
                  expect(model.has(tx.idHex)).toBe(true);
                }
              } catch (err) {
                expect(isMedLedgerError(err, 'CONFLICT') || isMedLedgerError(err, 'UNAVAILABLE')).toBe(true);
                if (isMedLedgerError(err, 'CONFLICT'))
                  expect([...model.values()].some((e) => e.tx.tx.actor === tx.tx.actor && e.tx.tx.nonce === tx.tx.nonce)).toBe(true);
              }
            } else if (o.kind === 'remove') {
              const ids = [...model.keys()];
              const id = ids.length > 0 ? ids[o.i % ids.length]! : 'absent';
              expect(mempool.remove(id)).toBe(model.get(id));
              model.delete(id);
            } else if (o.kind === 'expire') {
              const gone = mempool.expire(t0 + o.at);
              for (const e of gone) expect(model.delete(e.tx.idHex)).toBe(true);
              for (const e of model.values()) expect(e.tx.tx.time + 10 * 60_000).toBeGreaterThanOrEqual(t0 + o.at);
            } else {
              const c = mempool.candidates(o.limit);
              expect(c.length).toBe(Math.min(o.limit, model.size));
              for (const a of actors) {
                const nonces = c.filter((e) => e.tx.tx.actor === a).map((e) => e.tx.tx.nonce);
                expect(nonces).toEqual([...nonces].sort((x, y) => x - y));
              }
            }
            mempool.checkInvariants();
            expect(mempool.size).toBe(model.size);
            expect(mempool.size).toBeLessThanOrEqual(maxTxs);
            expect(mempool.byteSize).toBeLessThanOrEqual(maxBytes);
            for (const a of actors) {
              const n = [...model.values()].filter((e) => e.tx.tx.actor === a).length;
              expect(mempool.pendingOf(a)).toBe(n);
              expect(n).toBeLessThanOrEqual(maxPerUser);
            }
            for (const id of model.keys()) expect(mempool.has(id)).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
