import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/client/apiClient.js';
import type { Session } from '../../src/client/session.js';
import { auditedRead } from '../support/load.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * Admission limits of a real node process, configured in its node.json (`limits`): registrations per
 * minute, the per-user API rate, and one pending transaction per (user, nonce), answered over HTTP with
 * their typed errors (503 UNAVAILABLE: retry later; 409 CONFLICT).
 */
describe('admission limits of a node process', () => {
  let net: TestNetwork;
  let patients: Session[];

  beforeAll(async () => {
    net = await TestNetwork.create(1, { limits: { registrationsPerMinute: 3, txPerSecondPerUser: 1, txBurstPerUser: 5, mempoolMaxPerUser: 64 } });
    await net.start();
    patients = [await net.patient(0, 'pat-one'), await net.patient(0, 'pat-two'), await net.patient(0, 'pat-three')];
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('refuses a fourth self-registration within the minute with 503 and "retry in N s"', async () => {
    const err = await net.patient(0, 'pat-four').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(503);
    expect((err as ApiError).code).toBe('UNAVAILABLE');
    expect((err as ApiError).message).toMatch(/^registration limit reached at this node: retry in \d+ s$/);
    await expect(net.api(0).user('pat-four')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("rate-limits one user's API submissions (burst 5): the rest of a batch is refused with UNAVAILABLE", async () => {
    const batch = Array.from({ length: 10 }, () => ({ tx: auditedRead(patients[0]!) }));
    const res = await net.api(0).submitBatch(batch);
    expect(res.accepted).toHaveLength(5);
    expect(res.rejected).toHaveLength(5);
    for (const r of res.rejected) {
      expect(r.code).toBe('UNAVAILABLE');
      expect(r.message).toMatch(/too many submissions from pat-one at this node: retry in \d+ s/);
    }
    // Another user is unaffected.
    expect((await net.api(0).submitBatch([{ tx: auditedRead(patients[1]!) }])).accepted).toHaveLength(1);
  });

  it('refuses a second pending transaction with the same nonce with 409 CONFLICT', async () => {
    const p = patients[2]!;
    const nonce = Date.now() * 1000 + 5_000_000;
    const sign = (time: number) => auditedRead(p, { nonce, time });
    const now = Date.now();
    const [a, b] = await Promise.allSettled([
      net.api(0).submit(sign(now), undefined, { wait: false }),
      net.api(0).submit(sign(now - 1), undefined, { wait: false }),
    ]);
    // One of the two is admitted; the other clashes with it while it is pending, or is a replay once it is final.
    const outcomes = [a, b].map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as ApiError).code)).sort();
    expect(outcomes[0]).toMatch(/^(CONFLICT|REPLAY)$/);
    expect(outcomes[1]).toBe('ok');
  });
});
