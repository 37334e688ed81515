import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PayloadFinding } from '../../src/client/verifyPayloads.js';
import type { VerifyReport } from '../../src/client/verifyReplicas.js';
import type { Session } from '../../src/client/session.js';
import { cli } from '../support/cliRunner.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * `medledger verify --payloads` (issue 9): every replica's payloads against the hashes the chain commits to,
 * with three real node processes. One byte flipped in one replica's payload file (while it runs: its monitor
 * follows new blocks only and rescans the whole chain hourly, so it has not repaired it yet) and, on another
 * replica, the payload file of a deleted record copied back into its payload directory: verify names both
 * replicas and both transactions and exits 1. Before that, with a grant redacted by the deletion on every
 * replica, everything is held as committed and it exits 0.
 */
describe('verify --payloads across real replicas', () => {
  let net: TestNetwork;
  let urls: string;
  let names: string[];
  let patient: Session;
  let kept: { record: string; tx: string };
  let deleted: { record: string; tx: string; height: number; bytes: Buffer };
  let grant: { tx: string; height: number };

  const payloadFile = (node: number, tx: string) => join(net.node(node).dataDir, 'ledger-payloads', tx.slice(0, 2), tx);

  const verify = async (extra: string[] = ['--json']) => cli(['verify', '--api', urls, '--payloads', ...extra], {}, 90_000);

  beforeAll(async () => {
    net = await TestNetwork.create(3);
    await net.start();
    urls = net.layout.nodes.map((n) => n.apiUrl).join(',');
    names = (await net.statuses()).map((s) => s.node);
    patient = await net.patient(0, 'pat-pv');
    await net.staff(1, 'dr-pv', 'doctor');
    const a = await patient.createRecord('pat-pv', { title: 'Kept', vitals: { heartRate: 64 }, notes: 'stays' });
    const b = await patient.createRecord('pat-pv', { title: 'Deleted', vitals: { heartRate: 80 }, notes: 'goes' });
    expect(a.denied ?? b.denied).toBeUndefined();
    kept = { record: a.value!, tx: a.id };
    // The grant wraps the keys of both records: deleting the second redacts it on every replica.
    const granted = await patient.grant('dr-pv');
    expect(granted.denied).toBeUndefined();
    grant = { tx: granted.id, height: granted.height! };
    await net.waitFor((s) => s.finalizedHeight >= grant.height);
    const bytes = readFileSync(payloadFile(2, b.id));
    const del = await patient.deleteRecord('pat-pv', b.value!);
    expect(del.denied).toBeUndefined();
    deleted = { record: b.value!, tx: b.id, height: b.height!, bytes };
    await net.waitFor((s) => s.finalizedHeight >= del.height! && s.integrity.ok);
    for (let i = 0; i < 3; i++) expect(existsSync(payloadFile(i, b.id))).toBe(false);
  }, 180_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('all replicas hold every payload as committed (a redacted grant alike on all): exit 0', async () => {
    const run = await verify();
    expect(run.stderr).toBe('');
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report.payloads).toBeDefined();
    expect(report.payloads!.findings).toEqual([]);
    // Two records' contents and the grant, on three replicas.
    expect(report.payloads!.payloads).toBeGreaterThanOrEqual(3);
    expect(report.payloads!.compared).toBeGreaterThanOrEqual(9);
    expect(run.code).toBe(0);
    expect(report.exitCode).toBe(0);
    // What the endpoint says: hashes and markers, and for content gone with its record, the deletion.
    type Listing = { payloads: { tx: string; redacted: boolean; held: boolean; sha256?: string; deleted?: { tx: string } }[] };
    const at = async (h: number) => (await net.api(0).get<Listing>(`/v1/payloads?from=${h}&to=${h}`)).payloads;
    expect((await at(grant.height)).find((p) => p.tx === grant.tx)).toMatchObject({
      held: true,
      redacted: true,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect((await at(deleted.height)).find((p) => p.tx === deleted.tx)).toMatchObject({
      held: false,
      deleted: { tx: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
  }, 120_000);

  it('a damaged payload on one replica and a purged one put back on another: both named with the tx, exit 1', async () => {
    const file = payloadFile(1, kept.tx);
    const damaged = readFileSync(file);
    damaged[damaged.length - 10]! ^= 0xff;
    writeFileSync(file, damaged);
    writeFileSync(payloadFile(2, deleted.tx), deleted.bytes);

    const run = await verify();
    const report = JSON.parse(run.stdout) as VerifyReport;
    const findings = report.payloads!.findings;
    const pick = (f: PayloadFinding) => ({ node: f.node, tx: f.tx, problem: f.problem });
    expect(findings.map(pick)).toEqual(
      expect.arrayContaining([
        { node: names[1], tx: kept.tx, problem: 'differs' },
        { node: names[2], tx: deleted.tx, problem: 'deleted-record' },
      ]),
    );
    // Nothing else: the healthy replica and the other payloads are fine.
    expect(findings).toHaveLength(2);
    expect(findings.find((f) => f.tx === deleted.tx)!.record).toBe(deleted.record);
    expect(run.code).toBe(1);
    expect(report.nodes.map((n) => n.ok)).toEqual([true, false, false]);

    const text = await verify([]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`PAYLOAD ${names[1]} height`);
    expect(text.stdout).toContain(`tx ${kept.tx}`);
    expect(text.stdout).toContain(`PAYLOAD ${names[2]} height`);
    expect(text.stdout).toContain(`tx ${deleted.tx} (record ${deleted.record}): still holds the content of record ${deleted.record}`);

    // The chains themselves agree: without --payloads verify finds nothing.
    const chainsOnly = await cli(['verify', '--api', urls, '--json'], {}, 90_000);
    expect(chainsOnly.code).toBe(0);
  }, 180_000);
});
