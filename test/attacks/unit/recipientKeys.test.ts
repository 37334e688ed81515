import { describe, expect, it } from 'vitest';
import type { ApiClient } from '../../../src/client/apiClient.js';
import { checkRecipientSet, RecipientKeyVerifier, verifyServedKey, type GenesisAnchor, type VerifiedKey } from '../../../src/client/recipientKeys.js';
import { buildProof, type InclusionProof } from '../../../src/consensus/proof.js';
import type { KeyProofResponse, PublicUser } from '../../../src/api/contract.js';
import { bytesEqual, fromBase64, toBase64, toHex } from '../../../src/records/crypto/bytes.js';
import { generateEncryptionKeyPair } from '../../../src/records/crypto/keyAgreement.js';
import { isMedLedgerError } from '../../../src/records/errors.js';
import type { Tx } from '../../../src/records/tx/types.js';
import { ChainBuilder } from '../../support/chainBuilder.js';

/**
 * Verified recipient keys (issue 9, item 4), on a real certified chain built in memory: the client takes a
 * recipient's key only with the inclusion proof of the transaction that set it, checked against the
 * genesis it trusts. Each way a node could pass off a key of its own — a swapped key with an honest
 * proof, the proof of another user's registration, a denied second enrolment, a transaction that sets no
 * key, an altered proof, a proof from another network, no proof — is refused.
 */
const chain = ChainBuilder.create();
const regPatient = chain.registerPatient('pat-1', 'hosp-a');
const regEvil = chain.registerPatient('pat-evil', 'hosp-b'); // an account the attacking hospital registered itself
// Staff keys are set by the new user's own activation (issue 10); the admin's invitation sets none.
const [inviteDoc, enrolDoc] = chain.enrol('admin-a', 'doc-1', 'doctor');
const [inviteAud, enrolAud] = chain.enrol('admin-a', 'aud-1', 'auditor');
chain.finalize([regPatient, regEvil, inviteDoc, enrolDoc, inviteAud, enrolAud]);
// A second activation of doc-1 naming a key the attacker holds: denied (the invitation is used), yet on the chain.
const attackerKeys = generateEncryptionKeyPair();
const reEnrol = chain.sign('doc-1', { type: 'activateUser', body: { encKey: attackerKeys.publicKey, codeSig: new Uint8Array(64) } });
const grant = chain.grant('pat-1', 'doc-1');
const denied = chain.finalize([reEnrol, grant.tx]);
expect(denied.executed.events[0]!.outcome).toBe('denied');

/** The inclusion proof of a committed transaction of `chain`, as a node serves it (JSON round trip). */
function proofOf(c: ChainBuilder, tx: Tx): InclusionProof {
  for (const b of c.blocks) {
    const index = b.executed.txs.findIndex((t) => t.idHex === tx.idHex);
    if (index >= 0)
      return JSON.parse(JSON.stringify(buildProof({ genesis: c.genesis, block: b.executed.block, index, eventBytes: b.executed.eventBytes, cert: b.cert })));
  }
  throw new Error(`transaction ${tx.idHex} is not in the chain`);
}

const evidence = (user: string, tx: Tx, c = chain): KeyProofResponse => ({ user, source: 'transaction', proof: proofOf(c, tx) });

/** What an honest node serves for a user (GET /v1/users/:id, or one entry of the recipients). */
function served(id: string): PublicUser {
  const u = chain.state.get('users', id)!;
  return { id, role: u.role, hospital: u.hospital, active: u.active, signKey: toBase64(u.signKey), ...(u.encKey ? { encKey: toBase64(u.encKey) } : {}) };
}

const withKey = (u: PublicUser, key: Uint8Array): PublicUser => ({ ...u, encKey: toBase64(key) });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isMedLedgerError(err, 'KEY_MISMATCH'), String(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a KEY_MISMATCH refusal');
}

