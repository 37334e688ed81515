import { buildBlock, type ExecutedBlock, type ParentRef } from '../../src/consensus/blockExecution.js';
import { genesisBlock, headerHash } from '../../src/consensus/block.js';
import { genesisChanges, genesisState, parseGenesis, type ConsensusParams, type Genesis, type GenesisFile } from '../../src/consensus/genesis.js';
import { proposerIndex } from '../../src/consensus/tendermint.js';
import { certificateFromVotes, signVote, type Certificate } from '../../src/consensus/votes.js';
import type { FinalizedBlock } from '../../src/node/finalizedBlock.js';
import { payloadKeys, type CheckedPayload } from '../../src/node/payloads.js';
import { payloadKind } from '../../src/records/payloadKind.js';
import { toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair, type EncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { createSigner, generateSigningKeyPair, type Signer, type SigningKeyPair } from '../../src/records/crypto/signature.js';
import { blobId, openBlob, rewrapForGrantee, sealBlob, blobPayloadSchema, parsePayload, type WrappedKey } from '../../src/records/envelope.js';
import { activationCodeKey, INVITATION_TTL_MS, newActivationCode, signActivation } from '../../src/records/activation.js';
import type { StaffRole } from '../../src/records/ids.js';
import { requiredRecipients } from '../../src/records/state/permissions.js';
import type { MemoryState } from '../../src/records/state/memoryState.js';
import type { StateChange } from '../../src/records/state/types.js';
import { signTx } from '../../src/records/tx/codec.js';
import { txKinds, type Tx, type TxType, type UnsignedTx } from '../../src/records/tx/types.js';
import type { StatsSetting } from '../../src/records/stats/batches.js';
import { randomBytes } from 'node:crypto';

/**
 * A finalized chain built in memory from real keys: a genesis with N validators (default 4, hospitals
 * `hosp-a`… with admins `admin-a`…), and successive blocks made with `buildBlock` from real signed
 * transactions, each finalized by a certificate of real precommits (`signVote`) from a quorum (3 of 4).
 * No network, no store: tests hand the blocks to whatever they test (a LedgerStore, a Ledger, sync…).
 *
 *   const chain = ChainBuilder.create();
 *   const b1 = chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), chain.enrol('admin-a', 'doc-1', 'doctor')]);
 *   const rec = chain.createRecord('pat-1', 'pat-1', 'BP 120/80');
 *   const b2 = chain.finalize([rec.tx]);               // b2.payloads holds the sealed ciphertext
 *   await store.commitBlock(b2.finalized);
 *
 * Transactions are only signed by the helpers; `finalize` puts them in the next block (in the given
 * order) and throws if any of them would be dropped, so a test always knows what each block holds.
 * Helpers that depend on the state (recipients, grants) read the state at the current head.
 */

export interface UserKeys {
  signing: SigningKeyPair;
  signer: Signer;
  /** Real X25519 key pair: payloads are sealed and wrapped for it. */
  enc: EncryptionKeyPair;
}

export interface ValidatorKeys {
  hospital: string;
  admin: string;
  signing: SigningKeyPair;
  signer: Signer;
}

/** What the store persists for one height: the executed block, its commit certificate, its payloads. */
export interface FinalBlock {
  executed: ExecutedBlock;
  cert: Certificate;
  /** Payloads of this block's transactions, by transaction id (hex). */
  payloads: Map<string, Uint8Array>;
  /** The same as the node commits it (payload keys parsed when first read: a test may build bad payloads). */
  readonly finalized: FinalizedBlock;
}

export interface ChainOptions {
  /** Number of hospitals / validators (default 4). */
  validators?: number;
  network?: string;
  /** Genesis time (ms); default 2025-01-01T00:00:00Z. */
  startTime?: number;
  consensus?: Partial<ConsensusParams>;
  /** Genesis `stats` (issue 13); absent: left out of the file (calendar months). */
  stats?: StatsSetting;
}

/** Unsigned fields a test chooses; `actor`, `key`, `via`, `nonce` and `time` are filled in when absent. */
export type TxInput<T extends TxType = TxType> = Pick<UnsignedTx<T>, 'type' | 'body'> & Partial<Omit<UnsignedTx<T>, 'type' | 'body' | 'v' | 'actor'>>;

/** A signed transaction carrying a sealed blob, with what a test needs to check it. */
export interface SealedTx {
  tx: Tx;
  record: string;
  blob: string;
  payload: Uint8Array;
  plaintext: Uint8Array;
  /** The ciphertext inside the payload (what must disappear from disk when the record is deleted). */
  ciphertext: Uint8Array;
}

export const DEFAULT_CHAIN_START = Date.UTC(2025, 0, 1);
/** How far the clock moves after each finalized block. */
export const BLOCK_INTERVAL_MS = 1_000;

const hex16 = (n: number) => n.toString(16).padStart(16, '0');
const letter = (i: number) => String.fromCharCode(97 + i);

interface BlobInfo {
  patient: string;
  record: string;
  /** Wrapped data key by user, as the committed payloads carry them. */
  keys: Map<string, WrappedKey>;
}

export class ChainBuilder {
  readonly genesis: Genesis;
  readonly validators: ValidatorKeys[];
  /** State at the head. */
  readonly state: MemoryState;
  /** Finalized blocks; `blocks[h - 1]` is height h. */
  readonly blocks: FinalBlock[] = [];
  head: ParentRef;
  /** Next transaction time and block time (ms). */
  clock: number;
  private lastCert: Certificate | null = null;
  private readonly keyring = new Map<string, UserKeys>();
  private readonly nonces = new Map<string, number>();
  private readonly pendingPayloads = new Map<string, Uint8Array>();
  private readonly blobs = new Map<string, BlobInfo>();
  private idCounter = 0;

  private constructor(genesis: Genesis, validators: ValidatorKeys[], keyring: Map<string, UserKeys>, aggregators: EncryptionKeyPair[]) {
    this.aggregators = aggregators;
    this.genesis = genesis;
    this.validators = validators;
    this.keyring = keyring;
    this.state = genesisState(genesis);
    const block0 = genesisBlock(genesis);
    this.head = { header: block0.header, hash: headerHash(block0.header) };
    this.clock = genesis.file.time + BLOCK_INTERVAL_MS;
  }

  /** Each hospital's X25519 aggregator key pair (issue 13), in genesis order. */
  readonly aggregators: EncryptionKeyPair[];

  static create(options: ChainOptions = {}): ChainBuilder {
    const n = options.validators ?? 4;
    const keyring = new Map<string, UserKeys>();
    const aggregators: EncryptionKeyPair[] = [];
    const validators: ValidatorKeys[] = [];
    const hospitals: GenesisFile['hospitals'] = [];
    for (let i = 0; i < n; i++) {
      const hospital = `hosp-${letter(i)}`;
      const admin = `admin-${letter(i)}`;
      const signing = generateSigningKeyPair();
      validators.push({ hospital, admin, signing, signer: createSigner(signing.secretKey) });
      // The hospital signs its statsAggregate transactions with its validator key, as the actor named by its id.
      keyring.set(hospital, { signing, signer: createSigner(signing.secretKey), enc: generateEncryptionKeyPair() });
      aggregators.push(generateEncryptionKeyPair());
      const adminKeys = newUserKeys();
      keyring.set(admin, adminKeys);
      hospitals.push({
        id: hospital,
        name: `Hospital ${letter(i).toUpperCase()}`,
        validatorKey: toHex(signing.publicKey),
        peerId: `12D3KooWTest${hospital}`,
        admin: { id: admin, signKey: toHex(adminKeys.signing.publicKey), encKey: toHex(adminKeys.enc.publicKey) },
        aggregatorKey: toHex(aggregators[i]!.publicKey),
      });
    }
    const genesis = parseGenesis({
      network: options.network ?? 'medledger-test',
      time: options.startTime ?? DEFAULT_CHAIN_START,
      hospitals,
      consensus: { ...options.consensus },
      ...(options.stats ? { stats: options.stats } : {}),
    });
    return new ChainBuilder(genesis, validators, keyring, aggregators);
  }

  /**
   * Another network with the same validator keys and the same users' keys, from its own genesis on: the
   * genesis file differs only in what `changes` says (by default the time, one second later, so that even the
   * network name is the same). What a test network and a production network sharing keys look like.
   */
  twin(changes: { network?: string; startTime?: number } = {}): ChainBuilder {
    const file = { ...this.genesis.file, network: changes.network ?? this.genesis.file.network, time: changes.startTime ?? this.genesis.file.time + 1_000 };
    // One keyring for both: a user's keys, made on first use on either network, are that user's on both.
    return new ChainBuilder(parseGenesis(file), this.validators, this.keyring, this.aggregators);
  }

  get height(): number {
    return this.head.header.height;
  }

  /** Block 0 and the state changes it stands for: the arguments of `LedgerStore.initGenesis`. */
  genesisArgs(): [Uint8Array, ReturnType<typeof genesisBlock>, StateChange[]] {
    return [this.genesis.hash, genesisBlock(this.genesis), genesisChanges(this.genesis)];
  }

  /** The keys of a user, created on first use. */
  keys(name: string): UserKeys {
    let k = this.keyring.get(name);
    if (!k) this.keyring.set(name, (k = newUserKeys()));
    return k;
  }

  /** What `openBlob` / `rewrapForGrantee` need as "me". */
  me(name: string): { id: string; secretKey: Uint8Array; publicKey: Uint8Array } {
    const k = this.keys(name);
    return { id: name, secretKey: k.enc.secretKey, publicKey: k.enc.publicKey };
  }

  recordId(): string {
    return `rec-${hex16(++this.idCounter)}`;
  }
  fileId(): string {
    return `file-${hex16(++this.idCounter)}`;
  }
  appointmentId(): string {
    return `apt-${hex16(++this.idCounter)}`;
  }

  /**
   * Signs a transaction of `actor` (next nonce, the clock as time, the actor's own hospital unless `via`).
   * A given payload is hashed into the transaction and handed out with its block; a type that needs a
   * payload and gets none commits to random bytes (fine wherever the content does not matter).
   */
  sign<T extends TxType>(actor: string, input: TxInput<T>, payload?: Uint8Array): Tx<T> {
    const keys = this.keys(actor);
    const nonce = input.nonce ?? (this.nonces.get(actor) ?? 0) + 1;
    this.nonces.set(actor, Math.max(this.nonces.get(actor) ?? 0, nonce));
    const needsPayload = txKinds[input.type].payload;
    const unsigned = {
      v: 1,
      type: input.type,
      actor,
      key: input.key ?? keys.signing.publicKey,
      via: input.via ?? this.state.get('users', actor)?.hospital ?? this.validators[0]!.hospital,
      nonce,
      time: input.time ?? this.clock,
      patient: input.patient,
      record: input.record,
      payload: input.payload ?? (payload ? sha256(payload) : needsPayload ? new Uint8Array(randomBytes(32)) : undefined),
      body: input.body,
    } as UnsignedTx<T>;
    const tx = signTx(unsigned, keys.signer, this.genesis.hash);
    if (payload) this.pendingPayloads.set(tx.idHex, payload);
    return tx;
  }

  // ---- scenario transactions (signed, not yet in a block) ------------------------------------------

  registerPatient(name: string, via: string, input: Partial<TxInput<'registerPatient'>> = {}): Tx {
    return this.sign(name, { type: 'registerPatient', via, body: { encKey: this.keys(name).enc.publicKey }, ...input });
  }

  /**
   * Staff enrolment (issue 10): the admin's invitation and the new user's activation with their own keys,
   * in this order (both may go in one block).
   */
  enrol(admin: string, name: string, role: StaffRole): [Tx<'inviteUser'>, Tx<'activateUser'>] {
    const k = this.keys(name);
    const code = newActivationCode();
    const invite = this.sign(admin, {
      type: 'inviteUser',
      body: { user: name, role, expiresAt: this.clock + INVITATION_TTL_MS, codeKey: activationCodeKey(code, name) },
    });
    const codeSig = signActivation(code, name, k.signing.publicKey, k.enc.publicKey, this.genesis.hash);
    const via = this.state.get('users', admin)?.hospital;
    const activate = this.sign(name, { type: 'activateUser', ...(via ? { via } : {}), body: { encKey: k.enc.publicKey, codeSig } });
    return [invite, activate];
  }

  /** The patient and every active grantee, as the state at the head requires for new content. */
  recipientsFor(patient: string): { id: string; encKey: Uint8Array }[] {
    const user = this.state.get('users', patient);
    if (!user) throw new Error(`no patient ${patient} at height ${this.height}`);
    return requiredRecipients(this.state, user).map((id) => ({ id, encKey: this.state.get('users', id)!.encKey! }));
  }

  /** Seals content for the current recipients (real envelope encryption). */
  seal(
    patient: string,
    blob: string,
    plaintext: string | Uint8Array,
  ): { payload: Uint8Array; plaintext: Uint8Array; ciphertext: Uint8Array; recipients: string[] } {
    const bytes = typeof plaintext === 'string' ? utf8(plaintext) : plaintext;
    const recipients = this.recipientsFor(patient);
    const { payload } = sealBlob(bytes, blob, recipients);
    const ciphertext = parsePayload(blobPayloadSchema, payload, 'payload').c;
    return { payload, plaintext: bytes, ciphertext, recipients: recipients.map((r) => r.id) };
  }

  createRecord(actor: string, patient: string, plaintext: string | Uint8Array, record = this.recordId()): SealedTx {
    const blob = blobId(record, 'content', 1);
    const sealed = this.seal(patient, blob, plaintext);
    const tx = this.sign(actor, { type: 'createRecord', patient, record, body: { recipients: sealed.recipients } }, sealed.payload);
    return { tx, record, blob, ...sealed };
  }

  updateRecord(actor: string, patient: string, record: string, version: number, plaintext: string | Uint8Array): SealedTx {
    const blob = blobId(record, 'content', version);
    const sealed = this.seal(patient, blob, plaintext);
    const tx = this.sign(actor, { type: 'updateRecord', patient, record, body: { recipients: sealed.recipients, version } }, sealed.payload);
    return { tx, record, blob, ...sealed };
  }

  attachFile(actor: string, patient: string, record: string, plaintext: string | Uint8Array, file = this.fileId()): SealedTx & { file: string } {
    const blob = blobId(record, file, 1);
    const sealed = this.seal(patient, blob, plaintext);
    const tx = this.sign(actor, { type: 'attachFile', patient, record, body: { file, recipients: sealed.recipients } }, sealed.payload);
    return { tx, record, blob, file, ...sealed };
  }

  deleteRecord(actor: string, patient: string, record: string): Tx {
    return this.sign(actor, { type: 'deleteRecord', patient, record, body: {} });
  }

  readRecord(actor: string, patient: string, record: string): Tx {
    return this.sign(actor, { type: 'readRecord', patient, record, body: {} });
  }

  /**
   * The patient grants access and re-wraps, for the grantee, the data key of every blob of theirs that is
   * final so far (what a real client does with `keysOfPatient`); `blobs` narrows or overrides that list.
   */
  grant(patient: string, grantee: string, blobs?: string[]): { tx: Tx; payload: Uint8Array; blobs: string[] } {
    return this.rewrapTx('grantAccess', patient, grantee, blobs);
  }

  /** The patient approves a pending request, re-wrapping keys like `grant`. */
  approve(patient: string, requester: string, blobs?: string[]): { tx: Tx; payload: Uint8Array; blobs: string[] } {
    return this.rewrapTx('approveRequest', patient, requester, blobs);
  }

  private rewrapTx(
    type: 'grantAccess' | 'approveRequest',
    patient: string,
    grantee: string,
    blobs?: string[],
  ): { tx: Tx; payload: Uint8Array; blobs: string[] } {
    const mine = this.blobsOf(patient).filter((b) => !blobs || blobs.includes(b.blob));
    const encKey = this.state.get('users', grantee)?.encKey ?? this.keys(grantee).enc.publicKey;
    const { payload } = rewrapForGrantee(mine, this.me(patient), { id: grantee, encKey });
    const tx =
      type === 'grantAccess'
        ? this.sign(patient, { type, patient, body: { grantee } }, payload)
        : this.sign(patient, { type, patient, body: { requester: grantee } }, payload);
    return { tx, payload, blobs: mine.map((b) => b.blob) };
  }

  revoke(patient: string, grantee: string): Tx {
    return this.sign(patient, { type: 'revokeAccess', patient, body: { grantee } });
  }

  /** Final blobs of a patient with the patient's own wrapped key (as `keysOfPatient(p, p)` should list them). */
  blobsOf(patient: string, user = patient): { blob: string; key: WrappedKey }[] {
    const out: { blob: string; key: WrappedKey }[] = [];
    for (const [blob, info] of this.blobs) {
      const key = info.keys.get(user);
      if (info.patient === patient && key) out.push({ blob, key });
    }
    return out.sort((a, b) => (a.blob < b.blob ? -1 : a.blob > b.blob ? 1 : 0));
  }

  /** Opens a sealed payload as `user` with a wrapped key (real decryption). */
  open(payload: Uint8Array, key: WrappedKey, blob: string, user: string): string {
    const sealed = parsePayload(blobPayloadSchema, payload, 'payload');
    return new TextDecoder().decode(openBlob(sealed, key, blob, this.me(user)));
  }

  // ---- blocks --------------------------------------------------------------------------------------

  /**
   * Builds the next block from `txs` (in order) with the round's proposer, finalizes it with precommits
   * of `voters` (default: a quorum that leaves out one validator, rotating with the height), and moves
   * the head and the state. Throws if a transaction would be dropped.
   */
  finalize(txs: Tx[], options: { time?: number; round?: number; voters?: number[] } = {}): FinalBlock {
    const n = this.validators.length;
    const height = this.height + 1;
    const round = options.round ?? 0;
    const proposer = proposerIndex(n, height, round);
    const { executed, dropped } = buildBlock({
      genesis: this.genesis,
      parent: this.head,
      lastCommit: this.lastCert,
      state: this.state,
      candidates: txs,
      round,
      time: options.time ?? this.clock,
      signer: this.validators[proposer]!.signer,
    });
    if (dropped.length > 0) {
      const d = dropped[0]!;
      throw new Error(
        `block ${height}: ${dropped.length} transaction(s) dropped, first ${d.tx.tx.type} by ${d.tx.tx.actor}: ${d.error.code} ${d.error.message}`,
      );
    }
    if (executed.txs.length !== txs.length) throw new Error(`block ${height}: only ${executed.txs.length} of ${txs.length} transactions fit`);
    const voters = options.voters ?? defaultVoters(n, height);
    const votes = voters.map((v) =>
      signVote(
        { type: 'precommit', network: this.genesis.file.network, height, round, validator: v, block: executed.hash },
        this.validators[v]!.signer,
        this.genesis.hash,
      ),
    );
    const cert = certificateFromVotes(votes);
    const payloads = new Map<string, Uint8Array>();
    for (const tx of executed.txs) {
      const p = this.pendingPayloads.get(tx.idHex);
      if (p) {
        payloads.set(tx.idHex, p);
        this.pendingPayloads.delete(tx.idHex);
      }
    }
    this.state.write(executed.changes);
    this.trackBlobs(executed, payloads);
    this.head = { header: executed.block.header, hash: executed.hash };
    this.lastCert = cert;
    this.clock = Math.max(this.clock, executed.block.header.time) + BLOCK_INTERVAL_MS;
    let finalized: FinalizedBlock | undefined;
    const final: FinalBlock = {
      executed,
      cert,
      payloads,
      get finalized() {
        return (finalized ??= { executed, cert, payloads: checkedPayloads(executed, payloads) });
      },
    };
    this.blocks.push(final);
    return final;
  }

  /** Every audit event of the chain so far, in chain order. */
  events(): ExecutedBlock['events'] {
    return this.blocks.flatMap((b) => b.executed.events);
  }

  private trackBlobs(executed: ExecutedBlock, payloads: Map<string, Uint8Array>): void {
    executed.txs.forEach((tx, i) => {
      if (executed.events[i]!.outcome !== 'success') return;
      const payload = payloads.get(tx.idHex);
      const kind = payloadKind(tx.tx);
      if (payload && kind) {
        for (const { blob, user, key } of payloadKeys(kind, payload)) {
          let info = this.blobs.get(blob);
          if (!info && kind.kind === 'blob') this.blobs.set(blob, (info = { patient: kind.patient, record: kind.record, keys: new Map() }));
          info?.keys.set(user, key);
        }
      }
      if (tx.tx.type === 'deleteRecord') {
        for (const [blob, info] of this.blobs) if (info.record === tx.tx.record) this.blobs.delete(blob);
      }
    });
  }
}

/**
 * Payloads with their keys parsed, as the node carries them to the store (which reads the keys of the
 * successful transactions' payloads only).
 */
export function checkedPayloads(executed: ExecutedBlock, payloads: ReadonlyMap<string, Uint8Array>): Map<string, CheckedPayload> {
  const out = new Map<string, CheckedPayload>();
  executed.txs.forEach((tx, i) => {
    const bytes = payloads.get(tx.idHex);
    const kind = payloadKind(tx.tx);
    if (bytes) out.set(tx.idHex, { bytes, keys: kind && executed.events[i]!.outcome === 'success' ? payloadKeys(kind, bytes) : [] });
  });
  return out;
}

function newUserKeys(): UserKeys {
  const signing = generateSigningKeyPair();
  return { signing, signer: createSigner(signing.secretKey), enc: generateEncryptionKeyPair() };
}

/** A quorum (n - f) of validators, leaving out a different one as the height advances. */
function defaultVoters(n: number, height: number): number[] {
  const f = Math.floor((n - 1) / 3);
  const out: number[] = [];
  for (let i = 0; i < n - f; i++) out.push((height + 1 + i) % n);
  return out.sort((a, b) => a - b);
}
