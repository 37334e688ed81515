import { beforeEach, describe, expect, it } from 'vitest';
import { actionOf, type AuditEvent } from '../../src/records/audit.js';
import { activationCodeKey, newActivationCode, signActivation } from '../../src/records/activation.js';
import { signKeyConsent } from '../../src/records/rotation.js';
import { apply } from '../../src/records/state/apply.js';
import { OverlayState } from '../../src/records/state/memoryState.js';
import { txTypes, type TxType } from '../../src/records/tx/types.js';
import { createLedger, type Ledger, type SubmitOptions, type TxInput } from '../support/ledgerFixture.js';

/**
 * PROTOCOL.md §3, cell by cell, through the pure `apply`: who may do what, the exact reason code of every denial,
 * and that a denial is an audited, valid transaction whose only effect is the consumed nonce.
 */

// --- Assertions ---------------------------------------------------------------------------------------

/** Applies the transaction and checks it is valid, allowed, audited as a success and consumes the nonce. */
function expectAllowed<T extends TxType>(ledger: Ledger, actor: string, input: TxInput<T>, options?: SubmitOptions): AuditEvent {
  const before = ledger.snapshot();
  const tx = ledger.sign(actor, input, options);
  const result = ledger.apply(tx, options?.ctx);
  if (!result.valid) throw new Error(`expected a valid transaction, got ${result.error.code}: ${result.error.message}`);
  const { event } = result;
  expect(event.reason, `${input.type} by ${actor} was denied`).toBeUndefined();
  expect(event.outcome).toBe('success');
  expect(event.tx).toBe(tx.idHex);
  expect(event.type).toBe(input.type);
  expect(event.action).toBe(actionOf[input.type]);
  expect(event.recorded).toBe(tx.tx.time);
  expect(event.source).toBe(tx.tx.via);
  if (input.type !== 'registerPatient') {
    const agent = before.users[actor]!;
    expect(event.agent).toEqual({ user: actor, role: agent.role, hospital: agent.hospital });
  }
  expect(ledger.user(actor).lastNonce).toBe(tx.tx.nonce);
  return event;
}

/**
 * Applies the transaction and checks it is valid (includable in a block), audited as denied with exactly
 * `reason`, and that the state differs from before only by the actor's consumed nonce.
 */
function expectDenied<T extends TxType>(ledger: Ledger, actor: string, input: TxInput<T>, reason: string, options?: SubmitOptions): AuditEvent {
  const before = ledger.snapshot();
  const tx = ledger.sign(actor, input, options);
  const result = ledger.apply(tx, options?.ctx);
  if (!result.valid) throw new Error(`expected a valid (denied) transaction, got ${result.error.code}: ${result.error.message}`);
  const { event, changes } = result;
  expect(event.outcome, `${input.type} by ${actor} should be denied (${reason})`).toBe('denied');
  expect(event.reason).toBe(reason);
  expect(event.tx).toBe(tx.idHex);
  expect(event.type).toBe(input.type);
  expect(event.action).toBe(actionOf[input.type]);
  expect(event.recorded).toBe(tx.tx.time);
  expect(event.source).toBe(tx.tx.via);
  const agent = before.users[actor]!;
  expect(event.agent).toEqual({ user: actor, role: agent.role, hospital: agent.hospital });
  if (input.patient !== undefined) expect(event.patient).toBe(input.patient);
  if (input.record !== undefined) expect(event.record).toBe(input.record);

  const consumed = { ...agent, lastNonce: tx.tx.nonce };
  expect(changes).toEqual([{ table: 'users', key: actor, value: consumed }]);
  expect(ledger.snapshot()).toEqual({ ...before, users: { ...before.users, [actor]: consumed } });
  return event;
}

// --- The world every cell starts from -----------------------------------------------------------------

const P = 'pat-1'; // the patient whose data is acted on (hosp-a)
const P2 = 'pat-2'; // another patient (hosp-b)
const D1 = 'doc-1'; // doctor at hosp-a, granted by P
const D2 = 'doc-2'; // doctor at hosp-b, no grant
const D3 = 'doc-3'; // doctor at hosp-b with a pending request to P
const A1 = 'aud-1'; // auditor at hosp-a, granted by P
const A2 = 'aud-2'; // auditor at hosp-b, no grant
const DX = 'doc-x'; // doctor at hosp-a, granted by P, then deactivated
const AX = 'aud-x'; // auditor at hosp-a, granted by P, then deactivated
const ADMIN_A = 'admin-a';
const ADMIN_B = 'admin-b';

interface World {
  ledger: Ledger;
  /** P's record, with one file attached. */
  record: string;
  file: string;
  /** P's appointment with D1. */
  appointment: string;
}

function buildWorld(): World {
  const ledger = createLedger();
  ledger.registerPatient(P, 'hosp-a');
  ledger.registerPatient(P2, 'hosp-b');
  for (const [admin, user, role] of [
    [ADMIN_A, D1, 'doctor'],
    [ADMIN_B, D2, 'doctor'],
    [ADMIN_B, D3, 'doctor'],
    [ADMIN_A, A1, 'auditor'],
    [ADMIN_B, A2, 'auditor'],
    [ADMIN_A, DX, 'doctor'],
    [ADMIN_A, AX, 'auditor'],
  ] as const) {
    ledger.enrol(admin, user, role);
  }
  for (const grantee of [D1, A1, DX, AX]) ledger.grant(P, grantee);
  ledger.request(D3, P);
  ledger.deactivate(ADMIN_A, DX);
  ledger.deactivate(ADMIN_A, AX);
  const record = ledger.createRecord(P, P);
  const file = ledger.attachFile(P, P, record);
  const appointment = ledger.book(P, D1);
  return { ledger, record, file, appointment };
}

describe('the world the table is tested in', () => {
  it('has the grants, request, deactivations, record, file and appointment the cells rely on', () => {
    const { ledger, record, file, appointment } = buildWorld();
    const p = ledger.user(P);
    expect(Object.keys(p.grants ?? {}).sort()).toEqual([A1, AX, D1, DX].sort());
    expect(p.grants?.[D1]?.kind).toBe('doctor');
    expect(p.grants?.[A1]?.kind).toBe('auditor');
    expect(p.requests).toEqual({ [D3]: { kind: 'doctor', at: expect.any(Number) } });
    expect(ledger.user(DX).active).toBe(false);
    expect(ledger.user(AX).active).toBe(false);
    expect(ledger.user(D2).hospital).toBe('hosp-b');
    // Deactivated grantees are no longer recipients of new content.
    expect(ledger.recipientsFor(P)).toEqual([A1, D1, P].sort());
    expect(ledger.state.get('records', record)?.files).toEqual({ [file]: { version: 1 } });
    expect(ledger.state.get('appointments', appointment)).toMatchObject({ patient: P, doctor: D1, status: 'booked' });
  });
});

// --- The table -----------------------------------------------------------------------------------------

const cases = {
  'patient (own data)': P,
  "patient (another patient's data)": P2,
  'doctor with grant': D1,
  'doctor without grant': D2,
  'auditor with grant': A1,
  'auditor without grant': A2,
  admin: ADMIN_A,
  'deactivated doctor': DX,
  'deactivated auditor': AX,
} as const;
type Case = keyof typeof cases;
type Expected = 'allowed' | string;

interface Cell {
  /** The transaction, always aimed at P's data (or, for staff administration, at D1 / a new user). */
  input: (w: World) => TxInput;
  /** What an allowed transaction must have done to the state. */
  effect: (w: World, actor: string, input: TxInput) => void;
  expected: Record<Case, Expected>;
}

const OK = 'allowed';
const RNA = 'role-not-allowed';
const NOD = 'not-own-data';
const NG = 'no-grant';
const DEACT = 'deactivated';