describe('verifyServedKey: a served key is taken only with proof of where it was set', () => {
  it('accepts the keys of a patient, a doctor and an auditor with the proofs of their registration / enrolment, and an admin by the genesis file', () => {
    const pat = verifyServedKey(chain.genesis, served('pat-1'), evidence('pat-1', regPatient));
    expect(pat).toMatchObject({ user: 'pat-1', role: 'patient', hospital: 'hosp-a', setBy: { tx: regPatient.idHex, height: 1 } });
    expect(bytesEqual(pat.encKey, chain.keys('pat-1').enc.publicKey)).toBe(true);
    const doc = verifyServedKey(chain.genesis, served('doc-1'), evidence('doc-1', enrolDoc));
    expect(doc).toMatchObject({ user: 'doc-1', role: 'doctor', hospital: 'hosp-a', setBy: { tx: enrolDoc.idHex } });
    expect(bytesEqual(doc.encKey, chain.keys('doc-1').enc.publicKey)).toBe(true);
    expect(verifyServedKey(chain.genesis, served('aud-1'), evidence('aud-1', enrolAud)).role).toBe('auditor');
    // No transaction sets an admin's keys: whatever the node sends, the genesis file decides.
    expect(verifyServedKey(chain.genesis, served('admin-a'), undefined)).toMatchObject({ role: 'admin', hospital: 'hosp-a', setBy: 'genesis' });
  });

  it("refuses a grantee's key swapped for the node's own, with the honest proof", () => {
    const msg = refusal(() => verifyServedKey(chain.genesis, withKey(served('doc-1'), attackerKeys.publicKey), evidence('doc-1', enrolDoc)));
    expect(msg).toMatch(/encryption key for doc-1 that is not the one the ledger registered/);
  });

  it("refuses the swapped key with the proof of another user's registration (the attacker's own account)", () => {
    const evil = withKey(served('doc-1'), chain.keys('pat-evil').enc.publicKey);
    expect(refusal(() => verifyServedKey(chain.genesis, evil, evidence('doc-1', regEvil)))).toMatch(/registration of pat-evil/);
    expect(refusal(() => verifyServedKey(chain.genesis, withKey(served('doc-1'), chain.keys('aud-1').enc.publicKey), evidence('doc-1', enrolAud)))).toMatch(
      /activation of aud-1/,
    );
  });

  it('refuses the proof of a denied second enrolment of the same id under the attacker key', () => {
    const msg = refusal(() => verifyServedKey(chain.genesis, withKey(served('doc-1'), attackerKeys.publicKey), evidence('doc-1', reEnrol)));
    expect(msg).toMatch(/denied activateUser \(invitation-used\)/);
  });

  it('refuses the proof of a transaction that sets no key (a grant naming the user)', () => {
    expect(refusal(() => verifyServedKey(chain.genesis, served('doc-1'), evidence('doc-1', grant.tx)))).toMatch(/grantAccess transaction, which sets no key/);
  });

  it('refuses an altered proof: the enrolment with the key swapped in its body, a re-signed header, no proof at all', () => {
    const p = proofOf(chain, enrolDoc);
    const bytes = fromBase64(p.tx);
    const key = chain.keys('doc-1').enc.publicKey;
    const at = Buffer.from(bytes).indexOf(Buffer.from(key));
    expect(at).toBeGreaterThan(0);
    bytes.set(attackerKeys.publicKey, at);
    const forged = { ...p, tx: toBase64(bytes) };
    expect(
      refusal(() => verifyServedKey(chain.genesis, withKey(served('doc-1'), attackerKeys.publicKey), { user: 'doc-1', source: 'transaction', proof: forged })),
    ).toMatch(/does not verify/);
    expect(refusal(() => verifyServedKey(chain.genesis, served('doc-1'), { user: 'doc-1', source: 'genesis' }))).toMatch(/no proof/);
    expect(refusal(() => verifyServedKey(chain.genesis, served('doc-1'), undefined))).toMatch(/no proof/);
    expect(
      refusal(() => verifyServedKey(chain.genesis, served('doc-1'), { user: 'doc-1', source: 'transaction', proof: { ...p, certificate: p.header } })),
    ).toMatch(/does not verify/);
  });

  it("refuses a genuine proof from another network (the node's own chain, same user ids) and a swapped admin key", () => {
    const other = ChainBuilder.create({ network: 'medledger-evil' });
    const [otherInvite, otherEnrol] = other.enrol('admin-a', 'doc-1', 'doctor');
    other.finalize([otherInvite, otherEnrol]);
    const u = { ...served('doc-1'), encKey: toBase64(other.keys('doc-1').enc.publicKey), signKey: toBase64(other.keys('doc-1').signing.publicKey) };
    expect(refusal(() => verifyServedKey(chain.genesis, u, evidence('doc-1', otherEnrol, other)))).toMatch(
      /does not verify: proof is for network medledger-evil/,
    );
    expect(refusal(() => verifyServedKey(chain.genesis, withKey(served('admin-a'), attackerKeys.publicKey), undefined))).toMatch(
      /not the one the ledger registered \(the genesis file\)/,
    );
  });

  it('refuses a swapped signing key, role or hospital even with the right encryption key', () => {
    const ev = evidence('doc-1', enrolDoc);
    expect(refusal(() => verifyServedKey(chain.genesis, { ...served('doc-1'), signKey: toBase64(chain.keys('pat-evil').signing.publicKey) }, ev))).toMatch(
      /signing key/,
    );
    expect(refusal(() => verifyServedKey(chain.genesis, { ...served('doc-1'), role: 'auditor' }, ev))).toMatch(
      /auditor of hosp-a; the ledger registered a doctor of hosp-a/,
    );
    expect(refusal(() => verifyServedKey(chain.genesis, { ...served('pat-1'), hospital: 'hosp-b' }, evidence('pat-1', regPatient)))).toMatch(/hosp-b/);
  });
});

