import { bytesEqual, fromBase64 } from '../records/crypto/bytes.js';
import { createSigner, type Signer } from '../records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../records/encoding.js';
import { blobId, openBlob, rewrapForGrantee, sealBlob, type Recipient, type WrappedKey } from '../records/envelope.js';
import { MedLedgerError } from '../records/errors.js';
import { newAppointmentId, newFileId, newRecordId, type StaffRole } from '../records/ids.js';
import { fileContentSchema, recordContentSchema, type FileContent, type RecordContent } from '../records/content.js';
import type { UserKeys } from '../records/keystore.js';
import type { RecordMeta } from '../records/state/types.js';
import { signTx } from '../records/tx/codec.js';
import type { AuditFilter, TxBody, TxType, UnsignedTx } from '../records/tx/types.js';
import type { AuditEvent } from '../records/audit.js';
import type { Overview, SubmitTxResponse, WireBlob, WireWrappedKey } from '../api/contract.js';
import { ApiClient, ApiError } from './apiClient.js';
import { RecipientKeyVerifier, type GenesisAnchor } from './recipientKeys.js';
import { signKeyConsent } from '../records/rotation.js';
import { queryStats, reportVitals, type StatsAnswer, type StatsQuery, type StatsWaitOptions } from './stats.js';

/** Strictly increasing nonces per user and process: time in microseconds, bumped on collision. */
class NonceSource {
  private last = 0;
  next(): number {
    this.last = Math.max(Date.now() * 1000, this.last + 1);
    return this.last;
  }
}

export interface DecryptedRecord {
  meta: RecordMeta;
  content?: RecordContent;
  files: { file: string; version: number; content?: FileContent; error?: string }[];
  error?: string;
  /** The node API this answer came through. */
  via?: string;
  /**
   * With fallback nodes: the reads whose content could not be read, each a separate audited read, and why —
   * the ones before this answer, or, when no node gave a readable answer, the ones after it (this is the first).
   */
  attempts?: { api: string; tx?: string; error: string }[];
}

/** Whether the content and every file of a read record could be decrypted here. */
export function fullyReadable(r: DecryptedRecord): boolean {
  return r.error === undefined && r.files.every((f) => f.error === undefined);
}

/** The outcome of one audited action, as the user sees it. */
export interface ActionOutcome<T = undefined> {
  id: string;
  event?: AuditEvent;
  /** Present when the action was refused: the stable reason code on the ledger. */
  denied?: string;
  value?: T;
  /** The height of the block that made it final. */
  height?: number;
}

const fromWireKey = (k: WireWrappedKey): WrappedKey => ({ epk: fromBase64(k.epk), w: fromBase64(k.w) });

export interface SessionOptions {
  /** The genesis file recipients' keys are checked against; without it, the node's (see recipientKeys.ts). */
  genesis?: GenesisAnchor | undefined;
  /**
   * Other nodes' APIs, in order: when a record's content or a file cannot be read through this node (it does
   * not decrypt, or the node no longer stores it), readRecord reads it again through the next one — a new
   * audited read, signed for that node — before it reports.
   */
  fallbackApis?: string[] | undefined;
  /**
   * Told when something beside the user's action failed without failing it (a statistics report): one
   * sentence, never a value. Default: a line on stderr.
   */
  onWarning?: ((message: string) => void) | undefined;
}

/**
 * A signed-in user talking to one node: builds and signs transactions, encrypts record contents for the
 * right recipients before they leave this process, and decrypts what the node returns. Keys and
 * plaintext stay here; the node only ever receives signatures and ciphertext.
 */
export class Session {
  readonly signer: Signer;
  /** Checks every key this session encrypts for against the chain (issue 9), and caches what it proved. */
  readonly recipientKeys: RecipientKeyVerifier;
  /** Shared with the sessions of fallback nodes: one user's nonces only ever grow. */
  private nonces = new NonceSource();
  private readonly fallbacks = new Map<string, Promise<Session>>();
  /** See SessionOptions.onWarning; the TUI sets its own (a line on stderr would tear its screen). */
  onWarning: (message: string) => void;