/** Rows of PROTOCOL.md §3.1: records are written by the patient and granted doctors only. */
const recordWrite = (): Record<Case, Expected> => ({
  'patient (own data)': OK,
  "patient (another patient's data)": NOD,
  'doctor with grant': OK,
  'doctor without grant': NG,
  'auditor with grant': RNA,
  'auditor without grant': RNA,
  admin: RNA,
  'deactivated doctor': DEACT,
  'deactivated auditor': DEACT,
});
/** Reading: granted auditors too. */
const recordRead = (): Record<Case, Expected> => ({ ...recordWrite(), 'auditor with grant': OK, 'auditor without grant': NG });
/** Files: same as writing records (auditors never). */
const files = recordWrite;
/** Grant / revoke / approve / deny / book: the patient alone, on their own data. */
const patientOnly = (): Record<Case, Expected> => ({
  'patient (own data)': OK,
  "patient (another patient's data)": NOD,
  'doctor with grant': RNA,
  'doctor without grant': RNA,
  'auditor with grant': RNA,
  'auditor without grant': RNA,
  admin: RNA,
  'deactivated doctor': DEACT,
  'deactivated auditor': DEACT,
});
/** Enrol / deactivate staff: admins alone. */
const adminOnly = (): Record<Case, Expected> => ({
  'patient (own data)': RNA,
  "patient (another patient's data)": RNA,
  'doctor with grant': RNA,
  'doctor without grant': RNA,
  'auditor with grant': RNA,
  'auditor without grant': RNA,
  admin: OK,
  'deactivated doctor': DEACT,
  'deactivated auditor': DEACT,
});

const DAY = 86_400_000;

/**
 * `activateUser` is the new user's own first transaction, not an action of an existing role, and `rotateKeys`
 * needs the consent of a key made for it: both tested below. The statistics types (issue 13) need batches,
 * reports and a hospital actor: test/records/statsTx.test.ts.
 */
const STATS_TYPES = ['statsConsent', 'statsReport', 'statsQuery', 'statsAggregate'] as const;
const table: Record<Exclude<TxType, 'registerPatient' | 'activateUser' | 'rotateKeys' | (typeof STATS_TYPES)[number]>, Cell> = {
  inviteUser: {
    input: (w) => ({
      type: 'inviteUser',
      body: { user: 'new-staff', role: 'auditor', expiresAt: w.ledger.clock + DAY, codeKey: activationCodeKey(newActivationCode(), 'new-staff') },
    }),
    effect: (w, actor) => {
      // An invitation, and no user (no keys) yet.
      expect(w.ledger.state.get('invitations', 'new-staff')).toMatchObject({ role: 'auditor', hospital: w.ledger.user(actor).hospital, invitedBy: actor });
      expect(w.ledger.state.get('users', 'new-staff')).toBeUndefined();
    },
    expected: adminOnly(),
  },
  deactivateUser: {
    input: () => ({ type: 'deactivateUser', body: { user: D1 } }),
    effect: (w) => expect(w.ledger.user(D1).active).toBe(false),
    expected: adminOnly(),
  },
  revokeStaffKey: {
    input: () => ({ type: 'revokeStaffKey', body: { user: D1 } }),
    effect: (w) => expect(w.ledger.user(D1).keyRevokedAt).toEqual(expect.any(Number)),
    expected: adminOnly(),
  },
  recoverPatientKeys: {
    input: (w) => ({
      type: 'recoverPatientKeys',
      patient: P,
      body: { signKey: w.ledger.keys('pat-1-new').signing.publicKey, encKey: w.ledger.keys('pat-1-new').encKey, ticket: 'desk-0001' },
    }),
    effect: (w) =>
      expect(w.ledger.user(P)).toMatchObject({
        signKey: w.ledger.keys('pat-1-new').signing.publicKey,
        encKey: w.ledger.keys('pat-1-new').encKey,
        keysSince: expect.any(Number),
      }),
    expected: adminOnly(),
  },
  createRecord: {
    input: (w) => ({ type: 'createRecord', patient: P, record: 'rec-00000000000000ff', body: { recipients: w.ledger.recipientsFor(P) } }),
    effect: (w, actor, input) => {
      expect(w.ledger.state.get('records', 'rec-00000000000000ff')).toEqual({
        id: 'rec-00000000000000ff',
        patient: P,
        createdBy: actor,
        createdAt: input.time ?? expect.any(Number),
        updatedAt: expect.any(Number),
        version: 1,
        deleted: false,
        files: {},
      });
    },
    expected: recordWrite(),
  },
  updateRecord: {
    input: (w) => ({ type: 'updateRecord', patient: P, record: w.record, body: { recipients: w.ledger.recipientsFor(P), version: 2 } }),
    effect: (w) => expect(w.ledger.state.get('records', w.record)?.version).toBe(2),
    expected: recordWrite(),
  },
  copyRecord: {
    input: (w) => ({ type: 'copyRecord', patient: P, record: 'rec-00000000000000fe', body: { from: w.record, recipients: w.ledger.recipientsFor(P) } }),
    effect: (w, actor) => {
      expect(w.ledger.state.get('records', 'rec-00000000000000fe')).toMatchObject({
        patient: P,
        createdBy: actor,
        version: 1,
        copiedFrom: w.record,
        deleted: false,
      });
    },
    expected: recordWrite(),
  },
  deleteRecord: {
    input: (w) => ({ type: 'deleteRecord', patient: P, record: w.record, body: {} }),
    effect: (w) => expect(w.ledger.state.get('records', w.record)).toMatchObject({ deleted: true, version: 1 }),
    expected: recordWrite(),
  },
  readRecord: {
    input: (w) => ({ type: 'readRecord', patient: P, record: w.record, body: {} }),
    effect: (w) => expect(w.ledger.state.get('records', w.record)?.version).toBe(1),
    expected: recordRead(),
  },
  listRecords: {
    input: () => ({ type: 'listRecords', patient: P, body: {} }),
    effect: () => {},
    expected: recordRead(),
  },
  attachFile: {
    input: (w) => ({ type: 'attachFile', patient: P, record: w.record, body: { file: 'file-00000000000000ff', recipients: w.ledger.recipientsFor(P) } }),
    effect: (w) => {
      expect(w.ledger.state.get('records', w.record)?.files).toEqual({ [w.file]: { version: 1 }, 'file-00000000000000ff': { version: 1 } });
    },
    expected: files(),
  },
  replaceFile: {
    input: (w) => ({ type: 'replaceFile', patient: P, record: w.record, body: { file: w.file, recipients: w.ledger.recipientsFor(P), version: 2 } }),
    effect: (w) => expect(w.ledger.state.get('records', w.record)?.files).toEqual({ [w.file]: { version: 2 } }),
    expected: files(),
  },
  removeFile: {
    input: (w) => ({ type: 'removeFile', patient: P, record: w.record, body: { file: w.file } }),
    // The entry stays, marked removed, so the file id is never reused.
    effect: (w) => expect(w.ledger.state.get('records', w.record)?.files).toEqual({ [w.file]: { version: 1, removed: true } }),
    expected: files(),
  },
  grantAccess: {
    input: () => ({ type: 'grantAccess', patient: P, body: { grantee: D2 } }),
    effect: (w) => expect(w.ledger.user(P).grants?.[D2]).toEqual({ kind: 'doctor', since: expect.any(Number) }),
    expected: patientOnly(),
  },
  revokeAccess: {
    input: () => ({ type: 'revokeAccess', patient: P, body: { grantee: D1 } }),
    effect: (w) => expect(w.ledger.user(P).grants?.[D1]).toBeUndefined(),
    expected: patientOnly(),
  },
  requestAccess: {
    input: () => ({ type: 'requestAccess', patient: P, body: {} }),
    effect: (w, actor) => {
      expect(w.ledger.user(P).requests?.[actor]).toEqual({ kind: w.ledger.user(actor).role, at: expect.any(Number) });
      expect(w.ledger.user(P).grants?.[actor]).toBeUndefined();
    },
    expected: {
      'patient (own data)': RNA,
      "patient (another patient's data)": RNA,
      'doctor with grant': 'already-granted',
      'doctor without grant': OK,
      'auditor with grant': 'already-granted',
      'auditor without grant': OK,
      admin: RNA,
      'deactivated doctor': DEACT,
      'deactivated auditor': DEACT,
    },
  },
  approveRequest: {
    input: () => ({ type: 'approveRequest', patient: P, body: { requester: D3 } }),
    effect: (w) => {
      expect(w.ledger.user(P).grants?.[D3]).toEqual({ kind: 'doctor', since: expect.any(Number) });
      expect(w.ledger.user(P).requests).toEqual({});
    },
    expected: patientOnly(),
  },
  denyRequest: {
    input: () => ({ type: 'denyRequest', patient: P, body: { requester: D3 } }),
    effect: (w) => {
      expect(w.ledger.user(P).grants?.[D3]).toBeUndefined();
      expect(w.ledger.user(P).requests).toEqual({});
    },
    expected: patientOnly(),
  },
  bookAppointment: {
    input: (w) => ({ type: 'bookAppointment', patient: P, body: { appointment: 'apt-00000000000000ff', doctor: D1, at: w.ledger.clock + 2 * DAY } }),
    effect: (w, actor, input) => {
      const at = (input.body as { at: number }).at;
      expect(w.ledger.state.get('appointments', 'apt-00000000000000ff')).toEqual({
        id: 'apt-00000000000000ff',
        patient: P,
        doctor: D1,
        at,
        status: 'booked',
        bookedBy: actor,
      });
      expect(w.ledger.state.get('slots', `${D1}@${at}`)).toBe('apt-00000000000000ff');
    },
    expected: patientOnly(),
  },
  cancelAppointment: {
    input: (w) => ({ type: 'cancelAppointment', patient: P, body: { appointment: w.appointment } }),
    effect: (w) => {
      const apt = w.ledger.state.get('appointments', w.appointment);
      expect(apt?.status).toBe('cancelled');
      expect(w.ledger.state.get('slots', `${D1}@${apt?.at}`)).toBeUndefined();
    },
    expected: {
      'patient (own data)': OK,
      "patient (another patient's data)": NOD,
      'doctor with grant': OK, // D1 is the appointment's doctor
      'doctor without grant': RNA, // D2 is not
      'auditor with grant': RNA,
      'auditor without grant': RNA,
      admin: RNA,
      'deactivated doctor': DEACT,
      'deactivated auditor': DEACT,
    },
  },
  queryAudit: {
    input: () => ({ type: 'queryAudit', body: { filter: { patient: P } } }),
    effect: () => {},
    expected: {
      ...recordRead(),
      admin: RNA, // admins query their own hospital's staff actions, never a patient's trail
    },
  },
};

