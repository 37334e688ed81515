import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { chainOf, positions, runLoad } from '../support/load.js';
import { TestNetwork } from '../support/testNetwork.js';

describe('four hospital nodes as separate processes', () => {
  let net: TestNetwork;
  const patients: Session[] = [];

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    await net.start();
    for (let i = 0; i < 4; i++) patients.push(await net.patient(i, `pat-${i}`));
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('commits transactions sent to every node in one order on all four, with the same finalized hash', async () => {
    const accepted = await runLoad(
      patients.map((p, i) => ({ api: net.api(i), patient: p })),
      { batches: 10, batchSize: 20, pauseMs: 50 },
    );
    expect(accepted.length).toBe(4 * 10 * 20);
    // Wait until every node has every transaction, then compare the chains block by block.
    const all = new Set(accepted);
    const start = Date.now();
    let chains = await Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net.api(i), (await net.api(i).status()).height)));
    while (Date.now() - start < 30_000 && chains.some((c) => [...all].some((id) => !positions(c).has(id)))) {
      await new Promise((r) => setTimeout(r, 250));
      chains = await Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net.api(i), (await net.api(i).status()).height)));
    }
    const common = Math.min(...chains.map((c) => c.length));
    for (const chain of chains) {
      expect(chain.slice(0, common).map((b) => b.hash)).toEqual(chains[0]!.slice(0, common).map((b) => b.hash));
      const at = positions(chain);
      for (const id of accepted) expect(at.get(id), id).toBe(positions(chains[0]!).get(id));
    }
    // Every block carries a certificate of at least 3 of the 4 validators.
    for (const b of chains[0]!) expect(b.cert!.signers.length).toBeGreaterThanOrEqual(3);
    const statuses = await net.waitFor((s) => s.finalizedHeight >= common);
    const atCommon = await Promise.all([0, 1, 2, 3].map((i) => chainOf(net.api(i), common)));
    expect(new Set(atCommon.map((c) => c[common - 1]!.hash)).size).toBe(1);
    expect(statuses.every((s) => s.peers.length === 3)).toBe(true);
  }, 90_000);

  it('rotates the proposer: every validator proposes blocks', async () => {
    const height = (await net.api(0).status()).height;
    const chain = await chainOf(net.api(0), height);
    const proposers = new Set(chain.map((b) => b.proposer));
    expect([...proposers].sort()).toEqual([0, 1, 2, 3]);
    for (const b of chain) expect(b.proposer).toBe((b.height + b.round) % 4);
  });

  it('a record created at one hospital is readable by its patient and a granted doctor at another, and no one else', async () => {
    const doctorD = await net.staff(3, 'dr-d', 'doctor');
    const nurseB = await net.staff(1, 'dr-b', 'doctor');
    const created = await patients[0]!.createRecord('pat-0', { vitals: { temperature: 38.2, bloodPressure: '130/85' }, notes: 'fever' });
    await patients[0]!.grant('dr-d');
    const read = await doctorD.readRecord('pat-0', created.value!);
    expect(read.value?.content?.vitals).toEqual({ temperature: 38.2, bloodPressure: '130/85' });
    const refused = await nurseB.readRecord('pat-0', created.value!);
    expect(refused.denied).toBe('no-grant');
    // The denial is final on every replica, not only on the node that answered.
    await patients[0]!.waitForHeight(refused.height!);
    const trail = await patients[0]!.queryAudit({ patient: 'pat-0', outcome: 'denied' });
    expect(trail.value!.events.map((e) => e.agent.user)).toEqual(['dr-b']);
  }, 60_000);

  it('a write sealed on a replica that missed a new grant is denied (recipients-mismatch), then resealed for the current grantees', async () => {
    const block = (i: number, peers: number[]) => net.api(i).post('/v1/test/blocked-peers', { peers: peers.map((p) => net.node(p).peerId) });
    const patient = patients[0]!;
    const doctor = await net.staff(1, 'dr-lag', 'doctor');
    const auditor = await net.staff(0, 'aud-lag', 'auditor');
    await doctor.waitForHeight((await patient.grant('dr-lag')).height!);
    // Hospital B is cut off and misses the auditor's grant, which the other three make final.
    await Promise.all([block(1, [0, 2, 3]), block(0, [1]), block(2, [1]), block(3, [1])]);
    await net.waitFor((s) => s.peers.length === 0, { nodes: [1] });
    const granted = await patient.grant('aud-lag');
    expect((await net.api(1).status()).height).toBeLessThan(granted.height!);

    // The doctor seals for the grantees hospital B knows (patient and doctor), then B rejoins.
    const writing = doctor.createRecord('pat-0', { vitals: { temperature: 37.9 }, notes: 'lagging replica' });
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all([0, 1, 2, 3].map((i) => block(i, [])));
    const created = await writing;
    expect(created.denied).toBeUndefined();

    await patient.waitForHeight(created.height!);
    const trail = await patient.queryAudit({ patient: 'pat-0', user: 'dr-lag', action: 'C' });
    expect(trail.value!.events.map((e) => `${e.outcome}:${e.reason ?? ''}`)).toEqual(['success:', 'denied:recipients-mismatch']);
    // The resealed record is readable by the auditor granted meanwhile.
    const read = await auditor.readRecord('pat-0', created.value!);
    expect(read.value?.content?.notes).toBe('lagging replica');
  }, 90_000);
});
