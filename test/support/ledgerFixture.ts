import { randomBytes } from 'node:crypto';
import type { AuditEvent } from '../../src/records/audit.js';
import { createSigner, generateSigningKeyPair, type Signer, type SigningKeyPair } from '../../src/records/crypto/signature.js';
import { generateEncryptionKeyPair, type EncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import type { StaffRole } from '../../src/records/ids.js';
import { activationCodeKey, INVITATION_TTL_MS, newActivationCode, signActivation } from '../../src/records/activation.js';
import { apply, type ApplyContext, type ApplyResult } from '../../src/records/state/apply.js';
import { MemoryState } from '../../src/records/state/memoryState.js';
import { requiredRecipients } from '../../src/records/state/permissions.js';
import { NETWORK_KEY, tableNames, type StateChange, type TableName, type Tables, type User } from '../../src/records/state/types.js';
import { DEFAULT_STATS_SETTING, type StatsSetting } from '../../src/records/stats/batches.js';
import { signTx } from '../../src/records/tx/codec.js';
import { txKinds, type Tx, type TxType, type UnsignedTx } from '../../src/records/tx/types.js';

/**
 * A ledger in memory for unit tests: a real MemoryState, real Ed25519 keys and real signed transactions,
 * run through the pure `apply` exactly as a node does for each transaction of a block — no network, no mocks.
 *
 *   const ledger = createLedger();                       // hosp-a / admin-a, hosp-b / admin-b
 *   ledger.registerPatient('pat-1', 'hosp-a');
 *   ledger.enrol('admin-a', 'doc-1', 'doctor');
 *   ledger.grant('pat-1', 'doc-1');
 *   const rec = ledger.createRecord('doc-1', 'pat-1');
 *   const r = ledger.submit('doc-1', { type: 'readRecord', patient: 'pat-1', record: rec, body: {} });
 *
 * Each `submit` is one transaction in its own block: the height grows by one, the clock by one second, and
 * the transaction's `time` equals its block time unless overridden. Nonces are strictly increasing per user.
 */

/** A user's key material as a client holds it. */
export interface UserKeys {
  signing: SigningKeyPair;
  signer: Signer;
  /** Stand-in for the X25519 public key: `apply` never encrypts, so any 32 bytes do. */
  encKey: Uint8Array;
}

export interface HospitalSeed {
  id: string;
  name?: string;
  /** User id of the hospital's admin (listed in genesis beside it). */
  admin: string;
}

export interface LedgerOptions {
  /** Hospitals and their admins; default `hosp-a`/`admin-a` and `hosp-b`/`admin-b`. */
  hospitals?: HospitalSeed[];
  /** Clock at start (ms since epoch); default 2025-01-01T00:00:00Z. */
  startTime?: number;
  /** The genesis hash transactions are signed under (the network they are for); default TEST_GENESIS_HASH. */
  genesisHash?: Uint8Array;
  /** Statistics batches (genesis `stats`); default calendar months. */
  stats?: StatsSetting;
  /**
   * Hospitals given an X25519 aggregator key (issue 13); default all. The public keys are `aggregatorKeys`'s;
   * a hospital's validator key is `keys(hospital id)` (it signs statsAggregate as the actor named by its id).
   */
  aggregators?: string[];
}

/**
 * The unsigned fields a test chooses: `type` and `body` always; `patient`, `record` and `payload` as the
 * type requires (a missing `payload` is filled with 32 random bytes when the type needs one); `via`, `nonce`,
 * `time` and `key` override the defaults (the actor's hospital, the next nonce, the clock, the actor's key).
 */
export type TxInput<T extends TxType = TxType> = Pick<UnsignedTx<T>, 'type' | 'body'> & Partial<Omit<UnsignedTx<T>, 'type' | 'body' | 'v' | 'actor'>>;

export interface SubmitOptions {
  /** Sign with another user's keys (or given keys) instead of the actor's own; `key` follows the signer. */
  signWith?: string | UserKeys;
  /** Overrides of the block context; by default the next height, index 0, block time = the clock. */
  ctx?: Partial<ApplyContext>;
}

/** Every table as plain, deep-copied data: compare two snapshots with `toEqual`. */
export type Snapshot = { [T in TableName]: Record<string, Tables[T]> };

export const DEFAULT_HOSPITALS: HospitalSeed[] = [
  { id: 'hosp-a', name: 'Hospital A', admin: 'admin-a' },
  { id: 'hosp-b', name: 'Hospital B', admin: 'admin-b' },
];
export const DEFAULT_START_TIME = Date.UTC(2025, 0, 1);
/** This in-memory ledger has no genesis file: its transactions are signed under this stand-in hash. */
export const TEST_GENESIS_HASH = new Uint8Array(32).fill(0x6c);
/** How far the clock moves after each applied transaction. */
export const TICK_MS = 1_000;

const hex16 = (n: number) => n.toString(16).padStart(16, '0');

export class Ledger {
  readonly state = new MemoryState();
  /** Height of the last applied block (genesis is 0). */
  height = 0;
  /** Current time in ms: the next transaction's `time` and block time. */
  clock: number;
  /**
   * The network this ledger's transactions are signed for. Settable: a test that builds a genesis file from
   * this ledger's keys signs for that genesis afterwards.
   */
  genesisHash: Uint8Array;
  private readonly keyring = new Map<string, UserKeys>();
  /** Hospitals' X25519 aggregator key pairs (issue 13). */
  readonly aggregatorKeys = new Map<string, EncryptionKeyPair>();
  private readonly nonces = new Map<string, number>();
  private idCounter = 0;

  constructor(options: LedgerOptions = {}) {
    this.clock = options.startTime ?? DEFAULT_START_TIME;
    this.genesisHash = options.genesisHash ?? TEST_GENESIS_HASH;
    const hospitals = options.hospitals ?? DEFAULT_HOSPITALS;
    const changes: StateChange[] = [
      { table: 'network', key: NETWORK_KEY, value: { hospitals: hospitals.map((h) => h.id), stats: options.stats ?? DEFAULT_STATS_SETTING } },
    ];
    for (const [index, h] of hospitals.entries()) {
      const aggregator = (options.aggregators ?? hospitals.map((x) => x.id)).includes(h.id);
      if (aggregator) this.aggregatorKeys.set(h.id, generateEncryptionKeyPair());
      changes.push({
        table: 'hospitals',
        key: h.id,
        value: {
          id: h.id,
          name: h.name ?? h.id,
          admin: h.admin,
          index,
          validatorKey: this.keys(h.id).signing.publicKey,
          ...(aggregator ? { aggregatorKey: this.aggregatorKeys.get(h.id)!.publicKey } : {}),
          lastNonce: 0,
        },
      });
      const admin: User = {
        id: h.admin,
        role: 'admin',
        hospital: h.id,
        signKey: this.keys(h.admin).signing.publicKey,
        active: true,
        lastNonce: 0,
        since: 0,
      };
      changes.push({ table: 'users', key: admin.id, value: admin });
    }
    this.state.write(changes);
  }

  /** The keys of a user name, created on first use (so a user can have keys before it exists on-chain). */
  keys(name: string): UserKeys {
    let k = this.keyring.get(name);
    if (!k) {
      const signing = generateSigningKeyPair();
      k = { signing, signer: createSigner(signing.secretKey), encKey: new Uint8Array(randomBytes(32)) };
      this.keyring.set(name, k);
    }
    return k;
  }

  /** A user as the state holds it; throws if absent. */
  user(id: string): User {
    const u = this.state.get('users', id);
    if (!u) throw new Error(`no user ${id} in state`);
    return u;
  }

  /**
   * The hospital a transaction of `name` goes through by default: the user's own, or (for a user not in the
   * state yet) the first hospital seeded.
   */
  homeOf(name: string): string {
    const u = this.state.get('users', name);
    if (u) return u.hospital;
    const first = this.state.entries('hospitals').next();
    if (first.done) throw new Error('ledger has no hospitals');
    return first.value[0];
  }

  /** The next nonce `sign` would use for `name`. */
  nextNonce(name: string): number {
    return (this.nonces.get(name) ?? 0) + 1;
  }

  /**
   * Signs a transaction for `name` without applying it, filling v, actor, key, via, nonce, time (and a
   * payload hash if the type needs one). The nonce counter advances even if the transaction is never applied
   * (gaps are allowed on-chain); an explicit `nonce` below the counter leaves the counter where it is.
   */
  sign<T extends TxType>(name: string, input: TxInput<T>, options: SubmitOptions = {}): Tx<T> {
    const keys = options.signWith === undefined ? this.keys(name) : typeof options.signWith === 'string' ? this.keys(options.signWith) : options.signWith;
    const nonce = input.nonce ?? this.nextNonce(name);
    this.nonces.set(name, Math.max(this.nonces.get(name) ?? 0, nonce));
    const unsigned = {
      v: 1,
      type: input.type,
      actor: name,
      key: input.key ?? keys.signing.publicKey,
      via: input.via ?? this.homeOf(name),
      nonce,
      time: input.time ?? this.clock,
      patient: input.patient,
      record: input.record,
      payload: input.payload ?? (txKinds[input.type].payload ? randomPayloadHash() : undefined),
      body: input.body,
    } as UnsignedTx<T>;
    return signTx(unsigned, keys.signer, this.genesisHash);
  }

  /**
   * Runs `apply` for one transaction as the next block (or at the given context), writes its changes into
   * the state when it is valid, and returns the result. Invalid transactions leave the state untouched.
   */
  apply(tx: Tx, ctx: Partial<ApplyContext> = {}): ApplyResult {
    const full: ApplyContext = {
      height: ctx.height ?? this.height + 1,
      index: ctx.index ?? 0,
      blockTime: ctx.blockTime ?? this.clock,
      genesisHash: ctx.genesisHash ?? this.genesisHash,
    };
    const result = apply(this.state, tx, full);
    if (result.valid) {
      this.state.write(result.changes);
      this.height = Math.max(this.height, full.height);
    }
    this.clock += TICK_MS;
    return result;
  }

  /** Signs and applies: the usual way a test performs one user action. */
  submit<T extends TxType>(name: string, input: TxInput<T>, options: SubmitOptions = {}): ApplyResult {
    return this.apply(this.sign(name, input, options), options.ctx);
  }

  /** Like `submit`, but throws unless the transaction is valid and allowed: for setting up a scenario. */
  must<T extends TxType>(name: string, input: TxInput<T>, options: SubmitOptions = {}): AuditEvent {
    const result = this.submit(name, input, options);
    if (!result.valid) throw new Error(`${input.type} by ${name} is invalid: ${result.error.code} ${result.error.message}`);
    if (result.event.outcome !== 'success') throw new Error(`${input.type} by ${name} was denied: ${result.event.reason}`);
    return result.event;
  }

  // --- Scenario helpers (each must succeed) ---------------------------------------------------------

  /** A patient self-registers through a hospital's node. */
  registerPatient(name: string, via: string): AuditEvent {
    return this.must(name, { type: 'registerPatient', via, body: { encKey: this.keys(name).encKey } });
  }

  /** An admin invites a doctor or auditor into the admin's own hospital; returns the one-time code (issue 10). */
  invite(admin: string, name: string, role: StaffRole, ttlMs = INVITATION_TTL_MS): string {
    const code = newActivationCode();
    this.must(admin, { type: 'inviteUser', body: { user: name, role, expiresAt: this.clock + ttlMs, codeKey: activationCodeKey(code, name) } });
    return code;
  }

  /** The invited user's activation with their own keys (`keys(name)`), the code signing over them. */
  activation(name: string, code: string, keys: UserKeys = this.keys(name)): Tx<'activateUser'> {
    const codeSig = signActivation(code, name, keys.signing.publicKey, keys.encKey, this.genesisHash);
    const via = this.state.get('invitations', name)?.hospital;
    return this.sign(name, { type: 'activateUser', ...(via ? { via } : {}), body: { encKey: keys.encKey, codeSig } }, { signWith: keys });
  }

  /** An admin invites a doctor or auditor into the admin's own hospital, who activates with the code. */
  enrol(admin: string, name: string, role: StaffRole): AuditEvent {
    const code = this.invite(admin, name, role);
    const result = this.apply(this.activation(name, code));
    if (!result.valid || result.event.outcome !== 'success')
      throw new Error(`activation of ${name} failed: ${result.valid ? result.event.reason : result.error.message}`);
    return result.event;
  }

  deactivate(admin: string, name: string): AuditEvent {
    return this.must(admin, { type: 'deactivateUser', body: { user: name } });
  }

  grant(patient: string, grantee: string): AuditEvent {
    return this.must(patient, { type: 'grantAccess', patient, body: { grantee } });
  }

  revoke(patient: string, grantee: string): AuditEvent {
    return this.must(patient, { type: 'revokeAccess', patient, body: { grantee } });
  }

  request(staff: string, patient: string): AuditEvent {
    return this.must(staff, { type: 'requestAccess', patient, body: {} });
  }

  /** Creates a record of `patient` wrapped for the right recipients; returns its id. */
  createRecord(actor: string, patient: string, record = this.recordId()): string {
    this.must(actor, { type: 'createRecord', patient, record, body: { recipients: this.recipientsFor(patient) } });
    return record;
  }

  /** Attaches a new file to a record; returns the file id. */
  attachFile(actor: string, patient: string, record: string, file = this.fileId()): string {
    this.must(actor, { type: 'attachFile', patient, record, body: { file, recipients: this.recipientsFor(patient) } });
    return file;
  }

  /** A patient books an appointment with a doctor (default: one day ahead); returns its id. */
  book(patient: string, doctor: string, at = this.clock + 86_400_000, appointment = this.appointmentId()): string {
    this.must(patient, { type: 'bookAppointment', patient, body: { appointment, doctor, at } });
    return appointment;
  }

  /** The exact recipient list new content of this patient's records must be wrapped for. */
  recipientsFor(patient: string): string[] {
    return requiredRecipients(this.state, this.user(patient));
  }

  // --- Ids and snapshots --------------------------------------------------------------------------

  /** Deterministic, distinct ids in the formats of ids.ts. */
  recordId(): string {
    return `rec-${hex16(++this.idCounter)}`;
  }
  fileId(): string {
    return `file-${hex16(++this.idCounter)}`;
  }
  appointmentId(): string {
    return `apt-${hex16(++this.idCounter)}`;
  }

  /** A deep copy of every table, for "nothing else changed" assertions. */
  snapshot(): Snapshot {
    const snap = {} as Record<TableName, Record<string, unknown>>;
    for (const table of tableNames) snap[table] = structuredClone(Object.fromEntries(this.state.entries(table)));
    return snap as Snapshot;
  }
}

export function createLedger(options?: LedgerOptions): Ledger {
  return new Ledger(options);
}

/** Any 32 bytes stand for the SHA-256 of an off-chain payload: `apply` never sees the payload itself. */
export function randomPayloadHash(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}
