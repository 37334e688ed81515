import { z } from 'zod';
import { appointmentIdSchema, bytes, fileIdSchema, hospitalIdSchema, recordIdSchema, staffRoleSchema, uintSchema, userIdSchema } from '../ids.js';
import { batchLabelSchema } from '../stats/batches.js';
import { measureSchema, statSchema } from '../stats/measures.js';

/**
 * Transaction wire format (PROTOCOL.md §2.2). A transaction is the signed statement of one user action; its id is
 * SHA-256 of the canonical encoding of the unsigned part. Bodies are strict: unknown fields are malformed.
 */

const recipients = z.array(userIdSchema).min(1).max(256);
const empty = z.strictObject({});

export const auditFilterSchema = z.strictObject({
  patient: userIdSchema.optional(),
  user: userIdSchema.optional(),
  record: recordIdSchema.optional(),
  hospital: hospitalIdSchema.optional(),
  action: z.enum(['C', 'R', 'U', 'D', 'E']).optional(),
  outcome: z.enum(['success', 'denied']).optional(),
  from: uintSchema.optional(),
  to: uintSchema.optional(),
});
export type AuditFilter = z.infer<typeof auditFilterSchema>;

/**
 * One Prio3 report of a statsReport (issue 13): its 16-byte nonce, the public share, and one input share per
 * hospital in genesis order, each sealed to that hospital's aggregatorKey (records/stats/sealing.ts).
 */
const prio3ReportSchema = z.strictObject({
  nonce: bytes(16),
  publicShare: bytes(),
  shares: z.array(bytes()).min(2).max(100),
});
const jobIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'job: a query transaction id (64 hex digits)');

/** Per-type body schema, and which top-level fields the type needs. */
export const txKinds = {
  registerPatient: { body: z.strictObject({ encKey: bytes(32) }), patient: false, record: false, payload: false },
  /**
   * An admin invites a doctor or auditor (issue 10): the id and role, an expiry, and the public key derived
   * from the one-time activation code (records/activation.ts). No keys of the new user are involved.
   */
  inviteUser: {
    body: z.strictObject({ user: userIdSchema, role: staffRoleSchema, expiresAt: uintSchema, codeKey: bytes(32) }),
    patient: false,
    record: false,
    payload: false,
  },
  /**
   * The invited user activates the account: actor = the new user, signed by the new signing key (`key`),
   * with the new encryption key and the code-derived key's signature over both (`codeSig`).
   */
  activateUser: { body: z.strictObject({ encKey: bytes(32), codeSig: bytes(64) }), patient: false, record: false, payload: false },
  deactivateUser: { body: z.strictObject({ user: userIdSchema }), patient: false, record: false, payload: false },
  /**
   * Key rotation (issue 10): actor = the user, signed by the CURRENT key; the new keys, and the new signing
   * key's `consent` (records/rotation.ts). The payload re-wraps the data keys the user can open for the new
   * encryption key ({blob → wrapped key}, like a grant payload with the user as grantee).
   */
  rotateKeys: { body: z.strictObject({ signKey: bytes(32), encKey: bytes(32), consent: bytes(64) }), patient: false, record: false, payload: true },
  /** An admin revokes a (compromised) key of a doctor or auditor of their hospital; the id may be invited again. */
  revokeStaffKey: { body: z.strictObject({ user: userIdSchema }), patient: false, record: false, payload: false },
  /**
   * The patient's home hospital's admin installs new keys the patient brought to the desk after an identity
   * check (`ticket`: the desk's reference). Data wrapped for the lost encryption key stays unreadable to the patient.
   */
  recoverPatientKeys: {
    body: z.strictObject({ signKey: bytes(32), encKey: bytes(32), ticket: z.string().min(1).max(200) }),
    patient: true,
    record: false,
    payload: false,
  },
  createRecord: { body: z.strictObject({ recipients }), patient: true, record: true, payload: true },
  updateRecord: { body: z.strictObject({ recipients, version: uintSchema }), patient: true, record: true, payload: true },
  copyRecord: { body: z.strictObject({ from: recordIdSchema, recipients }), patient: true, record: true, payload: true },
  deleteRecord: { body: empty, patient: true, record: true, payload: false },
  readRecord: { body: z.strictObject({ version: uintSchema.optional() }), patient: true, record: true, payload: false },
  listRecords: { body: empty, patient: true, record: false, payload: false },
  attachFile: { body: z.strictObject({ file: fileIdSchema, recipients }), patient: true, record: true, payload: true },
  replaceFile: { body: z.strictObject({ file: fileIdSchema, recipients, version: uintSchema }), patient: true, record: true, payload: true },
  removeFile: { body: z.strictObject({ file: fileIdSchema }), patient: true, record: true, payload: false },
  grantAccess: { body: z.strictObject({ grantee: userIdSchema }), patient: true, record: false, payload: true },
  revokeAccess: { body: z.strictObject({ grantee: userIdSchema }), patient: true, record: false, payload: false },
  requestAccess: { body: empty, patient: true, record: false, payload: false },
  approveRequest: { body: z.strictObject({ requester: userIdSchema }), patient: true, record: false, payload: true },
  denyRequest: { body: z.strictObject({ requester: userIdSchema }), patient: true, record: false, payload: false },
  bookAppointment: {
    body: z.strictObject({ appointment: appointmentIdSchema, doctor: userIdSchema, at: uintSchema }),
    patient: true,
    record: false,
    payload: false,
  },
  cancelAppointment: { body: z.strictObject({ appointment: appointmentIdSchema }), patient: true, record: false, payload: false },
  queryAudit: {
    body: z.strictObject({ filter: auditFilterSchema, limit: z.number().int().min(1).max(500).optional(), cursor: z.string().max(64).optional() }),
    patient: false,
    record: false,
    payload: false,
  },
  /** Issue 13: the patient opts in to (or out of) contributing vitals to private statistics. patient = actor. */
  statsConsent: { body: z.strictObject({ contribute: z.boolean() }), patient: true, record: false, payload: false },
  /**
   * One measure of one record version, as one Prio3Histogram report (one bucket per stored value) whose input
   * shares are sealed per hospital. `batch` is the label of the batch of the transaction's time. patient = actor.
   */
  statsReport: {
    body: z.strictObject({
      version: uintSchema,
      measure: measureSchema,
      batch: batchLabelSchema,
      reports: z.strictObject({ histogram: prio3ReportSchema }),
    }),
    patient: true,
    record: true,
    payload: false,
  },
  /** An auditor asks for one statistic of one measure over one closed batch. */
  statsQuery: { body: z.strictObject({ measure: measureSchema, stat: statSchema, batch: batchLabelSchema }), patient: false, record: false, payload: false },
  /**
   * A hospital's aggregate share for a job: actor = the hospital id, signed by its validator key. `digest` is
   * SHA-256 over the sorted ids (hex, newline-joined) of the reports it used.
   */
  statsAggregate: {
    body: z.strictObject({ job: jobIdSchema, share: bytes(), used: uintSchema, dropped: uintSchema, digest: bytes(32) }),
    patient: false,
    record: false,
    payload: false,
  },
} as const;