describe('PROTOCOL.md §3 permission table through apply()', () => {
  it('covers every transaction type', () => {
    expect([...Object.keys(table), 'registerPatient', 'activateUser', 'rotateKeys', ...STATS_TYPES].sort()).toEqual([...txTypes].sort());
  });

  for (const [type, cell] of Object.entries(table) as [TxType, Cell][]) {
    describe(type, () => {
      let w: World;
      beforeEach(() => {
        w = buildWorld();
      });
      for (const [label, actor] of Object.entries(cases) as [Case, string][]) {
        const expected = cell.expected[label];
        it(`${label} (${actor}): ${expected === OK ? 'allowed' : `denied ${expected}`}`, () => {
          const input = cell.input(w);
          if (expected === OK) {
            const before = w.ledger.snapshot();
            const event = expectAllowed(w.ledger, actor, input);
            cell.effect(w, actor, input);
            if (input.patient) expect(event.patient).toBe(input.patient);
            if (input.record) expect(event.record).toBe(input.record);
            // Reads and queries are audited but change nothing besides the nonce.
            if (type === 'readRecord' || type === 'listRecords' || type === 'queryAudit') {
              expect(w.ledger.snapshot()).toEqual({
                ...before,
                users: { ...before.users, [actor]: { ...before.users[actor]!, lastNonce: w.ledger.user(actor).lastNonce } },
              });
            } else {
              // Something beyond the nonce changed: the effect checked above.
              expect(w.ledger.snapshot()).not.toEqual({
                ...before,
                users: { ...before.users, [actor]: { ...before.users[actor]!, lastNonce: w.ledger.user(actor).lastNonce } },
              });
            }
          } else {
            expectDenied(w.ledger, actor, input, expected);
          }
        });
      }
    });
  }

  describe('registerPatient', () => {
    it('anyone may self-register as a patient through a hospital node', () => {
      const ledger = createLedger();
      const event = expectAllowed(ledger, 'new-patient', { type: 'registerPatient', via: 'hosp-b', body: { encKey: ledger.keys('new-patient').encKey } });
      expect(event.agent).toEqual({ user: 'new-patient', role: 'patient', hospital: 'hosp-b' });
      expect(event.patient).toBe('new-patient');
      expect(ledger.user('new-patient')).toEqual({
        id: 'new-patient',
        role: 'patient',
        hospital: 'hosp-b',
        signKey: ledger.keys('new-patient').signing.publicKey,
        encKey: ledger.keys('new-patient').encKey,
        active: true,
        lastNonce: 1,
        since: event.recorded,
        grants: {},
        requests: {},
      });
    });

    it("a hospital's id cannot be registered as a patient: invalid USER_EXISTS (it would share the hospital's nonces and mempool quota)", () => {
      const { ledger } = buildWorld();
      const before = ledger.snapshot();
      const result = ledger.submit('hosp-a', { type: 'registerPatient', via: 'hosp-b', body: { encKey: ledger.keys('hosp-a').encKey } });
      expect(result.valid).toBe(false);
      if (!result.valid) expect(result.error).toMatchObject({ code: 'USER_EXISTS', message: expect.stringContaining("hospital's id") });
      expect(ledger.snapshot()).toEqual(before);
    });

    it.each(Object.entries(cases))('an existing %s (%s) cannot register again: invalid USER_EXISTS', (_label, actor) => {
      const { ledger } = buildWorld();
      const before = ledger.snapshot();
      const result = ledger.submit(
        actor,
        { type: 'registerPatient', via: 'hosp-a', body: { encKey: ledger.keys(actor).encKey } },
        { signWith: ledger.keys(`${actor}-other`) },
      );
      expect(result.valid).toBe(false);
      if (!result.valid) expect(result.error.code).toBe('USER_EXISTS');
      expect(ledger.snapshot()).toEqual(before);
    });
  });
});

// --- Scenarios named by the spec ----------------------------------------------------------------------

