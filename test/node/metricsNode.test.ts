import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { toBase64, toHex } from '../../src/records/crypto/bytes.js';
import { signTx } from '../../src/records/tx/codec.js';
import type { UnsignedTx } from '../../src/records/tx/types.js';
import { REJECTION_REASONS } from '../../src/node/metrics.js';
import { metricValue, parsePrometheus, type Sample } from '../../scripts/bench/prometheus.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * GET /metrics of a node running as its own process: the exposition parses, the counters follow what was
 * submitted (committed transactions and events, a refused transaction under its reason), the gauges agree with
 * the status, and nothing in it names a user or a key.
 */
describe('GET /metrics on a single node process', () => {
  let net: TestNetwork;
  let alice: Session;
  let bob: Session;
  let scrape: () => Promise<{ text: string; samples: Sample[]; type: string | null }>;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    scrape = async () => {
      const res = await fetch(`${net.node(0).apiUrl}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      return { text, samples: parsePrometheus(text), type: res.headers.get('content-type') };
    };
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
  });

  const listRecords = (who: Session, patient: string, nonce: number): UnsignedTx<'listRecords'> => ({
    v: 1,
    type: 'listRecords',
    actor: who.userId,
    key: who.signer.publicKey,
    via: 'hosp-a',
    nonce,
    time: Date.now(),
    patient,
    body: {},
  });

  it('counts committed transactions and events, a refusal by its reason, and exposes no id or key', async () => {
    alice = await net.patient(0, 'pat-metrics-alice');
    bob = await net.patient(0, 'pat-metrics-bob');
    const before = await scrape();
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const count = (s: Sample[], name: string, labels: Record<string, string> = {}) => metricValue(s, name, labels);

    const { genesisHash } = await net.api(0).identify();
    const nonce = Date.now() * 1000;
    // Two of alice's own listings (success) and one of bob's data (denied: not-own-data), each waited for.
    await net.api(0).submit(signTx(listRecords(alice, alice.userId, nonce + 1), alice.signer, genesisHash));
    await net.api(0).submit(signTx(listRecords(alice, alice.userId, nonce + 2), alice.signer, genesisHash));
    const denied = await net.api(0).submit(signTx(listRecords(alice, bob.userId, nonce + 3), alice.signer, genesisHash));
    expect(denied.event?.outcome).toBe('denied');
    // A batch of three of bob's, then the same batch again once final: answered as accepted, not as replays.
    const batch = [1, 2, 3].map((k) => ({ tx: signTx(listRecords(bob, bob.userId, nonce + k), bob.signer, genesisHash) }));
    const first = await net.api(0).submitBatch(batch);
    expect(first.rejected).toEqual([]);
    for (const { tx } of batch) {
      for (let i = 0; ; i++) {
        const s = await net.api(0).get<{ status: string }>(`/v1/tx/${tx.idHex}`);
        if (s.status === 'committed') break;
        expect(i).toBeLessThan(300);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const again = await net.api(0).submitBatch(batch);
    expect(again).toEqual({ accepted: batch.map((b) => b.tx.idHex), rejected: [] });
    // Refused: an older nonce (REPLAY) and a user nobody registered (UNKNOWN_ACTOR).
    await expect(net.api(0).submit(signTx(listRecords(alice, alice.userId, nonce), alice.signer, genesisHash))).rejects.toMatchObject({ code: 'REPLAY' });
    const ghost = signTx({ ...listRecords(alice, alice.userId, nonce + 9), actor: 'pat-metrics-nobody' }, alice.signer, genesisHash);
    await expect(net.api(0).submit(ghost)).rejects.toMatchObject({ code: 'UNKNOWN_ACTOR' });

    // An empty block may be committed at any moment: the gauge must lie between two statuses around the scrape.
    const statusBefore = await net.api(0).status();
    const after = await scrape();
    const status = await net.api(0).status();
    const delta = (name: string, labels: Record<string, string> = {}) => count(after.samples, name, labels) - count(before.samples, name, labels);

    expect(count(after.samples, 'medledger_chain_height')).toBeGreaterThanOrEqual(statusBefore.height);
    expect(count(after.samples, 'medledger_chain_height')).toBeLessThanOrEqual(status.height);
    expect(delta('medledger_chain_height')).toBeGreaterThan(0);
    expect(delta('medledger_blocks_committed_total')).toBe(delta('medledger_chain_height'));
    expect(delta('medledger_transactions_committed_total')).toBe(6);
    expect(delta('medledger_audit_events_committed_total', { outcome: 'success' })).toBe(5);
    expect(delta('medledger_audit_events_committed_total', { outcome: 'denied' })).toBe(1);
    expect(delta('medledger_tx_rejected_total', { source: 'api', reason: 'REPLAY' })).toBe(1);
    expect(delta('medledger_tx_rejected_total', { source: 'api', reason: 'UNKNOWN_ACTOR' })).toBe(1);
    // 3 single submissions, 3 + 3 in batches (the second time refused as a replay inside admission, then
    // answered as final: timed, not counted as refused), and the 2 refused ones.
    expect(delta('medledger_tx_admission_seconds_count', { source: 'api' })).toBe(11);
    expect(delta('medledger_block_commit_seconds_count')).toBe(delta('medledger_blocks_committed_total'));
    expect(count(after.samples, 'medledger_peers_connected')).toBe(0);
    // Everything submitted is final (the batch sent again was answered, not queued again).
    expect(count(after.samples, 'medledger_mempool_transactions')).toBe(0);
    expect(count(after.samples, 'medledger_mempool_bytes')).toBe(0);
    expect(count(after.samples, 'medledger_integrity_alert')).toBe(0);
    expect(count(after.samples, 'medledger_integrity_verified_height')).toBeLessThanOrEqual(status.height);
    for (const reason of ['mempool', 'memory', 'loop']) expect(count(after.samples, 'medledger_load_shed_total', { reason })).toBe(0);
    // Statistics: shown from the start at 0 (nothing aggregated on this network).
    for (const outcome of ['released', 'withheld']) expect(count(after.samples, 'medledger_stats_aggregations_total', { outcome })).toBe(0);
    expect(count(after.samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(count(after.samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    // No user id, no key, no hospital admin in the output; MedLedger's labels take their fixed values only.
    for (const secretish of ['pat-metrics', net.node(0).admin.id, toHex(alice.signer.publicKey), toBase64(alice.signer.publicKey)])
      expect(after.text.includes(secretish), secretish).toBe(false);
    const allowed: Record<string, readonly string[]> = {
      source: ['api', 'gossip'],
      reason: [...REJECTION_REASONS, 'mempool', 'memory', 'loop'],
      outcome: ['success', 'denied', 'released', 'withheld'],
      result: ['stored', 'dropped', 'used'],
    };
    for (const s of after.samples.filter((x) => x.name.startsWith('medledger_'))) {
      for (const [k, v] of Object.entries(s.labels)) {
        if (k === 'le') continue; // histogram buckets
        expect(allowed[k], `${s.name} label ${k}`).toBeDefined();
        expect(allowed[k]).toContain(v);
      }
    }
  });
});