  constructor(
    readonly api: ApiClient,
    readonly keys: UserKeys,
    /** The hospital of the node this session talks to (the `via` of its transactions). */
    readonly hospital: string,
    private readonly options: SessionOptions = {},
  ) {
    this.signer = createSigner(keys.signSecret);
    this.recipientKeys = new RecipientKeyVerifier(api, options.genesis);
    this.onWarning = options.onWarning ?? ((message) => void process.stderr.write(`warning: ${message}\n`));
    // Transactions and view requests are signed for the network of this genesis (issue 9): a pinned file
    // binds them to the network the user means even if the node lies; otherwise the node's genesis is used
    // (ApiClient.identify checks it is the one the node states, and explains what that does not cover).
    if (options.genesis?.pinned) api.pinGenesis(options.genesis.genesis);
  }

  static async connect(apiUrl: string, keys: UserKeys, options: SessionOptions = {}): Promise<Session> {
    const api = new ApiClient(apiUrl);
    const status = await api.status();
    return new Session(api, keys, status.hospital, options);
  }

  get userId(): string {
    return this.keys.userId;
  }

  private me() {
    if (!this.keys.encSecret || !this.keys.encPublic) throw new MedLedgerError('FORBIDDEN', `${this.userId} has no encryption key`);
    return { id: this.userId, secretKey: this.keys.encSecret, publicKey: this.keys.encPublic };
  }

  /** Signs and submits one transaction, waiting for it to be final. */
  async act<T extends TxType>(
    type: T,
    fields: { patient?: string; record?: string; body: TxBody<T> },
    payload?: { bytes: Uint8Array; hash: Uint8Array },
    /** The transaction's time, when its body depends on it (a statsReport names the batch of its time). */
    time?: number,
  ): Promise<SubmitTxResponse> {
    try {
      return await this.actOnce(type, fields, payload, time);
    } catch (err) {
      // Another session of the same user (another computer, another process) took this nonce first: nonces come
      // from the clock, so sign again with a fresh one (the node refuses a second pending tx per nonce).
      if (!(err instanceof ApiError && err.code === 'CONFLICT' && /already has pending transaction/.test(err.message))) throw err;
      return this.actOnce(type, fields, payload, time);
    }
  }

  private async actOnce<T extends TxType>(
    type: T,
    fields: { patient?: string; record?: string; body: TxBody<T> },
    payload?: { bytes: Uint8Array; hash: Uint8Array },
    time = Date.now(),
  ): Promise<SubmitTxResponse> {
    const unsigned = {
      v: 1,
      type,
      actor: this.userId,
      key: this.signer.publicKey,
      via: this.hospital,
      nonce: this.nonces.next(),
      time,
      ...(fields.patient ? { patient: fields.patient } : {}),
      ...(fields.record ? { record: fields.record } : {}),
      ...(payload ? { payload: payload.hash } : {}),
      body: fields.body,
    } as UnsignedTx<T>;
    const tx = signTx(unsigned, this.signer, (await this.api.identify()).genesisHash);
    const res = await this.api.submit(tx, payload?.bytes);
    if (res.status !== 'committed') throw new MedLedgerError('UNAVAILABLE', `transaction ${res.id.slice(0, 12)} is not final yet; it may still be committed`);
    return res;
  }

  /**
   * An audited read or query. The node hands its answer only to the request that submitted it; if that answer
   * was lost (a dropped connection retried by the client finds the transaction already pending or final), the
   * read is asked again as a new transaction, which is audited like the first.
   */
  private async ask<T extends 'readRecord' | 'listRecords' | 'queryAudit'>(
    type: T,
    fields: { patient?: string; record?: string; body: TxBody<T> },
  ): Promise<SubmitTxResponse> {
    const res = await this.act(type, fields);
    if (res.event?.outcome !== 'success' || res.result) return res;
    return this.act(type, fields);
  }