describe('checkRecipientSet: the patient and staff only', () => {
  const v = (user: string, role: VerifiedKey['role']): VerifiedKey => ({
    user,
    role,
    hospital: 'hosp-a',
    encKey: new Uint8Array(32),
    signKey: new Uint8Array(32),
    setBy: 'genesis',
  });
  it('accepts the patient with doctors and auditors', () => {
    expect(() => checkRecipientSet('pat-1', [v('doc-1', 'doctor'), v('pat-1', 'patient'), v('aud-1', 'auditor')])).not.toThrow();
  });
  it("refuses a set that adds the attacker's own patient account, an admin, a duplicate, or leaves out the patient", () => {
    expect(refusal(() => checkRecipientSet('pat-1', [v('pat-1', 'patient'), v('pat-evil', 'patient')]))).toMatch(/pat-evil \(patient\)/);
    expect(refusal(() => checkRecipientSet('pat-1', [v('pat-1', 'patient'), v('admin-b', 'admin')]))).toMatch(/admin-b \(admin\)/);
    expect(refusal(() => checkRecipientSet('pat-1', [v('pat-1', 'patient'), v('doc-1', 'doctor'), v('doc-1', 'doctor')]))).toMatch(/twice/);
    expect(refusal(() => checkRecipientSet('pat-1', [v('doc-1', 'doctor')]))).toMatch(/leave out pat-1/);
  });
});

/** A node API that serves proofs from `chain` (or lies), counting requests. */
function fakeApi(opts: { genesisHash?: string; proof?: (id: string) => KeyProofResponse } = {}) {
  const calls: string[] = [];
  const proofs: Record<string, Tx> = { 'pat-1': regPatient, 'doc-1': enrolDoc, 'aud-1': enrolAud, 'pat-evil': regEvil };
  const api = {
    base: 'http://fake-node',
    async get<T>(path: string): Promise<T> {
      calls.push(path);
      if (path === '/v1/genesis') return { hash: opts.genesisHash ?? toHex(chain.genesis.hash), genesis: chain.genesis.file } as T;
      const id = decodeURIComponent(/^\/v1\/users\/([^/]+)\/key-proof$/.exec(path)![1]!);
      return (opts.proof?.(id) ?? evidence(id, proofs[id]!)) as T;
    },
  } as unknown as ApiClient;
  return { api, calls };
}