describe('grants and requests', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });
  const read = (w: World) => ({ type: 'readRecord', patient: P, record: w.record, body: {} }) as const;

  it('a revoke stops the next access at once (next block)', () => {
    expectAllowed(w.ledger, D1, read(w));
    expectAllowed(w.ledger, P, { type: 'revokeAccess', patient: P, body: { grantee: D1 } });
    expectDenied(w.ledger, D1, read(w), 'no-grant');
    expectDenied(w.ledger, D1, { type: 'updateRecord', patient: P, record: w.record, body: { recipients: [P, D1, A1].sort(), version: 2 } }, 'no-grant');
    expectDenied(w.ledger, D1, { type: 'queryAudit', body: { filter: { patient: P } } }, 'no-grant');
    // New content is no longer wrapped for the revoked doctor.
    expect(w.ledger.recipientsFor(P)).toEqual([A1, P].sort());
    expectDenied(
      w.ledger,
      P,
      { type: 'updateRecord', patient: P, record: w.record, body: { recipients: [P, D1, A1].sort(), version: 2 } },
      'recipients-mismatch',
    );
  });

  it('a revoke stops access for the very next transaction of the same block', () => {
    const { ledger } = w;
    const overlay = new OverlayState(ledger.state);
    const revoke = ledger.sign(P, { type: 'revokeAccess', patient: P, body: { grantee: A1 } });
    const readTx = ledger.sign(A1, read(w));
    const ctx = { height: ledger.height + 1, blockTime: ledger.clock, genesisHash: ledger.genesisHash };
    const r0 = apply(overlay, revoke, { ...ctx, index: 0 });
    if (!r0.valid) throw r0.error;
    expect(r0.event.outcome).toBe('success');
    overlay.write(r0.changes);
    const r1 = apply(overlay, readTx, { ...ctx, index: 1 });
    if (!r1.valid) throw r1.error;
    expect(r1.event).toMatchObject({ outcome: 'denied', reason: 'no-grant', index: 1, agent: { user: A1, role: 'auditor' } });
    // Against the state before the block, the same read would have been allowed.
    const r1Before = apply(ledger.state, readTx, { ...ctx, index: 1 });
    expect(r1Before.valid && r1Before.event.outcome).toBe('success');
  });

  it('revoking a grant that does not exist is denied', () => {
    expectDenied(w.ledger, P, { type: 'revokeAccess', patient: P, body: { grantee: D2 } }, 'no-grant-to-revoke');
  });

  it('request → approve creates a grant of the requester’s role (doctor)', () => {
    expectDenied(w.ledger, D2, read(w), 'no-grant');
    expectAllowed(w.ledger, D2, { type: 'requestAccess', patient: P, body: {} });
    // Pending is not granted.
    expectDenied(w.ledger, D2, read(w), 'no-grant');
    expectDenied(w.ledger, D2, { type: 'requestAccess', patient: P, body: {} }, 'request-pending');
    const event = expectAllowed(w.ledger, P, { type: 'approveRequest', patient: P, body: { requester: D2 } });
    expect(event.subject).toBe(D2);
    expect(w.ledger.user(P).grants?.[D2]?.kind).toBe('doctor');
    expect(w.ledger.user(P).requests?.[D2]).toBeUndefined();
    expectAllowed(w.ledger, D2, read(w));
    expectAllowed(w.ledger, D2, { type: 'updateRecord', patient: P, record: w.record, body: { recipients: w.ledger.recipientsFor(P), version: 2 } });
  });

  it('request → approve creates a grant of the requester’s role (auditor: read only)', () => {
    expectAllowed(w.ledger, A2, { type: 'requestAccess', patient: P, body: {} });
    expect(w.ledger.user(P).requests?.[A2]?.kind).toBe('auditor');
    expectAllowed(w.ledger, P, { type: 'approveRequest', patient: P, body: { requester: A2 } });
    expect(w.ledger.user(P).grants?.[A2]?.kind).toBe('auditor');
    expectAllowed(w.ledger, A2, read(w));
    expectAllowed(w.ledger, A2, { type: 'queryAudit', body: { filter: { patient: P } } });
    expectDenied(
      w.ledger,
      A2,
      { type: 'updateRecord', patient: P, record: w.record, body: { recipients: w.ledger.recipientsFor(P), version: 2 } },
      'role-not-allowed',
    );
    expectDenied(
      w.ledger,
      A2,
      { type: 'attachFile', patient: P, record: w.record, body: { file: w.ledger.fileId(), recipients: w.ledger.recipientsFor(P) } },
      'role-not-allowed',
    );
  });

  it('request → deny leaves no grant and no pending request; the requester may ask again', () => {
    expectAllowed(w.ledger, P, { type: 'denyRequest', patient: P, body: { requester: D3 } });
    expect(w.ledger.user(P).requests?.[D3]).toBeUndefined();
    expect(w.ledger.user(P).grants?.[D3]).toBeUndefined();
    expectDenied(w.ledger, D3, read(w), 'no-grant');
    expectDenied(w.ledger, P, { type: 'approveRequest', patient: P, body: { requester: D3 } }, 'no-pending-request');
    expectDenied(w.ledger, P, { type: 'denyRequest', patient: P, body: { requester: D3 } }, 'no-pending-request');
    expectAllowed(w.ledger, D3, { type: 'requestAccess', patient: P, body: {} });
  });

  it('approving a request of a since-deactivated requester is denied', () => {
    w.ledger.deactivate(ADMIN_B, D3);
    expectDenied(w.ledger, P, { type: 'approveRequest', patient: P, body: { requester: D3 } }, 'grantee-inactive');
  });

  it('a direct grant removes the grantee’s pending request', () => {
    const event = expectAllowed(w.ledger, P, { type: 'grantAccess', patient: P, body: { grantee: D3 } });
    expect(event.subject).toBe(D3);
    expect(w.ledger.user(P).grants?.[D3]?.kind).toBe('doctor');
    expect(w.ledger.user(P).requests?.[D3]).toBeUndefined();
    expectDenied(w.ledger, P, { type: 'approveRequest', patient: P, body: { requester: D3 } }, 'no-pending-request');
    expectDenied(w.ledger, D3, { type: 'requestAccess', patient: P, body: {} }, 'already-granted');
  });

  it('grants only go to active staff, once', () => {
    expectDenied(w.ledger, P, { type: 'grantAccess', patient: P, body: { grantee: P2 } }, 'grantee-not-staff');
    expectDenied(w.ledger, P, { type: 'grantAccess', patient: P, body: { grantee: ADMIN_A } }, 'grantee-not-staff');
    expectDenied(w.ledger, P, { type: 'grantAccess', patient: P, body: { grantee: 'nobody' } }, 'grantee-not-staff');
    expectDenied(w.ledger, P2, { type: 'grantAccess', patient: P2, body: { grantee: DX } }, 'grantee-inactive');
    expectDenied(w.ledger, P, { type: 'grantAccess', patient: P, body: { grantee: D1 } }, 'already-granted');
  });

  it('requests go to patients only', () => {
    expectDenied(w.ledger, D2, { type: 'requestAccess', patient: D1, body: {} }, 'unknown-patient');
    expectDenied(w.ledger, D2, { type: 'requestAccess', patient: 'nobody', body: {} }, 'unknown-patient');
  });

  it('a deactivated grantee keeps no access even though the grant entry remains', () => {
    expect(w.ledger.user(P).grants?.[DX]).toBeDefined();
    expectDenied(w.ledger, DX, read(w), 'deactivated');
    expect(w.ledger.recipientsFor(P)).not.toContain(DX);
  });
});

describe('appointments', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });

  it('a doctor may cancel their own appointment with the patient (no grant needed), not another doctor’s', () => {
    const withD2 = w.ledger.book(P, D2);
    // D1 holds a grant from P but the appointment is D2's.
    expectDenied(w.ledger, D1, { type: 'cancelAppointment', patient: P, body: { appointment: withD2 } }, 'role-not-allowed');
    // D2 has no grant but it is D2's appointment.
    const event = expectAllowed(w.ledger, D2, { type: 'cancelAppointment', patient: P, body: { appointment: withD2 } });
    expect(event.patient).toBe(P);
    expect(w.ledger.state.get('appointments', withD2)?.status).toBe('cancelled');
    expectDenied(w.ledger, D2, { type: 'cancelAppointment', patient: P, body: { appointment: withD2 } }, 'already-cancelled');
  });

  it('the appointment must be the named patient’s', () => {
    expectDenied(w.ledger, D1, { type: 'cancelAppointment', patient: P2, body: { appointment: w.appointment } }, 'appointment-not-found');
    expectDenied(w.ledger, P2, { type: 'cancelAppointment', patient: P2, body: { appointment: w.appointment } }, 'appointment-not-found');
    expectDenied(w.ledger, P, { type: 'cancelAppointment', patient: P, body: { appointment: 'apt-0000000000000abc' } }, 'appointment-not-found');
  });

  it('one doctor cannot be double-booked for one slot; cancelling frees the slot', () => {
    const at = w.ledger.clock + 3 * DAY;
    const first = w.ledger.book(P, D2, at);
    expectDenied(w.ledger, P2, { type: 'bookAppointment', patient: P2, body: { appointment: 'apt-0000000000000b01', doctor: D2, at } }, 'slot-taken');
    expectDenied(w.ledger, P, { type: 'bookAppointment', patient: P, body: { appointment: 'apt-0000000000000b02', doctor: D2, at } }, 'slot-taken');
    // Another doctor, or another time, is free.
    expectAllowed(w.ledger, P2, { type: 'bookAppointment', patient: P2, body: { appointment: 'apt-0000000000000b03', doctor: D3, at } });
    expectAllowed(w.ledger, P2, { type: 'bookAppointment', patient: P2, body: { appointment: 'apt-0000000000000b04', doctor: D2, at: at + 1 } });
    expectAllowed(w.ledger, P, { type: 'cancelAppointment', patient: P, body: { appointment: first } });
    expectAllowed(w.ledger, P2, { type: 'bookAppointment', patient: P2, body: { appointment: 'apt-0000000000000b05', doctor: D2, at } });
    expect(w.ledger.state.get('slots', `${D2}@${at}`)).toBe('apt-0000000000000b05');
  });

  it('bookings need an active doctor, a future time and a fresh id', () => {
    const at = w.ledger.clock + 5 * DAY;
    expectDenied(w.ledger, P, { type: 'bookAppointment', patient: P, body: { appointment: 'apt-0000000000000c01', doctor: A1, at } }, 'not-a-doctor');
    expectDenied(w.ledger, P, { type: 'bookAppointment', patient: P, body: { appointment: 'apt-0000000000000c02', doctor: DX, at } }, 'not-a-doctor');
    expectDenied(
      w.ledger,
      P,
      { type: 'bookAppointment', patient: P, body: { appointment: 'apt-0000000000000c03', doctor: D1, at: w.ledger.clock - 1 } },
      'in-the-past',
    );
    expectDenied(w.ledger, P, { type: 'bookAppointment', patient: P, body: { appointment: w.appointment, doctor: D2, at } }, 'appointment-exists');
  });
});

