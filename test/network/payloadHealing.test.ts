import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import type { StatusResponse } from '../../src/api/contract.js';
import { metricValue, parsePrometheus } from '../../scripts/bench/prometheus.js';
import { pollUntil } from '../support/poll.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * Damaged payloads heal themselves: a byte changed in, or the deletion of, one replica's payload file is
 * found by that node's integrity monitor (at its next pass over the chain), the payload is fetched from the
 * peers, checked against the hash its transaction commits to, restored, and the record reads again — with
 * nobody doing anything. Passes run every 3 s here (an hour by default).
 */
describe('a damaged payload file on one replica', () => {
  let net: TestNetwork;
  let patient: Session;
  let reader: Session;

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    for (const n of net.layout.nodes) {
      const config = JSON.parse(readFileSync(n.configFile, 'utf8')) as Record<string, unknown>;
      writeFileSync(n.configFile, `${JSON.stringify({ ...config, integrity: { rescanIntervalMs: 3_000, crossCheckIntervalMs: 60_000 } }, null, 2)}\n`);
    }
    await net.start();
    patient = await net.patient(0, 'pat-heal');
    reader = await net.sessionAt(3, patient);
  }, 120_000);

  afterAll(async () => {
    await net?.destroy();
  });

  const payloadFile = (node: number, txId: string) => join(net.node(node).dataDir, 'ledger-payloads', txId.slice(0, 2), txId);
  const payloadsOf = async (node: number) => (await net.api(node).status()).payloads!;

  async function writeRecord(notes: string): Promise<{ record: string; tx: string }> {
    const created = await patient.createRecord('pat-heal', { title: 'Heal', vitals: { heartRate: 70 }, notes });
    expect(created.denied).toBeUndefined();
    await reader.waitForHeight(created.height!);
    return { record: created.value!, tx: created.id };
  }

  async function healed(node: number, before: NonNullable<StatusResponse['payloads']>, tx: string) {
    return pollUntil(
      `node ${node} repairs the payload of ${tx.slice(0, 12)}`,
      () => payloadsOf(node),
      (p) => (p.stored > before.stored && p.missing === 0 && p.recent.some((r) => r.tx === tx) ? null : JSON.stringify({ ...p, recent: p.recent.length })),
      { timeoutMs: 45_000, intervalMs: 500 },
    );
  }

  it('a flipped byte: found by the monitor, restored from the peers, readable again, integrity ok', async () => {
    const { record, tx } = await writeRecord('first version of the notes');
    const before = await payloadsOf(3);
    const file = payloadFile(3, tx);
    const bytes = readFileSync(file);
    bytes[bytes.length - 20]! ^= 0xff;
    writeFileSync(file, bytes);

    const after = await healed(3, before, tx);
    expect(after.recent.find((r) => r.tx === tx)).toMatchObject({
      record,
      action: 'repair',
      problem: 'payload does not match the hash its transaction commits to',
    });
    expect(readFileSync(file)).toEqual(readFileSync(payloadFile(0, tx)));
    const read = await reader.readRecord('pat-heal', record);
    expect(read.value?.content?.notes).toBe('first version of the notes');
    expect((await net.api(3).status()).integrity.ok).toBe(true);
  }, 90_000);

  it('a deleted payload file: the same', async () => {
    const { record, tx } = await writeRecord('second record');
    const before = await payloadsOf(3);
    rmSync(payloadFile(3, tx));
    const after = await healed(3, before, tx);
    expect(after.recent.find((r) => r.tx === tx)).toMatchObject({ record, problem: 'payload file is missing' });
    expect((await reader.readRecord('pat-heal', record)).value?.content?.notes).toBe('second record');
  }, 90_000);

  it("the repairs show in the node's GET /metrics, beside its peers, gossip admissions and validated proposals", async () => {
    const samples = parsePrometheus(await (await fetch(`${net.node(3).apiUrl}/metrics`)).text());
    const status = await net.api(3).status();
    expect(metricValue(samples, 'medledger_payload_repairs_total', { result: 'stored' })).toBe(status.payloads!.stored);
    expect(metricValue(samples, 'medledger_payload_repairs_total', { result: 'stored' })).toBeGreaterThanOrEqual(2);
    expect(metricValue(samples, 'medledger_payloads_missing')).toBe(0);
    expect(metricValue(samples, 'medledger_peers_connected')).toBe(3);
    expect(metricValue(samples, 'medledger_integrity_alert')).toBe(0);
    // Node 3 took the patient's writes from gossip (they went through node 0) and validated others' blocks.
    expect(metricValue(samples, 'medledger_tx_admission_seconds_count', { source: 'gossip' })).toBeGreaterThan(0);
    expect(metricValue(samples, 'medledger_block_validation_seconds_count')).toBeGreaterThan(0);
  });
});