const pinned: GenesisAnchor = { genesis: chain.genesis, pinned: true, source: 'test' };

describe('RecipientKeyVerifier: one session', () => {
  it('verifies the recipients, fetching each proof once per session (cached by user and keys)', async () => {
    const { api, calls } = fakeApi();
    const verifier = new RecipientKeyVerifier(api, pinned);
    expect(verifier.pinned).toBe(true);
    const recipients = await verifier.recipients('pat-1', [served('pat-1'), served('doc-1'), served('aud-1')]);
    expect(recipients.map((r) => r.id)).toEqual(['pat-1', 'doc-1', 'aud-1']);
    expect(bytesEqual(recipients[1]!.encKey, chain.keys('doc-1').enc.publicKey)).toBe(true);
    expect(calls).toHaveLength(3);
    await verifier.recipients('pat-1', [served('pat-1'), served('doc-1'), served('aud-1')]);
    expect(calls).toHaveLength(3);
    expect(verifier.cached).toBe(3);
    // A different key for a cached user is not a cache hit: it is checked, and refused.
    await expect(verifier.verify(withKey(served('doc-1'), attackerKeys.publicKey))).rejects.toThrow(/not the one the ledger registered/);
    expect(calls).toHaveLength(4);
  });

  it('refuses the whole set when one grantee key is swapped, and names it', async () => {
    const { api } = fakeApi();
    const verifier = new RecipientKeyVerifier(api, pinned);
    await expect(verifier.recipients('pat-1', [served('pat-1'), withKey(served('doc-1'), attackerKeys.publicKey)])).rejects.toMatchObject({
      code: 'KEY_MISMATCH',
      message: expect.stringMatching(/doc-1/),
    });
  });

  it('refuses a node that has no proof to give (UNAVAILABLE, nothing sealed)', async () => {
    const api = {
      base: 'http://fake-node',
      get: async () => {
        throw new Error('404 NOT_FOUND');
      },
    } as unknown as ApiClient;
    await expect(new RecipientKeyVerifier(api, pinned).verify(served('doc-1'))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/gave no proof/),
    });
  });

  it("without a pinned genesis, uses the node's (hash checked), and is not marked pinned", async () => {
    const { api, calls } = fakeApi();
    const verifier = new RecipientKeyVerifier(api);
    expect(verifier.pinned).toBe(false);
    await verifier.verify(served('doc-1'));
    expect(calls[0]).toBe('/v1/genesis');
    expect((await verifier.trustAnchor()).source).toMatch(/not pinned/);
    const lying = fakeApi({ genesisHash: '00'.repeat(32) });
    await expect(new RecipientKeyVerifier(lying.api).verify(served('doc-1'))).rejects.toThrow(/hash is not the one it names/);
  });

  it("a pinned genesis is not replaced by the node: a proof from the node's own network fails", async () => {
    const other = ChainBuilder.create({ network: 'medledger-evil' });
    const [otherInvite, otherEnrol] = other.enrol('admin-a', 'doc-1', 'doctor');
    other.finalize([otherInvite, otherEnrol]);
    const { api } = fakeApi({ proof: () => evidence('doc-1', otherEnrol, other) });
    const u = { ...served('doc-1'), encKey: toBase64(other.keys('doc-1').enc.publicKey), signKey: toBase64(other.keys('doc-1').signing.publicKey) };
    await expect(new RecipientKeyVerifier(api, pinned).verify(u)).rejects.toThrow(/proof is for network medledger-evil/);
  });
});