describe('staff administration', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });

  const invite = (user: string, code = newActivationCode(), expiresAt = w.ledger.clock + DAY): TxInput<'inviteUser'> => ({
    type: 'inviteUser',
    body: { user, role: 'doctor', expiresAt, codeKey: activationCodeKey(code, user) },
  });

  it('an admin invites into their own hospital only, whichever node receives it; the user activates with their own keys', () => {
    const code = newActivationCode();
    const event = expectAllowed(w.ledger, ADMIN_B, { ...invite('doc-b9', code), via: 'hosp-a' });
    expect(event).toMatchObject({ subject: 'doc-b9', source: 'hosp-a', agent: { user: ADMIN_B, role: 'admin', hospital: 'hosp-b' } });
    expect(w.ledger.state.get('users', 'doc-b9')).toBeUndefined();
    const r = w.ledger.apply(w.ledger.activation('doc-b9', code));
    expect(r.valid && r.event).toMatchObject({ type: 'activateUser', outcome: 'success', agent: { user: 'doc-b9', role: 'doctor', hospital: 'hosp-b' } });
    expect(w.ledger.user('doc-b9')).toMatchObject({ role: 'doctor', hospital: 'hosp-b', active: true });
    expect(w.ledger.user('doc-b9').signKey).toEqual(w.ledger.keys('doc-b9').signing.publicKey);
    // The new user can act at once with its own key.
    expectAllowed(w.ledger, 'doc-b9', { type: 'requestAccess', patient: P, body: {} });
  });

  it('an existing user id, or one with a pending invitation, cannot be invited', () => {
    for (const existing of [D2, P, ADMIN_B]) expectDenied(w.ledger, ADMIN_A, invite(existing), 'user-exists');
    // A hospital's id is its actor id on the ledger (statsAggregate): nobody may be invited under it.
    expectDenied(w.ledger, ADMIN_A, invite('hosp-b'), 'user-exists');
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new'));
    expectDenied(w.ledger, ADMIN_B, invite('doc-new'), 'invitation-pending');
  });

  it('an invitation is bounded: it must expire, within 30 days', () => {
    expectDenied(w.ledger, ADMIN_A, invite('doc-new', newActivationCode(), w.ledger.clock), 'bad-expiry');
    expectDenied(w.ledger, ADMIN_A, invite('doc-new', newActivationCode(), w.ledger.clock + 31 * DAY), 'bad-expiry');
  });

  it('no one but an active admin invites', () => {
    for (const actor of [P, D1, A1]) expectDenied(w.ledger, actor, invite('doc-new'), 'role-not-allowed');
    expectDenied(w.ledger, DX, invite('doc-new'), 'deactivated');
  });

  it('an activation with a wrong code signature is refused, and recorded as a denied attempt on that id', () => {
    const code = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', code));
    const wrong = w.ledger.apply(w.ledger.activation('doc-new', newActivationCode()));
    expect(wrong.valid && wrong.event).toMatchObject({
      outcome: 'denied',
      reason: 'bad-activation-code',
      agent: { user: 'doc-new', role: 'doctor', hospital: 'hosp-a' },
    });
    expect(w.ledger.state.get('users', 'doc-new')).toBeUndefined();
    // Replaying the denied attempt is invalid: it consumed the invitation's nonce.
    const again = w.ledger.activation('doc-new', newActivationCode());
    const first = w.ledger.apply(again);
    expect(first.valid).toBe(true);
    expect(w.ledger.apply(again)).toMatchObject({ valid: false, error: { code: 'REPLAY' } });
    // The right code still works.
    expect(w.ledger.apply(w.ledger.activation('doc-new', code))).toMatchObject({ valid: true, event: { outcome: 'success' } });
  });

  it('a code signature over other keys does not install them: front-running a seen activation fails', () => {
    const code = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', code));
    const honest = w.ledger.activation('doc-new', code);
    // An attacker copies the honest codeSig but signs with their own key (and their own encryption key).
    const attacker = w.ledger.keys('attacker');
    const stolen = w.ledger.sign(
      'doc-new',
      { type: 'activateUser', via: 'hosp-a', body: { encKey: attacker.encKey, codeSig: honest.tx.body.codeSig } },
      { signWith: attacker },
    );
    expect(w.ledger.apply(stolen)).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'bad-activation-code' } });
    expect(w.ledger.state.get('users', 'doc-new')).toBeUndefined();
    // The honest client signs again (a fresh nonce: the attempt consumed the invitation's) and succeeds.
    expect(w.ledger.apply(w.ledger.activation('doc-new', code))).toMatchObject({ valid: true, event: { outcome: 'success' } });
  });

  it('an activation signed by a key other than the one it installs is refused', () => {
    const code = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', code));
    const mine = w.ledger.keys('doc-new');
    const other = w.ledger.keys('someone-else');
    // The code signs over doc-new's keys, but the transaction is signed (key = other) by another key.
    const codeSig = signActivation(code, 'doc-new', mine.signing.publicKey, mine.encKey, w.ledger.genesisHash);
    const tx = w.ledger.sign('doc-new', { type: 'activateUser', via: 'hosp-a', body: { encKey: mine.encKey, codeSig } }, { signWith: other });
    expect(w.ledger.apply(tx)).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'bad-activation-code' } });
    // And a transaction claiming doc-new's key but signed by another is not even a valid signature.
    expect(w.ledger.state.get('users', 'doc-new')).toBeUndefined();
  });

  it('an invitation used twice is refused, whoever signs the second activation', () => {
    const code = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', code));
    expect(w.ledger.apply(w.ledger.activation('doc-new', code))).toMatchObject({ valid: true, event: { outcome: 'success' } });
    // Someone else holding the code, with their own keys.
    const second = w.ledger.apply(w.ledger.activation('doc-new', code, w.ledger.keys('thief')));
    expect(second).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'invitation-used' } });
    expect(w.ledger.user('doc-new').signKey).toEqual(w.ledger.keys('doc-new').signing.publicKey);
    // The activated user again, with their own key and a new nonce.
    expect(w.ledger.apply(w.ledger.activation('doc-new', code))).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'invitation-used' } });
    // An id with no invitation cannot be activated at all.
    expect(w.ledger.apply(w.ledger.activation('nobody-invited', code))).toMatchObject({ valid: false, error: { code: 'UNKNOWN_ACTOR' } });
  });

  it('an invitation used after its expiry is refused; the admin may then invite the id again', () => {
    const code = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', code, w.ledger.clock + DAY));
    w.ledger.clock += DAY;
    const r = w.ledger.apply(w.ledger.activation('doc-new', code));
    expect(r).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'invitation-expired' } });
    expect(w.ledger.state.get('users', 'doc-new')).toBeUndefined();
    const fresh = newActivationCode();
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new', fresh));
    expect(w.ledger.apply(w.ledger.activation('doc-new', code))).toMatchObject({ valid: true, event: { outcome: 'denied', reason: 'bad-activation-code' } });
    expect(w.ledger.apply(w.ledger.activation('doc-new', fresh))).toMatchObject({ valid: true, event: { outcome: 'success' } });
  });

  it('an invited id is reserved: a patient cannot register it before it is activated', () => {
    expectAllowed(w.ledger, ADMIN_A, invite('doc-new'));
    expect(w.ledger.submit('doc-new', { type: 'registerPatient', via: 'hosp-a', body: { encKey: w.ledger.keys('doc-new').encKey } })).toMatchObject({
      valid: false,
      error: { code: 'USER_EXISTS' },
    });
  });

  it('an admin deactivates their own hospital’s staff only', () => {
    expectDenied(w.ledger, ADMIN_B, { type: 'deactivateUser', body: { user: D1 } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_B, { type: 'deactivateUser', body: { user: A1 } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: D2 } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: P } }, 'not-own-staff'); // a patient of hosp-a
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: ADMIN_A } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: ADMIN_B } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: 'nobody' } }, 'user-not-found');
    expectDenied(w.ledger, ADMIN_A, { type: 'deactivateUser', body: { user: DX } }, 'already-inactive');
    const event = expectAllowed(w.ledger, ADMIN_B, { type: 'deactivateUser', body: { user: D2 } });
    expect(event.subject).toBe(D2);
    expect(w.ledger.user(D2).active).toBe(false);
    expectDenied(w.ledger, D2, { type: 'requestAccess', patient: P, body: {} }, 'deactivated');
  });
});