  private outcome<T>(res: SubmitTxResponse, value?: T): ActionOutcome<T> {
    const denied = res.event?.outcome === 'denied' ? (res.event.reason ?? 'denied') : undefined;
    return {
      id: res.id,
      ...(res.event ? { event: res.event } : {}),
      ...(denied ? { denied } : {}),
      ...(value !== undefined && !denied ? { value } : {}),
      ...(res.height !== undefined ? { height: res.height } : {}),
    };
  }

  /**
   * Waits until this session's node has finalized `height`: an action made final through another
   * hospital's node (a grant, an enrolment) is visible here only once this replica has that block.
   */
  async waitForHeight(height: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.api.status()).height < height) {
      if (Date.now() > deadline)
        throw new MedLedgerError('UNAVAILABLE', `the node at ${this.api.base} has not reached height ${height} in ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // ---- registration and staff ----------------------------------------------------------------

  async registerPatient(): Promise<ActionOutcome> {
    if (!this.keys.encPublic) throw new MedLedgerError('MALFORMED', 'a patient needs an encryption key');
    return this.outcome(await this.act('registerPatient', { body: { encKey: this.keys.encPublic } }));
  }

  /** Admin: invites a doctor or auditor; only the code's public key goes on the ledger. */
  async invite(user: string, role: StaffRole, codeKey: Uint8Array, expiresAt: number): Promise<ActionOutcome> {
    return this.outcome(await this.act('inviteUser', { body: { user, role, expiresAt, codeKey } }));
  }

  /** The invited user, with their own new keys: the activation, signed by this session's key. */
  async activate(codeSig: Uint8Array): Promise<ActionOutcome> {
    if (!this.keys.encPublic) throw new MedLedgerError('MALFORMED', 'a staff member needs an encryption key');
    return this.outcome(await this.act('activateUser', { body: { encKey: this.keys.encPublic, codeSig } }));
  }

  /**
   * Key rotation (issue 10): every data key this user can open (a patient's own blobs; a staff member's, of
   * each patient who granted them) re-wrapped for `next`'s encryption key, the new signing key's consent, and
   * `rotateKeys` signed by this session's (current) key. Content sealed for the old key after the keys were
   * listed and before the rotation is final stays wrapped for the old key only.
   */
  async rotateKeys(next: UserKeys): Promise<ActionOutcome<{ rewrapped: number }>> {
    if (!next.encPublic) throw new MedLedgerError('MALFORMED', 'the new keys need an encryption key');
    const patients = this.keys.role === 'patient' ? [this.userId] : ((await this.overview()).patients ?? []).map((p) => p.patient);
    const blobs: { blob: string; key: WrappedKey }[] = [];
    for (const patient of patients) {
      const { keys } = await this.api.patientKeys(this.userId, this.signer, patient);
      for (const k of keys) blobs.push({ blob: k.blob, key: fromWireKey(k.key) });
    }
    const sealed = rewrapForGrantee(blobs, this.me(), { id: this.userId, encKey: next.encPublic });
    const consent = signKeyConsent(createSigner(next.signSecret), this.userId, this.signer.publicKey, next.encPublic, (await this.api.identify()).genesisHash);
    const res = await this.act(
      'rotateKeys',
      { body: { signKey: next.signPublic, encKey: next.encPublic, consent } },
      { bytes: sealed.payload, hash: sealed.hash },
    );
    return this.outcome(res, { rewrapped: blobs.length });
  }

  /** Admin: revokes a (compromised) key of a doctor or auditor of this hospital; they are then invited again. */
  async revokeStaffKey(user: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('revokeStaffKey', { body: { user } }));
  }

  /** Admin of the patient's home hospital: installs the keys the patient brought to the desk (identity checked). */
  async recoverPatientKeys(patient: string, signKey: Uint8Array, encKey: Uint8Array, ticket: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('recoverPatientKeys', { patient, body: { signKey, encKey, ticket } }));
  }

  async deactivate(user: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('deactivateUser', { body: { user } }));
  }

  overview(): Promise<Overview> {
    return this.api.me(this.userId, this.signer);
  }

  // ---- records -------------------------------------------------------------------------------

  /** The node names the recipients; each one's key is checked against the chain before anything is sealed. */
  private async recipients(patient: string): Promise<Recipient[]> {
    const { recipients } = await this.api.recipients(this.userId, this.signer, patient);
    return this.recipientKeys.recipients(patient, recipients);
  }

  /**
   * Seals new content for exactly the patient's current recipients and submits it. When a grant or revoke
   * became final in between, the ledger denies it (`recipients-mismatch`, recorded like any denial) and
   * this node has by then executed that change: seal again for the new set, up to three attempts.
   */
  private async actSealed<T extends TxType>(
    type: T,
    target: { patient: string; record: string },
    blob: string,
    plaintext: Uint8Array,
    body: (recipients: string[]) => TxBody<T>,
  ): Promise<SubmitTxResponse> {
    for (let attempt = 1; ; attempt++) {
      const recipients = await this.recipients(target.patient);
      const sealed = sealBlob(plaintext, blob, recipients);
      const res = await this.act(type, { ...target, body: body(recipients.map((r) => r.id)) }, { bytes: sealed.payload, hash: sealed.hash });
      if (res.event?.reason !== 'recipients-mismatch' || attempt === 3) return res;
    }
  }

  /** A patient's own new record with vitals also goes to private statistics when they contribute (stats.ts). */
  async createRecord(patient: string, content: RecordContent): Promise<ActionOutcome<string>> {
    const checked = recordContentSchema.parse(content);
    const record = newRecordId();
    const outcome = this.outcome(
      await this.actSealed('createRecord', { patient, record }, blobId(record, 'content', 1), encodeCanonical(checked), (recipients) => ({ recipients })),
      record,
    );
    if (!outcome.denied) await reportVitals(this, { patient, record, version: 1, content: checked });
    return outcome;
  }

  async updateRecord(patient: string, record: string, currentVersion: number, content: RecordContent): Promise<ActionOutcome> {
    const checked = recordContentSchema.parse(content);
    const version = currentVersion + 1;
    const outcome = this.outcome<undefined>(
      await this.actSealed('updateRecord', { patient, record }, blobId(record, 'content', version), encodeCanonical(checked), (recipients) => ({
        recipients,
        version,
      })),
    );
    if (!outcome.denied) await reportVitals(this, { patient, record, version, content: checked });
    return outcome;
  }

  /** Copies a record's current content into a new record of the same patient (read, then re-encrypt). */
  async copyRecord(patient: string, from: string): Promise<ActionOutcome<string>> {
    const source = await this.readRecord(patient, from);
    if (source.denied || !source.value?.content)
      return { id: source.id, ...(source.event ? { event: source.event } : {}), denied: source.denied ?? 'content-unavailable' };
    const record = newRecordId();
    return this.outcome(
      await this.actSealed('copyRecord', { patient, record }, blobId(record, 'content', 1), encodeCanonical(source.value.content), (recipients) => ({
        from,
        recipients,
      })),
      record,
    );
  }

  async deleteRecord(patient: string, record: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('deleteRecord', { patient, record, body: {} }));
  }

  async listRecords(patient: string): Promise<ActionOutcome<RecordMeta[]>> {
    const res = await this.ask('listRecords', { patient, body: {} });
    return this.outcome(res, res.result?.kind === 'records' ? res.result.records : undefined);
  }

  /**
   * An audited read of a record, decrypted here. If the content or a file cannot be read through this node
   * and fallback nodes are configured (SessionOptions.fallbackApis), the record is read again through each in
   * turn until one answer is fully readable; that answer is returned, with the attempts before it. If none
   * is, the first answer is returned, with the later attempts.
   */
  async readRecord(patient: string, record: string, version?: number): Promise<ActionOutcome<DecryptedRecord>> {
    const first = await this.readRecordHere(patient, record, version);
    const fallbacks = this.options.fallbackApis ?? [];
    if (!first.value || fullyReadable(first.value) || fallbacks.length === 0) return first;
    const attempts: NonNullable<DecryptedRecord['attempts']> = [{ api: this.api.base, tx: first.id, error: unreadable(first.value) }];
    for (const url of fallbacks) {
      let next: ActionOutcome<DecryptedRecord>;
      try {
        next = await (await this.fallback(url)).readRecordHere(patient, record, version);
      } catch (err) {
        attempts.push({ api: url, error: (err as Error).message });
        continue;
      }
      if (next.value && fullyReadable(next.value)) return { ...next, value: { ...next.value, attempts } };
      attempts.push({ api: url, tx: next.id, error: next.denied ? `denied: ${next.denied}` : next.value ? unreadable(next.value) : 'no record in the answer' });
    }
    return { ...first, value: { ...first.value, attempts: attempts.slice(1) } };
  }

  /** The same user talking to another node of the same network (for fallback reads). */
  private fallback(url: string): Promise<Session> {
    let s = this.fallbacks.get(url);
    if (!s) {
      s = (async () => {
        const api = new ApiClient(url);
        const status = await api.status();
        const other = new Session(api, this.keys, status.hospital, { genesis: this.options.genesis });
        other.nonces = this.nonces;
        // Unpinned, the fallback must at least be on this node's network: the user's signatures are bound to it.
        const [mine, theirs] = await Promise.all([this.api.identify(), api.identify()]);
        if (!bytesEqual(mine.genesisHash, theirs.genesisHash))
          throw new MedLedgerError('FORBIDDEN', `the node at ${url} is on another network (${theirs.network}) than ${this.api.base}`);
        return other;
      })();
      s.catch(() => this.fallbacks.delete(url));
      this.fallbacks.set(url, s);
    }
    return s;
  }

  private async readRecordHere(patient: string, record: string, version?: number): Promise<ActionOutcome<DecryptedRecord>> {
    const res = await this.ask('readRecord', { patient, record, body: version !== undefined ? { version } : {} });
    if (res.result?.kind !== 'record') return this.outcome(res);
    const r = res.result;
    const decrypted: DecryptedRecord = { meta: r.record, files: [], via: this.api.base };
    if (r.content) {
      try {
        decrypted.content = recordContentSchema.parse(decodeCanonical(this.open(r.content)));
      } catch (err) {
        decrypted.error = (err as Error).message;
      }
    } else decrypted.error = 'content no longer stored on this node';
    for (const f of r.files) {
      try {
        decrypted.files.push({ file: f.file, version: f.version, content: fileContentSchema.parse(decodeCanonical(this.open(f))) });
      } catch (err) {
        decrypted.files.push({ file: f.file, version: f.version, error: (err as Error).message });
      }
    }
    return this.outcome(res, decrypted);
  }

  private open(blob: WireBlob): Uint8Array {
    if (!blob.key) throw new MedLedgerError('FORBIDDEN', 'no data key was shared with you for this version');
    return openBlob({ n: fromBase64(blob.n), c: fromBase64(blob.c) }, fromWireKey(blob.key), blob.blob, this.me());
  }

  async attachFile(patient: string, record: string, file: FileContent): Promise<ActionOutcome<string>> {
    const checked = fileContentSchema.parse(file);
    const fileId = newFileId();
    return this.outcome(
      await this.actSealed('attachFile', { patient, record }, blobId(record, fileId, 1), encodeCanonical(checked), (recipients) => ({
        file: fileId,
        recipients,
      })),
      fileId,
    );
  }

  async replaceFile(patient: string, record: string, fileId: string, currentVersion: number, file: FileContent): Promise<ActionOutcome> {
    const checked = fileContentSchema.parse(file);
    const version = currentVersion + 1;
    return this.outcome(
      await this.actSealed('replaceFile', { patient, record }, blobId(record, fileId, version), encodeCanonical(checked), (recipients) => ({
        file: fileId,
        recipients,
        version,
      })),
    );
  }

  async removeFile(patient: string, record: string, fileId: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('removeFile', { patient, record, body: { file: fileId } }));
  }

  // ---- access --------------------------------------------------------------------------------

  /** Wraps the data keys of all my records for the grantee (PROTOCOL.md §4.5), then grants. */
  private async rewrapPayload(grantee: string) {
    const target = await this.recipientKeys.verify(await this.api.user(grantee));
    if (target.user !== grantee) throw new MedLedgerError('KEY_MISMATCH', `asked the node for ${grantee}, it answered with ${target.user}`);
    const { keys } = await this.api.patientKeys(this.userId, this.signer, this.userId);
    const sealed = rewrapForGrantee(
      keys.map((k) => ({ blob: k.blob, key: fromWireKey(k.key) })),
      this.me(),
      { id: grantee, encKey: target.encKey },
    );
    return { bytes: sealed.payload, hash: sealed.hash };
  }

  async grant(grantee: string): Promise<ActionOutcome> {
    const payload = await this.rewrapPayload(grantee);
    return this.outcome(await this.act('grantAccess', { patient: this.userId, body: { grantee } }, payload));
  }

  async revoke(grantee: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('revokeAccess', { patient: this.userId, body: { grantee } }));
  }

  async requestAccess(patient: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('requestAccess', { patient, body: {} }));
  }

  async approveRequest(requester: string): Promise<ActionOutcome> {
    const payload = await this.rewrapPayload(requester);
    return this.outcome(await this.act('approveRequest', { patient: this.userId, body: { requester } }, payload));
  }

  async denyRequest(requester: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('denyRequest', { patient: this.userId, body: { requester } }));
  }

  // ---- appointments --------------------------------------------------------------------------

  async book(doctor: string, at: number): Promise<ActionOutcome<string>> {
    const appointment = newAppointmentId();
    return this.outcome(await this.act('bookAppointment', { patient: this.userId, body: { appointment, doctor, at } }), appointment);
  }

  async cancel(patient: string, appointment: string): Promise<ActionOutcome> {
    return this.outcome(await this.act('cancelAppointment', { patient, body: { appointment } }));
  }

  // ---- private statistics (issue 13) ---------------------------------------------------------

  /** Patient: opts in to (or out of) contributing vitals of their future records to anonymous statistics. */
  async setStatsConsent(contribute: boolean): Promise<ActionOutcome> {
    return this.outcome(await this.act('statsConsent', { patient: this.userId, body: { contribute } }));
  }

  /** Auditor: one statistic of one measure over one closed batch (stats.ts: query, wait, combine here). */
  queryStats(q: StatsQuery, opts: StatsWaitOptions = {}): Promise<ActionOutcome<StatsAnswer>> {
    return queryStats(this, q, opts);
  }

  /** Public for stats.ts (outcome of a raw submission). */
  outcomeOf<T>(res: SubmitTxResponse, value?: T): ActionOutcome<T> {
    return this.outcome(res, value);
  }

  // ---- audit ---------------------------------------------------------------------------------

  async queryAudit(filter: AuditFilter, page: { limit?: number; cursor?: string } = {}): Promise<ActionOutcome<{ events: AuditEvent[]; cursor?: string }>> {
    const res = await this.ask('queryAudit', {
      body: { filter, ...(page.limit ? { limit: page.limit } : {}), ...(page.cursor ? { cursor: page.cursor } : {}) },
    });
    return this.outcome(
      res,
      res.result?.kind === 'audit' ? { events: res.result.events, ...(res.result.cursor ? { cursor: res.result.cursor } : {}) } : undefined,
    );
  }
}

/** What could not be read of a record, in one line. */
function unreadable(r: DecryptedRecord): string {
  const parts = [...(r.error ? [`content: ${r.error}`] : []), ...r.files.filter((f) => f.error).map((f) => `${f.file}: ${f.error}`)];
  return parts.join('; ');
}
