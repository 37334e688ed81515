import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { decodeBlock } from '../../src/consensus/block.js';
import { fromBase64 } from '../../src/records/crypto/bytes.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { blobId, sealBlob } from '../../src/records/envelope.js';
import { decodeTx } from '../../src/records/tx/codec.js';
import { chainOf, positions, runLoad } from '../support/load.js';
import { pollUntil } from '../support/poll.js';
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

  /** The recipients a committed record write names in its signed body, read from node i's chain. */
  async function recipientsOnChain(i: number, height: number, txId: string): Promise<string[]> {
    const { blocks } = await net.api(i).get<{ blocks: { block: string }[] }>(`/v1/chain/raw?from=${height}&to=${height}`);
    const tx = decodeBlock(fromBase64(blocks[0]!.block), 16 * 1024 * 1024)
      .txs.map((b) => decodeTx(b, { verify: false }))
      .find((t) => t.idHex === txId);
    return (tx!.tx.body as { recipients: string[] }).recipients;
  }

  it('commits transactions sent to every node in one order on all four, with the same finalized hash', async () => {
    const accepted = await runLoad(
      patients.map((p, i) => ({ api: net.api(i), patient: p })),
      { batches: 10, batchSize: 20, pauseMs: 50 },
    );
    expect(accepted.length).toBe(4 * 10 * 20);
    expect(new Set(accepted).size).toBe(accepted.length);
    // Wait until every node has every transaction; a timeout says which node lacks how many.
    const chains = await pollUntil(
      'every accepted transaction final on all four nodes',
      () => Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net.api(i), (await net.api(i).status()).height))),
      (cs) => {
        const lacking = cs.flatMap((c, i) => {
          const at = positions(c);
          const missing = accepted.filter((id) => !at.has(id));
          return missing.length === 0 ? [] : [`node ${i} (height ${c.length}) lacks ${missing.length}, e.g. ${missing[0]}`];
        });
        return lacking.length === 0 ? null : lacking.join('; ');
      },
    );
    const common = Math.min(...chains.map((c) => c.length));
    const reference = positions(chains[0]!);
    const acceptedSet = new Set(accepted);
    for (const [i, chain] of chains.entries()) {
      expect(
        chain.slice(0, common).map((b) => b.hash),
        `node ${i}`,
      ).toEqual(chains[0]!.slice(0, common).map((b) => b.hash));
      // Each transaction exactly once, at a real height/index, and at the same place as on node 0.
      expect(
        chain.flatMap((b) => b.txs).filter((id) => acceptedSet.has(id)),
        `node ${i}`,
      ).toHaveLength(accepted.length);
      const at = positions(chain);
      for (const id of accepted) {
        const where = at.get(id);
        expect(where, `${id} on node ${i}`).toMatch(/^[1-9]\d*\/\d+$/);
        expect(where, `${id} on node ${i}`).toBe(reference.get(id));
      }
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
  it("a revoke submitted through a third hospital is final at the writer's hospital: reads denied, no later version wrapped for the revoked doctor", async () => {
    const patient = await net.patient(0, 'pat-rv'); // registered at hosp-a
    const doctor = await net.staff(1, 'dr-rv', 'doctor'); // enrolled at hosp-b, writes through hosp-b
    // The patient's node must have the doctor's activation before the patient can wrap keys for them.
    await patient.waitForHeight((await net.api(1).status()).height);
    const granted = await patient.grant('dr-rv');
    expect(granted.denied).toBeUndefined();
    await doctor.waitForHeight(granted.height!);
    const created = await doctor.createRecord('pat-rv', { vitals: { temperature: 37.1 }, notes: 'written at hosp-b' });
    expect(created.denied).toBeUndefined();
    expect(created.event).toMatchObject({ source: 'hosp-b', agent: { user: 'dr-rv', hospital: 'hosp-b' } });
    expect(await recipientsOnChain(1, created.height!, created.id)).toEqual(['dr-rv', 'pat-rv']);
    const record = created.value!;
    expect((await doctor.readRecord('pat-rv', record)).value?.content?.notes).toBe('written at hosp-b');

    // The patient revokes through hosp-c: neither the patient's hospital nor the doctor's (a patient may
    // submit through any node: \`via\` only has to be a known hospital, PROTOCOL.md §3 has no rule on it).
    const atC = await net.sessionAt(2, patient);
    expect(atC.hospital).toBe('hosp-c');
    const revoked = await atC.revoke('dr-rv');
    expect(revoked.denied).toBeUndefined();
    expect(revoked.event).toMatchObject({ type: 'revokeAccess', source: 'hosp-c', outcome: 'success', subject: 'dr-rv' });
    await doctor.waitForHeight(revoked.height!); // final on hosp-b

    // At hosp-b the doctor can no longer read, nor fetch the recipients to seal a write.
    const read = await doctor.readRecord('pat-rv', record);
    expect(read.denied).toBe('no-grant');
    expect(read.value).toBeUndefined();
    await expect(doctor.updateRecord('pat-rv', record, 1, { vitals: {}, notes: 'after the revoke' })).rejects.toMatchObject({ code: 'FORBIDDEN' });

    // The next version, written by the patient at hosp-b, is wrapped for the patient alone ...
    const atB = await net.sessionAt(1, patient);
    const updated = await atB.updateRecord('pat-rv', record, 1, { vitals: { temperature: 36.8 }, notes: 'version 2' });
    expect(updated.denied).toBeUndefined();
    expect(updated.event!.source).toBe('hosp-b');
    expect(await recipientsOnChain(1, updated.height!, updated.id)).toEqual(['pat-rv']);
    expect((await atB.readRecord('pat-rv', record)).value?.content?.notes).toBe('version 2');

    // ... and a version sealed for the doctor anyway is refused by the ledger, whoever submits it.
    const sealedFor = async (version: number, ids: string[]) => {
      const recipients = await Promise.all(ids.map(async (id) => ({ id, encKey: fromBase64((await net.api(1).user(id)).encKey!) })));
      const sealed = sealBlob(encodeCanonical({ vitals: {}, notes: 'still for dr-rv' }), blobId(record, 'content', version), recipients);
      return { bytes: sealed.payload, hash: sealed.hash };
    };
    const byPatient = await atB.act(
      'updateRecord',
      { patient: 'pat-rv', record, body: { recipients: ['dr-rv', 'pat-rv'], version: 3 } },
      await sealedFor(3, ['dr-rv', 'pat-rv']),
    );
    expect(byPatient.event).toMatchObject({ outcome: 'denied', reason: 'recipients-mismatch' });
    const byDoctor = await doctor.act(
      'updateRecord',
      { patient: 'pat-rv', record, body: { recipients: ['dr-rv', 'pat-rv'], version: 3 } },
      await sealedFor(3, ['dr-rv', 'pat-rv']),
    );
    expect(byDoctor.event).toMatchObject({ outcome: 'denied', reason: 'no-grant' });
    expect((await atB.readRecord('pat-rv', record)).value?.meta.version).toBe(2);
  }, 60_000);
});
