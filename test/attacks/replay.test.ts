import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { ApiClient } from '../../src/client/apiClient.js';
import { fromBase64 } from '../../src/records/crypto/bytes.js';
import { decodeTx } from '../../src/records/tx/codec.js';
import type { InclusionProof } from '../../src/consensus/proof.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * Re-posting a committed transaction's public bytes (from /v1/proof or the chain) discloses nothing: the answer
 * of an audited read or query went to the live request alone, computed at its block; a replay gets the
 * committed audit event and nothing more, whoever posts it.
 */
describe('replays of committed reads and queries', () => {
  let net: TestNetwork;
  let patient: Session;
  let doctor: Session;
  let record: string;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    doctor = await net.staff(0, 'dr-replay', 'doctor');
    patient = await net.patient(0, 'pat-replay');
    record = (await patient.createRecord('pat-replay', { title: 'First', vitals: {}, notes: 'before the revoke' })).value!;
    expect((await patient.grant('dr-replay')).denied).toBeUndefined();
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  /** The signed bytes of a committed transaction, as anyone can fetch them. */
  async function publicBytes(txId: string) {
    const proof = await net.api(0).get<InclusionProof>(`/v1/proof/${txId}`);
    return decodeTx(fromBase64(proof.tx), { verify: false });
  }

  it("a revoked doctor's replayed read returns its old audit event, not the record's current content or keys", async () => {
    const read = await doctor.readRecord('pat-replay', record);
    expect(read.value?.content?.notes).toBe('before the revoke');
    expect((await patient.revoke('dr-replay')).denied).toBeUndefined();
    await patient.attachFile('pat-replay', record, { name: 'after.txt', mime: 'text/plain', data: new TextEncoder().encode('attached after the revoke') });

    const replay = await new ApiClient(net.node(0).apiUrl).submit(await publicBytes(read.id));
    expect(replay.status).toBe('committed');
    expect(replay.event).toMatchObject({ tx: read.id, outcome: 'success' });
    expect(replay.result).toBeUndefined();
    // And a fresh read by the revoked doctor is denied and audited.
    expect((await doctor.readRecord('pat-replay', record)).denied).toBe('no-grant');
  });

  it('a replayed audit query by a process that is not the signer returns the event only', async () => {
    const query = await patient.queryAudit({ patient: 'pat-replay' });
    expect(query.value!.events.length).toBeGreaterThan(3);
    const stranger = new ApiClient(net.node(0).apiUrl);
    const replay = await stranger.submit(await publicBytes(query.id));
    expect(replay.event?.tx).toBe(query.id);
    expect(replay.result).toBeUndefined();
  });

  it("a live query's answer is the trail as it stood at the query's own block", async () => {
    const query = await patient.queryAudit({ patient: 'pat-replay' });
    const height = query.height!;
    expect(query.value!.events.every((e) => e.height <= height)).toBe(true);
    expect(query.value!.events[0]!.tx).toBe(query.id); // newest first: the query itself
  });
});