describe('audit queries', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });
  const q = (filter: TxInput<'queryAudit'>['body']['filter']): TxInput<'queryAudit'> => ({ type: 'queryAudit', body: { filter } });

  it('an admin queries their own hospital’s staff actions, with filter.hospital = own hospital', () => {
    expectAllowed(w.ledger, ADMIN_A, q({ hospital: 'hosp-a' }));
    expectAllowed(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: D1 }));
    expectAllowed(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: A1, outcome: 'denied', action: 'R' }));
    expectAllowed(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: DX })); // a deactivated member is still own staff
    expectAllowed(w.ledger, ADMIN_B, q({ hospital: 'hosp-b', user: D2 }));
  });

  it('an admin is denied any other hospital, a missing hospital filter, other users and patients’ trails', () => {
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-b' }), 'not-own-hospital');
    expectDenied(w.ledger, ADMIN_A, q({}), 'not-own-hospital');
    expectDenied(w.ledger, ADMIN_A, q({ user: D1 }), 'not-own-hospital');
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: D2 }), 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: P }), 'not-own-staff'); // a patient registered at hosp-a
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: ADMIN_B }), 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', user: 'nobody' }), 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, q({ hospital: 'hosp-a', patient: P }), 'role-not-allowed');
  });

  it('patients query their own data; granted staff the patients who granted them; nobody queries by hospital', () => {
    expectAllowed(w.ledger, P, q({ patient: P, user: D1 }));
    expectDenied(w.ledger, P, q({ patient: P2 }), 'not-own-data');
    expectDenied(w.ledger, P, q({}), 'unknown-patient');
    expectDenied(w.ledger, P, q({ patient: P, hospital: 'hosp-a' }), 'role-not-allowed');
    expectDenied(w.ledger, D1, q({ patient: P, hospital: 'hosp-a' }), 'role-not-allowed');
    expectDenied(w.ledger, D1, q({}), 'unknown-patient');
    expectDenied(w.ledger, D1, q({ patient: P2 }), 'no-grant');
    expectDenied(w.ledger, A1, q({ patient: D1 }), 'unknown-patient');
    expectDenied(w.ledger, A2, q({ patient: P, user: A2 }), 'no-grant');
  });

  it('the query event names the queried patient', () => {
    const event = expectAllowed(w.ledger, D1, q({ patient: P }));
    expect(event.patient).toBe(P);
    expect(event.action).toBe('E');
  });
});

