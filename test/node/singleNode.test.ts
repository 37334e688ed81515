import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/client/apiClient.js';
import { decodeTx, signTx } from '../../src/records/tx/codec.js';
import { decodeBlock } from '../../src/consensus/block.js';
import { fromBase64, toBase64 } from '../../src/records/crypto/bytes.js';
import type { Session } from '../../src/client/session.js';
import { openBlob } from '../../src/records/envelope.js';
import type { UnsignedTx } from '../../src/records/tx/types.js';
import { TestNetwork } from '../support/testNetwork.js';

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const CANARY = 'CANARY-7f3a9c-HIV-POSITIVE';

describe('a single node as a separate process, driven over its API', () => {
  let net: TestNetwork;
  let admin: Session;
  let patient: Session;
  let doctor: Session;
  let stranger: Session;
  let record: string;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
  });

  it('registers, enrols, grants, creates, reads, denies, and the audit trail shows every step with its outcome', async () => {
    admin = await net.admin(0);
    doctor = await net.staff(0, 'dr-house', 'doctor');
    stranger = await net.staff(0, 'dr-stranger', 'doctor');
    patient = await net.patient(0, 'pat-alice');

    const created = await patient.createRecord('pat-alice', { title: 'Visit', vitals: { temperature: 37.2, bloodPressure: '120/80' }, notes: CANARY });
    expect(created.denied).toBeUndefined();
    record = created.value!;

    expect((await patient.grant('dr-house')).denied).toBeUndefined();
    const read = await doctor.readRecord('pat-alice', record);
    expect(read.denied).toBeUndefined();
    expect(read.value?.content).toEqual({ title: 'Visit', vitals: { temperature: 37.2, bloodPressure: '120/80' }, notes: CANARY });

    const denied = await stranger.readRecord('pat-alice', record);
    expect(denied.denied).toBe('no-grant');
    expect(denied.value).toBeUndefined();

    const trail = await patient.queryAudit({ patient: 'pat-alice' });
    expect(trail.denied).toBeUndefined();
    const steps = trail.value!.events.map((e) => `${e.agent.user}:${e.type}:${e.outcome}${e.reason ? `:${e.reason}` : ''}`).reverse();
    expect(steps).toEqual([
      'pat-alice:registerPatient:success',
      'pat-alice:createRecord:success',
      'pat-alice:grantAccess:success',
      'dr-house:readRecord:success',
      'dr-stranger:readRecord:denied:no-grant',
      // The query is itself audited, and final before its answer is computed.
      'pat-alice:queryAudit:success',
    ]);
    // Every event names its source node and the agent's role and hospital.
    for (const e of trail.value!.events) expect(e.source).toBe('hosp-a');
    expect(trail.value!.events[1]!.agent).toEqual({ user: 'dr-stranger', role: 'doctor', hospital: 'hosp-a' });

    // The admin sees the enrolments among the hospital's staff actions, and no patient data.
    const staffTrail = await admin.queryAudit({ hospital: 'hosp-a' });
    expect(
      staffTrail
        .value!.events.filter((e) => e.type === 'inviteUser')
        .map((e) => e.subject)
        .sort(),
    ).toEqual(['dr-house', 'dr-stranger']);
    expect(staffTrail.value!.events.every((e) => e.agent.role !== 'patient')).toBe(true);
    const adminOnPatient = await admin.queryAudit({ patient: 'pat-alice' });
    expect(adminOnPatient.denied).toBe('role-not-allowed');
  });

  it('after a revoke, the doctor is refused at once and a new record is not even encrypted for them', async () => {
    expect((await patient.revoke('dr-house')).denied).toBeUndefined();
    expect((await doctor.readRecord('pat-alice', record)).denied).toBe('no-grant');
    const fresh = await patient.createRecord('pat-alice', { vitals: { bloodPressure: '118/76' }, notes: CANARY });
    // The transaction on the chain names who the data key was wrapped for: the patient only.
    const { blocks } = await net.api(0).get<{ blocks: { block: string }[] }>(`/v1/chain/raw?from=${fresh.event!.height}&to=${fresh.event!.height}`);
    const block = decodeBlock(fromBase64(blocks[0]!.block), 16 * 1024 * 1024);
    const tx = block.txs.map((b) => decodeTx(b, { verify: false })).find((t) => t.tx.record === fresh.value)!;
    expect((tx.tx.body as { recipients: string[] }).recipients).toEqual(['pat-alice']);
    // Even with the ciphertext and the patient's wrapped key in hand, the doctor's key cannot open it.
    const raw = await patient.act('readRecord', { patient: 'pat-alice', record: fresh.value!, body: {} });
    const content = raw.result?.kind === 'record' ? raw.result.content! : undefined;
    const sealed = { n: fromBase64(content!.n), c: fromBase64(content!.c) };
    const key = { epk: fromBase64(content!.key!.epk), w: fromBase64(content!.key!.w) };
    const asDoctor = { id: 'dr-house', secretKey: doctor.keys.encSecret!, publicKey: doctor.keys.encPublic! };
    expect(() => openBlob(sealed, key, content!.blob, asDoctor)).toThrow(/decryption failed|TAMPERED/);
    expect(
      new TextDecoder().decode(
        openBlob(sealed, key, content!.blob, { id: 'pat-alice', secretKey: patient.keys.encSecret!, publicKey: patient.keys.encPublic! }),
      ),
    ).toContain(CANARY);
    await patient.grant('dr-house'); // restore for the tests below
  });

  it('keeps the record encrypted at rest: the canary never appears in any file of the data directory', async () => {
    const files = filesUnder(net.node(0).dataDir);
    expect(files.length).toBeGreaterThan(3);
    for (const file of files) expect(readFileSync(file).includes(CANARY), file).toBe(false);
  });

  it('answers status with the PROTOCOL.md §7.4 fields', async () => {
    const s = await net.api(0).status();
    expect(s.node).toBe('hosp-a');
    expect(s.finalizedHeight).toBeGreaterThanOrEqual(8);
    expect(s.finalizedHash).toMatch(/^[0-9a-f]{64}$/);
    expect(s.peers).toEqual([]);
  });

  describe('rejects bad input with a clear error and loses nothing', () => {
    const post = (path: string, body: string | Buffer) =>
      fetch(`${net.node(0).apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    it('malformed JSON, unknown fields, bad base64 and oversized bodies', async () => {
      const bad = await post('/v1/tx', '{not json');
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('MALFORMED');
      const unknown = await post('/v1/tx', JSON.stringify({ tx: 'AAAA', surprise: 1 }));
      expect(unknown.status).toBe(400);
      const garbage = await post('/v1/tx', JSON.stringify({ tx: toBase64(new Uint8Array([1, 2, 3])) }));
      expect(garbage.status).toBe(400);
      expect(((await garbage.json()) as { error: { message: string } }).error.message).toMatch(/not valid CBOR|malformed/);
      const huge = await post('/v1/tx', Buffer.alloc(5 * 1024 * 1024, 'a'));
      expect(huge.status).toBe(413);
    });

    it('a forged signature, a wrong source hospital, a replay and an unknown user', async () => {
      const base: UnsignedTx<'listRecords'> = {
        v: 1,
        type: 'listRecords',
        actor: 'pat-alice',
        key: patient.signer.publicKey,
        via: 'hosp-a',
        nonce: Date.now() * 1000 + 1,
        time: Date.now(),
        patient: 'pat-alice',
        body: {},
      };
      const { genesisHash } = await net.api(0).identify();
      // Signed by the doctor but claiming to be the patient: the key does not match the actor.
      const impersonation = signTx({ ...base, key: doctor.signer.publicKey }, doctor.signer, genesisHash);
      await expect(net.api(0).submit(impersonation)).rejects.toMatchObject({ code: 'KEY_MISMATCH' });

      const tx = signTx(base, patient.signer, genesisHash);
      const forged = new Uint8Array(tx.bytes);
      forged[forged.length - 1]! ^= 1;
      await expect(net.api(0).submit({ ...tx, bytes: forged })).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });

      const elsewhere = signTx({ ...base, via: 'hosp-b' }, patient.signer, genesisHash);
      await expect(net.api(0).submit(elsewhere)).rejects.toMatchObject({ code: 'MALFORMED' });

      const first = await net.api(0).submit(tx);
      expect(first.event?.outcome).toBe('success');
      // The same transaction again is answered idempotently with its committed event…
      expect((await net.api(0).submit(tx)).id).toBe(first.id);
      // …and an older nonce is a replay.
      const stale = signTx({ ...base, nonce: base.nonce - 1 }, patient.signer, genesisHash);
      await expect(net.api(0).submit(stale)).rejects.toMatchObject({ code: 'REPLAY' });

      const ghost = signTx({ ...base, actor: 'nobody-here' }, patient.signer, genesisHash);
      await expect(net.api(0).submit(ghost)).rejects.toBeInstanceOf(ApiError);
      await expect(net.api(0).submit(ghost)).rejects.toMatchObject({ code: 'UNKNOWN_ACTOR' });
    });

    it('signed views refuse unsigned or forged requests', async () => {
      const res = await fetch(`${net.node(0).apiUrl}/v1/me`);
      expect(res.status).toBe(401);
      const forged = await fetch(`${net.node(0).apiUrl}/v1/me`, {
        headers: {
          'x-medledger-user': 'pat-alice',
          'x-medledger-time': String(Date.now()),
          'x-medledger-nonce': '00'.repeat(16),
          'x-medledger-node': (await net.api(0).status()).peerId,
          'x-medledger-signature': toBase64(new Uint8Array(64)),
        },
      });
      expect(forged.status).toBe(401);
      expect(((await forged.json()) as { error: { message: string } }).error.message).toMatch(/does not verify/);
      const overview = await patient.overview();
      expect(overview.grants?.map((g) => g.user)).toEqual(['dr-house']);
      await expect(stranger.api.recipients(stranger.userId, stranger.signer, 'pat-alice')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    });

    it('the chain kept everything committed before the rejections', async () => {
      const trail = await patient.queryAudit({ patient: 'pat-alice', action: 'R' });
      expect(trail.value!.events.map((e) => `${e.agent.user}:${e.outcome}`).reverse()).toEqual([
        'dr-house:success',
        'dr-stranger:denied',
        'dr-house:denied',
        'pat-alice:success',
      ]);
    });
  });
});