export type TxType = keyof typeof txKinds;
export const txTypes = Object.keys(txKinds) as TxType[];
export type TxBody<T extends TxType> = z.infer<(typeof txKinds)[T]['body']>;

export const unsignedTxSchema = z.strictObject({
  v: z.literal(1),
  type: z.enum(txTypes as [TxType, ...TxType[]]),
  actor: userIdSchema,
  /** The signer's Ed25519 public key: signatures verify without state, state checks it is the actor's key. */
  key: bytes(32),
  /** The hospital whose node received the transaction (the audit event's `source`). */
  via: hospitalIdSchema,
  nonce: uintSchema,
  time: uintSchema,
  patient: userIdSchema.optional(),
  record: recordIdSchema.optional(),
  /** SHA-256 of the off-chain payload (ciphertext and wrapped keys), which deletion can purge. */
  payload: bytes(32).optional(),
  body: z.record(z.string(), z.unknown()),
});

export type UnsignedTxBase = z.infer<typeof unsignedTxSchema>;
export type UnsignedTx<T extends TxType = TxType> = Omit<UnsignedTxBase, 'type' | 'body'> & { type: T; body: TxBody<T> };

export const signedTxSchema = z.strictObject({ tx: z.unknown(), sig: bytes(64) });

/** A decoded, structurally valid and signature-checked transaction. */
export interface Tx<T extends TxType = TxType> {
  readonly id: Uint8Array;
  readonly idHex: string;
  readonly tx: UnsignedTx<T>;
  readonly sig: Uint8Array;
  /** Canonical bytes of `{tx, sig}`: the RFC 6962 Merkle leaf of the block. */
  readonly bytes: Uint8Array;
}

export const MAX_TX_BYTES = 16 * 1024;
export const MAX_PAYLOAD_BYTES = 2 * 1024 * 1024;