describe('records', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });

  type Writing = 'createRecord' | 'updateRecord' | 'copyRecord' | 'attachFile' | 'replaceFile';
  const withRecipients = (w: World, type: Writing, recipients: string[]): TxInput => {
    switch (type) {
      case 'createRecord':
        return { type, patient: P, record: w.ledger.recordId(), body: { recipients } };
      case 'updateRecord':
        return { type, patient: P, record: w.record, body: { recipients, version: 2 } };
      case 'copyRecord':
        return { type, patient: P, record: w.ledger.recordId(), body: { from: w.record, recipients } };
      case 'attachFile':
        return { type, patient: P, record: w.record, body: { file: w.ledger.fileId(), recipients } };
      case 'replaceFile':
        return { type, patient: P, record: w.record, body: { file: w.file, recipients, version: 2 } };
    }
  };
  const writing: Writing[] = ['createRecord', 'updateRecord', 'copyRecord', 'attachFile', 'replaceFile'];

  describe.each(writing)('%s: recipients must be exactly the patient and the active grantees', (type) => {
    const required = [A1, D1, P].sort();
    it.each([
      ['the patient missing', [A1, D1]],
      ['a grantee missing', [P, D1]],
      ['an ungranted doctor added', [P, D1, A1, D2]],
      ['a deactivated grantee added', [P, D1, A1, DX]],
      ['a duplicate', [P, D1, A1, A1]],
      ['only the patient', [P]],
    ])('denied with %s', (_what, recipients) => {
      expectDenied(w.ledger, D1, withRecipients(w, type, recipients), 'recipients-mismatch');
    });
    it('allowed with the exact set in any order', () => {
      expect(w.ledger.recipientsFor(P)).toEqual(required);
      expectAllowed(w.ledger, D1, withRecipients(w, type, [P, A1, D1]));
    });
  });

  it('a deleted record cannot be read, updated, copied, deleted or given files', () => {
    expectAllowed(w.ledger, D1, { type: 'deleteRecord', patient: P, record: w.record, body: {} });
    expect(w.ledger.state.get('records', w.record)).toMatchObject({ deleted: true });
    const recipients = w.ledger.recipientsFor(P);
    expectDenied(w.ledger, P, { type: 'readRecord', patient: P, record: w.record, body: {} }, 'record-deleted');
    expectDenied(w.ledger, D1, { type: 'readRecord', patient: P, record: w.record, body: { version: 1 } }, 'record-deleted');
    expectDenied(w.ledger, A1, { type: 'readRecord', patient: P, record: w.record, body: {} }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'updateRecord', patient: P, record: w.record, body: { recipients, version: 2 } }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'copyRecord', patient: P, record: w.ledger.recordId(), body: { from: w.record, recipients } }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'deleteRecord', patient: P, record: w.record, body: {} }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'attachFile', patient: P, record: w.record, body: { file: w.ledger.fileId(), recipients } }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'replaceFile', patient: P, record: w.record, body: { file: w.file, recipients, version: 2 } }, 'record-deleted');
    expectDenied(w.ledger, P, { type: 'removeFile', patient: P, record: w.record, body: { file: w.file } }, 'record-deleted');
    // Its id stays taken.
    expectDenied(w.ledger, P, { type: 'createRecord', patient: P, record: w.record, body: { recipients } }, 'record-exists');
  });

  it('copyRecord sets copiedFrom and starts a new version history', () => {
    expectAllowed(w.ledger, P, { type: 'updateRecord', patient: P, record: w.record, body: { recipients: w.ledger.recipientsFor(P), version: 2 } });
    const copy = w.ledger.recordId();
    const event = expectAllowed(w.ledger, D1, {
      type: 'copyRecord',
      patient: P,
      record: copy,
      body: { from: w.record, recipients: w.ledger.recipientsFor(P) },
    });
    expect(event.record).toBe(copy);
    expect(w.ledger.state.get('records', copy)).toEqual({
      id: copy,
      patient: P,
      createdBy: D1,
      createdAt: event.recorded,
      updatedAt: event.recorded,
      version: 1,
      deleted: false,
      copiedFrom: w.record,
      files: {},
    });
    expect(w.ledger.state.get('records', w.record)?.version).toBe(2);
    expectDenied(
      w.ledger,
      D1,
      { type: 'copyRecord', patient: P, record: copy, body: { from: w.record, recipients: w.ledger.recipientsFor(P) } },
      'record-exists',
    );
  });

  it('records are bound to their patient: naming another patient finds nothing', () => {
    const other = w.ledger.createRecord(P2, P2);
    // P2 names themselves as patient but points at P's record, and the reverse.
    expectDenied(w.ledger, P2, { type: 'readRecord', patient: P2, record: w.record, body: {} }, 'record-not-found');
    expectDenied(w.ledger, P, { type: 'readRecord', patient: P, record: other, body: {} }, 'record-not-found');
    expectDenied(
      w.ledger,
      P2,
      { type: 'copyRecord', patient: P2, record: w.ledger.recordId(), body: { from: w.record, recipients: [P2] } },
      'record-not-found',
    );
    expectDenied(
      w.ledger,
      D1,
      { type: 'updateRecord', patient: P, record: other, body: { recipients: w.ledger.recipientsFor(P), version: 2 } },
      'record-not-found',
    );
    expectDenied(w.ledger, D1, { type: 'readRecord', patient: P, record: 'rec-0000000000000fff', body: {} }, 'record-not-found');
    expectDenied(w.ledger, D1, { type: 'createRecord', patient: 'nobody', record: w.ledger.recordId(), body: { recipients: ['nobody'] } }, 'unknown-patient');
    expectDenied(w.ledger, D1, { type: 'createRecord', patient: D2, record: w.ledger.recordId(), body: { recipients: [D2] } }, 'unknown-patient');
  });

  it('versions and files are checked', () => {
    expectAllowed(w.ledger, P, { type: 'readRecord', patient: P, record: w.record, body: { version: 1 } });
    expectDenied(w.ledger, P, { type: 'readRecord', patient: P, record: w.record, body: { version: 2 } }, 'version-not-found');
    expectDenied(w.ledger, P, { type: 'readRecord', patient: P, record: w.record, body: { version: 0 } }, 'version-not-found');
    const recipients = w.ledger.recipientsFor(P);
    expectDenied(w.ledger, D1, { type: 'attachFile', patient: P, record: w.record, body: { file: w.file, recipients } }, 'file-exists');
    expectDenied(
      w.ledger,
      D1,
      { type: 'replaceFile', patient: P, record: w.record, body: { file: 'file-0000000000000abc', recipients, version: 2 } },
      'file-not-found',
    );
    expectDenied(w.ledger, D1, { type: 'removeFile', patient: P, record: w.record, body: { file: 'file-0000000000000abc' } }, 'file-not-found');
  });

  it('updates and file replacements must name the next version (no lost updates)', () => {
    const recipients = w.ledger.recipientsFor(P);
    for (const version of [0, 1, 3]) {
      expectDenied(w.ledger, D1, { type: 'updateRecord', patient: P, record: w.record, body: { recipients, version } }, 'version-conflict');
      expectDenied(w.ledger, D1, { type: 'replaceFile', patient: P, record: w.record, body: { file: w.file, recipients, version } }, 'version-conflict');
    }
    expectAllowed(w.ledger, D1, { type: 'updateRecord', patient: P, record: w.record, body: { recipients, version: 2 } });
    expectAllowed(w.ledger, P, { type: 'updateRecord', patient: P, record: w.record, body: { recipients, version: 3 } });
    expect(w.ledger.state.get('records', w.record)?.version).toBe(3);
    expectDenied(w.ledger, D1, { type: 'updateRecord', patient: P, record: w.record, body: { recipients, version: 3 } }, 'version-conflict');
    expectAllowed(w.ledger, D1, { type: 'readRecord', patient: P, record: w.record, body: { version: 3 } });
    expectAllowed(w.ledger, P, { type: 'replaceFile', patient: P, record: w.record, body: { file: w.file, recipients, version: 2 } });
    expect(w.ledger.state.get('records', w.record)?.files[w.file]).toEqual({ version: 2 });
  });

  it('a removed file cannot be replaced, removed again or re-attached under its id', () => {
    const recipients = w.ledger.recipientsFor(P);
    expectAllowed(w.ledger, D1, { type: 'removeFile', patient: P, record: w.record, body: { file: w.file } });
    expectDenied(w.ledger, P, { type: 'replaceFile', patient: P, record: w.record, body: { file: w.file, recipients, version: 2 } }, 'file-not-found');
    expectDenied(w.ledger, P, { type: 'removeFile', patient: P, record: w.record, body: { file: w.file } }, 'file-not-found');
    expectDenied(w.ledger, P, { type: 'attachFile', patient: P, record: w.record, body: { file: w.file, recipients } }, 'file-exists');
    expectAllowed(w.ledger, P, { type: 'attachFile', patient: P, record: w.record, body: { file: w.ledger.fileId(), recipients } });
  });

  it('a success event carries who, what, whose, where and which block', () => {
    const tx = w.ledger.sign(D1, { type: 'readRecord', patient: P, record: w.record, via: 'hosp-b', body: {} });
    const result = w.ledger.apply(tx, { height: 42, index: 7, blockTime: tx.tx.time + 5 });
    if (!result.valid) throw result.error;
    expect(result.event).toEqual({
      tx: tx.idHex,
      height: 42,
      index: 7,
      type: 'readRecord',
      action: 'R',
      recorded: tx.tx.time,
      outcome: 'success',
      agent: { user: D1, role: 'doctor', hospital: 'hosp-a' },
      patient: P,
      record: w.record,
      source: 'hosp-b',
    });
    expect(result.changes).toEqual([{ table: 'users', key: D1, value: { ...w.ledger.user(D1) } }]);
  });
});

describe('key rotation, revocation and recovery (issue 10)', () => {
  let w: World;
  beforeEach(() => {
    w = buildWorld();
  });

  /** A rotateKeys input of `user` to the keys of `next`, the consent made by `consentBy` (default: the new key) over `oldKey`. */
  const rotation = (
    user: string,
    next: string,
    opts: { consentBy?: string; consentUser?: string; genesisHash?: Uint8Array; oldKey?: Uint8Array } = {},
  ): TxInput<'rotateKeys'> => {
    const n = w.ledger.keys(next);
    const signer = w.ledger.keys(opts.consentBy ?? next).signer;
    const consent = signKeyConsent(
      signer,
      opts.consentUser ?? user,
      opts.oldKey ?? w.ledger.user(user).signKey,
      n.encKey,
      opts.genesisHash ?? w.ledger.genesisHash,
    );
    return { type: 'rotateKeys', body: { signKey: n.signing.publicKey, encKey: n.encKey, consent } };
  };

  it('the current key rotates to new keys; from the next transaction the old key is refused and the new one works', () => {
    const event = expectAllowed(w.ledger, P, rotation(P, 'pat-1-v2'));
    expect(event.patient).toBe(P); // in the patient's own trail
    expect(w.ledger.user(P)).toMatchObject({
      signKey: w.ledger.keys('pat-1-v2').signing.publicKey,
      encKey: w.ledger.keys('pat-1-v2').encKey,
      keysSince: event.recorded,
    });
    expect(w.ledger.submit(P, { type: 'listRecords', patient: P, body: {} })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.submit(P, { type: 'listRecords', patient: P, body: {} }, { signWith: 'pat-1-v2' })).toMatchObject({
      valid: true,
      event: { outcome: 'success' },
    });
    // Grants, requests and records are the same user's: nothing but the keys changed.
    expect(Object.keys(w.ledger.user(P).grants ?? {}).sort()).toEqual([A1, AX, D1, DX].sort());
  });

  it('staff rotate their own keys too and stay recipients of the patients who granted them', () => {
    expectAllowed(w.ledger, D1, rotation(D1, 'doc-1-v2'));
    expect(w.ledger.recipientsFor(P)).toContain(D1);
    expect(w.ledger.submit(D1, { type: 'listRecords', patient: P, body: {} })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.submit(D1, { type: 'listRecords', patient: P, body: {} }, { signWith: 'doc-1-v2' })).toMatchObject({
      valid: true,
      event: { outcome: 'success' },
    });
  });

  it('a rotation signed by any key but the current one is invalid (KEY_MISMATCH), also the previous key after a rotation', () => {
    expect(w.ledger.submit(P, rotation(P, 'pat-1-v2'), { signWith: 'thief' })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expectAllowed(w.ledger, P, rotation(P, 'pat-1-v2'));
    const original = w.ledger.keys(P).signing.publicKey;
    expect(w.ledger.submit(P, rotation(P, 'pat-1-v3', { oldKey: original }))).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.user(P).signKey).toEqual(w.ledger.keys('pat-1-v2').signing.publicKey);
  });

  it('the new signing key must consent: by itself, for this user, over the current key, on this network', () => {
    expectDenied(w.ledger, P, rotation(P, 'pat-1-v2', { consentBy: 'thief' }), 'bad-key-consent');
    expectDenied(w.ledger, P, rotation(P, 'pat-1-v2', { consentUser: P2 }), 'bad-key-consent');
    expectDenied(w.ledger, P, rotation(P, 'pat-1-v2', { oldKey: w.ledger.keys('thief').signing.publicKey }), 'bad-key-consent');
    expectDenied(w.ledger, P, rotation(P, 'pat-1-v2', { genesisHash: new Uint8Array(32).fill(7) }), 'bad-key-consent');
    expect(w.ledger.user(P).signKey).toEqual(w.ledger.keys(P).signing.publicKey);
  });

  it('admins cannot rotate (their keys are in the genesis file); the same key is no rotation; deactivated users cannot', () => {
    expectDenied(w.ledger, ADMIN_A, rotation(ADMIN_A, 'admin-a-v2'), 'role-not-allowed');
    expectDenied(w.ledger, P, rotation(P, P), 'same-key');
    expectDenied(w.ledger, DX, rotation(DX, 'doc-x-v2'), 'deactivated');
  });

  it('an admin revokes a staff key: the staff member signs nothing valid and receives no new content; the grants stay', () => {
    const event = expectAllowed(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: D1 } });
    expect(event.subject).toBe(D1);
    expect(w.ledger.submit(D1, { type: 'listRecords', patient: P, body: {} })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.submit(D1, rotation(D1, 'doc-1-v2'))).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.recipientsFor(P)).toEqual([A1, P].sort());
    expect(w.ledger.user(P).grants?.[D1]).toBeDefined();
    expectDenied(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: D1 } }, 'key-already-revoked');
  });

  it('revokeStaffKey: admins of the staff member’s own hospital only, and staff only', () => {
    expectDenied(w.ledger, ADMIN_B, { type: 'revokeStaffKey', body: { user: D1 } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: D2 } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: P } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: ADMIN_B } }, 'not-own-staff');
    expectDenied(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: 'nobody' } }, 'user-not-found');
    expectDenied(w.ledger, D1, { type: 'revokeStaffKey', body: { user: A1 } }, 'role-not-allowed');
  });

  it('a revoked staff member is invited again under the same id and activates new keys, keeping grants and history', () => {
    const invite = (admin: string, role: 'doctor' | 'auditor', code: string): TxInput<'inviteUser'> => ({
      type: 'inviteUser',
      body: { user: D1, role, expiresAt: w.ledger.clock + DAY, codeKey: activationCodeKey(code, D1) },
    });
    const code = newActivationCode();
    expectDenied(w.ledger, ADMIN_A, invite(ADMIN_A, 'doctor', code), 'user-exists'); // not revoked yet
    expectAllowed(w.ledger, ADMIN_A, { type: 'revokeStaffKey', body: { user: D1 } });
    expectDenied(w.ledger, ADMIN_B, invite(ADMIN_B, 'doctor', code), 'user-exists'); // another hospital
    expectDenied(w.ledger, ADMIN_A, invite(ADMIN_A, 'auditor', code), 'role-mismatch');
    expectAllowed(w.ledger, ADMIN_A, invite(ADMIN_A, 'doctor', code));
    // The revoked key cannot be re-installed with the code.
    expect(w.ledger.apply(w.ledger.activation(D1, code, w.ledger.keys(D1)))).toMatchObject({
      valid: true,
      event: { outcome: 'denied', reason: 'revoked-key' },
    });
    const r = w.ledger.apply(w.ledger.activation(D1, code, w.ledger.keys('doc-1-v2')));
    expect(r).toMatchObject({ valid: true, event: { outcome: 'success', agent: { user: D1, role: 'doctor', hospital: 'hosp-a' } } });
    expect(w.ledger.user(D1).keyRevokedAt).toBeUndefined();
    expect(w.ledger.user(D1).signKey).toEqual(w.ledger.keys('doc-1-v2').signing.publicKey);
    expect(w.ledger.user(P).grants?.[D1]).toBeDefined();
    expect(w.ledger.recipientsFor(P)).toContain(D1);
    expect(w.ledger.submit(D1, { type: 'listRecords', patient: P, body: {} }, { signWith: 'doc-1-v2' })).toMatchObject({
      valid: true,
      event: { outcome: 'success' },
    });
    expect(w.ledger.submit(D1, { type: 'listRecords', patient: P, body: {} })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    // The invitation is used: a second activation is refused.
    expect(w.ledger.apply(w.ledger.activation(D1, code, w.ledger.keys('doc-1-v3')))).toMatchObject({
      valid: true,
      event: { outcome: 'denied', reason: 'invitation-used' },
    });
  });

  it('the home hospital’s admin installs a patient’s new keys (audited in the patient’s trail); the old key is refused', () => {
    const n = w.ledger.keys('pat-1-new');
    const input: TxInput<'recoverPatientKeys'> = {
      type: 'recoverPatientKeys',
      patient: P,
      body: { signKey: n.signing.publicKey, encKey: n.encKey, ticket: 'desk-42' },
    };
    expectDenied(w.ledger, ADMIN_B, input, 'not-home-hospital');
    expectDenied(w.ledger, D1, input, 'role-not-allowed');
    expectDenied(w.ledger, P, input, 'role-not-allowed');
    expectDenied(w.ledger, ADMIN_A, { ...input, patient: D1 }, 'unknown-patient');
    expectDenied(w.ledger, ADMIN_A, { ...input, body: { ...input.body, signKey: w.ledger.keys(P).signing.publicKey } }, 'same-key');
    const event = expectAllowed(w.ledger, ADMIN_A, input);
    expect(event.patient).toBe(P);
    expect(w.ledger.submit(P, { type: 'listRecords', patient: P, body: {} })).toMatchObject({ valid: false, error: { code: 'KEY_MISMATCH' } });
    expect(w.ledger.submit(P, { type: 'listRecords', patient: P, body: {} }, { signWith: 'pat-1-new' })).toMatchObject({
      valid: true,
      event: { outcome: 'success' },
    });
    expectAllowed(w.ledger, ADMIN_B, {
      type: 'recoverPatientKeys',
      patient: P2,
      body: { signKey: w.ledger.keys('pat-2-new').signing.publicKey, encKey: w.ledger.keys('pat-2-new').encKey, ticket: 'desk-43' },
    });
  });
});
