import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGenesis, type Genesis } from '../consensus/genesis.js';
import { verifyProof } from '../consensus/proof.js';
import { bytesEqual, fromBase64, fromHex, toHex } from '../records/crypto/bytes.js';
import type { Recipient } from '../records/envelope.js';
import { MedLedgerError } from '../records/errors.js';
import type { Role } from '../records/ids.js';
import { decodeTx } from '../records/tx/codec.js';
import type { UnsignedTx } from '../records/tx/types.js';
import type { GenesisResponse, KeyProofResponse, PublicUser } from '../api/contract.js';
import type { ApiClient } from './apiClient.js';

/**
 * Verified recipient keys (issue 9, item 4). Before the client wraps a data key for anyone — the patient
 * and grantees of new content, or a new grantee of a patient's existing records — it checks that user's
 * public encryption key against the chain instead of taking its node's word for it: a compromised node
 * that served its own key in place of a grantee's would otherwise read what a doctor writes.
 *
 * The evidence, from `GET /v1/users/:id/key-proof`:
 * - a hospital admin's keys are in the genesis file itself;
 * - everyone else's were set by one committed transaction: a successful `registerPatient` (the actor's
 *   keys) or `activateUser` (a staff member's keys: the
 *   signer's key and the encryption key in its body, role and hospital from its audit event). The node sends that transaction's
 *   inclusion proof; it is checked offline against the genesis file this client trusts (commit certificate
 *   of 2f+1 genesis validators, proposer signature, Merkle paths, the user's signature, its audit event).
 *
 * Since issue 10 keys change: `rotateKeys` (the user, signed by the old key, the new keys in its body),
 * `recoverPatientKeys` (the home hospital's admin, for the patient it names) and a re-activation after
 * `revokeStaffKey` (an `activateUser`) each set new keys, and the node serves the proof of the LATEST one.
 * KNOWN LIMIT — currency: a proof shows that the keys were set by a committed transaction, not that no later
 * one replaced them, so a node could still serve an older proof with the matching older keys (content sealed
 * for a rotated-away key). Closing the gap needs a commitment to the key registry in the block header and a
 * path against it (chosen over asking f+1 nodes, which a client cannot reach: a node's API is loopback-only
 * on its own hospital's host); until then the cache below lives for one session only.
 *
 * The trust anchor is a genesis file pinned on this computer (`--genesis FILE`, or `genesis.json` in the
 * keystore directory); without one the node's own `/v1/genesis` is used, which protects against a node
 * that lies about one key but not against one that lies about the whole network.
 */

/** A key whose origin was checked: where it was set and for whom. */
export interface VerifiedKey {
  user: string;
  role: Role;
  hospital: string;
  encKey: Uint8Array;
  signKey: Uint8Array;
  /** The genesis file, or the transaction (id, height) that set the keys. */
  setBy: 'genesis' | { tx: string; height: number };
}

/** The genesis file a client checks proofs against, and whether it was pinned here or taken from a node. */
export interface GenesisAnchor {
  genesis: Genesis;
  pinned: boolean;
  source: string;
}

/** The name of a pinned genesis file inside a keystore directory (written there by `init` / `cluster`). */
export const PINNED_GENESIS_FILE = 'genesis.json';

export function readGenesisAnchor(file: string): GenesisAnchor {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new MedLedgerError('MALFORMED', `cannot read the genesis file ${file}: ${(err as Error).message}`);
  }
  try {
    return { genesis: parseGenesis(raw), pinned: true, source: file };
  } catch (err) {
    throw new MedLedgerError('MALFORMED', `${file}: ${(err as Error).message}`);
  }
}

/**
 * The pinned genesis of this computer: the file given (it must be readable), else `genesis.json` in the
 * keystore directory when there is one, else undefined (the session falls back to the node's).
 */
export function pinnedGenesis(opts: { genesisFile?: string | undefined; keystoreDir?: string | undefined }): GenesisAnchor | undefined {
  if (opts.genesisFile) return readGenesisAnchor(opts.genesisFile);
  if (opts.keystoreDir) {
    const file = join(opts.keystoreDir, PINNED_GENESIS_FILE);
    if (existsSync(file)) return readGenesisAnchor(file);
  }
  return undefined;
}

/** The node's genesis, unpinned: its hash must at least be the one the node names. */
export async function nodeGenesis(api: ApiClient): Promise<GenesisAnchor> {
  const served = await api.get<GenesisResponse>('/v1/genesis');
  let genesis: Genesis;
  try {
    genesis = parseGenesis(served.genesis);
  } catch (err) {
    throw new MedLedgerError('MALFORMED', `the node at ${api.base} serves an invalid genesis file: ${(err as Error).message}`);
  }
  if (toHex(genesis.hash) !== served.hash)
    throw new MedLedgerError('KEY_MISMATCH', `the node at ${api.base} serves a genesis file whose hash is not the one it names`);
  return { genesis, pinned: false, source: `the node at ${api.base} (not pinned)` };
}

const refuse = (message: string): never => {
  throw new MedLedgerError('KEY_MISMATCH', message);
};

function decodeKey(value: string | undefined, what: string): Uint8Array | undefined {
  if (value === undefined) return undefined;
  try {
    const bytes = fromBase64(value);
    if (bytes.length === 32) return bytes;
  } catch {
    // reported below
  }
  return refuse(`the node served a malformed ${what}`);
}

/**
 * Checks the keys a node served for one user against the evidence it gave, with the genesis file as the
 * only trust anchor. Returns what was proven; throws KEY_MISMATCH when the evidence does not prove
 * exactly the served keys, role and hospital for exactly that user.
 */
export function verifyServedKey(genesis: Genesis, served: PublicUser, evidence: unknown): VerifiedKey {
  const id = served.id;
  const encKey = decodeKey(served.encKey, `encryption key for ${id}`);
  if (!encKey) throw new MedLedgerError('MALFORMED', `${id} has no encryption key`);
  const signKey = decodeKey(served.signKey, `signing key for ${id}`)!;
  const proven = provenKeys(genesis, id, evidence);
  const what = proven.setBy === 'genesis' ? 'the genesis file' : `its ${proven.setBy.tx.slice(0, 12)}… at height ${proven.setBy.height}`;
  if (!proven.encKey.length || !bytesEqual(proven.encKey, encKey)) {
    refuse(`the node served an encryption key for ${id} that is not the one the ledger registered (${what}); nothing was encrypted for it`);
  }
  if (!bytesEqual(proven.signKey, signKey)) refuse(`the node served a signing key for ${id} that is not the one the ledger registered (${what})`);
  if (served.role !== proven.role || served.hospital !== proven.hospital) {
    refuse(`the node says ${id} is a ${served.role} of ${served.hospital}; the ledger registered a ${proven.role} of ${proven.hospital}`);
  }
  return proven;
}

/** What the genesis file or a verified key-setting transaction says about user `id`. */
function provenKeys(genesis: Genesis, id: string, evidence: unknown): VerifiedKey {
  // An admin's keys are in the genesis file; no transaction can set them (an enrolment of that id is denied).
  const founding = genesis.file.hospitals.find((h) => h.admin.id === id);
  if (founding) {
    return {
      user: id,
      role: 'admin',
      hospital: founding.id,
      encKey: founding.admin.encKey ? fromHex(founding.admin.encKey) : new Uint8Array(0),
      signKey: fromHex(founding.admin.signKey),
      setBy: 'genesis',
    };
  }
  const e = evidence as Partial<{ user: unknown; source: unknown; proof: unknown }> | null;
  if (typeof e !== 'object' || e === null || e.source !== 'transaction' || e.proof === undefined) {
    return refuse(`the node gave no proof of the transaction that set the keys of ${id}`);
  }
  const verdict = verifyProof(e.proof, genesis);
  if (!verdict.ok) return refuse(`the node's proof of ${id}'s keys does not verify: ${verdict.reason}`);
  if (verdict.claim.outcome !== 'success')
    return refuse(`the node's proof of ${id}'s keys is of a denied ${verdict.claim.type} (${verdict.claim.reason ?? 'denied'}), which set no key`);
  const { tx } = decodeTx(fromBase64((e.proof as { tx: string }).tx), { verify: false }); // signature checked by verifyProof
  const setBy = { tx: verdict.claim.tx, height: verdict.claim.height };
  if (tx.type === 'registerPatient') {
    if (tx.actor !== id) return refuse(`the node's proof of ${id}'s keys is the registration of ${tx.actor}`);
    return { user: id, role: 'patient', hospital: tx.via, encKey: (tx as UnsignedTx<'registerPatient'>).body.encKey, signKey: tx.key, setBy };
  }
  if (tx.type === 'activateUser') {
    if (tx.actor !== id) return refuse(`the node's proof of ${id}'s keys is the activation of ${tx.actor}`);
    const role = verdict.claim.role;
    if (role !== 'doctor' && role !== 'auditor') return refuse(`the node's proof of ${id}'s keys names role ${role}`);
    return { user: id, role, hospital: verdict.claim.hospital, encKey: (tx as UnsignedTx<'activateUser'>).body.encKey, signKey: tx.key, setBy };
  }
  if (tx.type === 'rotateKeys') {
    if (tx.actor !== id) return refuse(`the node's proof of ${id}'s keys is the rotation of ${tx.actor}`);
    const role = verdict.claim.role;
    if (role !== 'patient' && role !== 'doctor' && role !== 'auditor') return refuse(`the node's proof of ${id}'s keys names role ${role}`);
    const body = (tx as UnsignedTx<'rotateKeys'>).body;
    return { user: id, role, hospital: verdict.claim.hospital, encKey: body.encKey, signKey: body.signKey, setBy };
  }
  if (tx.type === 'recoverPatientKeys') {
    if (tx.patient !== id) return refuse(`the node's proof of ${id}'s keys is the recovery of ${String(tx.patient)}`);
    if (verdict.claim.role !== 'admin') return refuse(`the node's proof of ${id}'s keys is a recovery by a ${verdict.claim.role}`);
    // The rule lets only the patient's home hospital's admin recover, so the patient's hospital is the admin's.
    const body = (tx as UnsignedTx<'recoverPatientKeys'>).body;
    return { user: id, role: 'patient', hospital: verdict.claim.hospital, encKey: body.encKey, signKey: body.signKey, setBy };
  }
  return refuse(`the node's proof of ${id}'s keys is of a ${tx.type} transaction, which sets no key`);
}

/**
 * The recipients of new content of `patient`, as the node named them: the patient and doctors or
 * auditors (only staff can be granted access). A list without the patient, with a duplicate, or naming
 * any other user is refused: content sealed for it would reach someone the patient never granted.
 */
export function checkRecipientSet(patient: string, verified: VerifiedKey[]): void {
  const ids = new Set<string>();
  for (const v of verified) {
    if (ids.has(v.user)) refuse(`the node named ${v.user} twice as a recipient`);
    ids.add(v.user);
    if (v.user === patient ? v.role !== 'patient' : v.role !== 'doctor' && v.role !== 'auditor') {
      refuse(`the node named ${v.user} (${v.role}) as a recipient of ${patient}'s records; only the patient and their doctors and auditors can be`);
    }
  }
  if (!ids.has(patient)) refuse(`the node's recipients of ${patient}'s records leave out ${patient}`);
}

/**
 * One session's checker: fetches the evidence for each key its node serves, verifies it against the
 * trust anchor, and remembers each (user, keys) pair it verified, so a key is proven once per session.
 */
export class RecipientKeyVerifier {
  private anchor: Promise<GenesisAnchor> | undefined;
  private readonly verified = new Map<string, VerifiedKey>();
  /** Whether proofs are checked against a genesis file pinned on this computer (not the node's). */
  readonly pinned: boolean;

  constructor(
    private readonly api: ApiClient,
    pinned?: GenesisAnchor,
  ) {
    this.pinned = pinned?.pinned ?? false;
    if (pinned) this.anchor = Promise.resolve(pinned);
  }

  /** The genesis proofs are checked against: the pinned one, or (fetched once) the node's own. */
  trustAnchor(): Promise<GenesisAnchor> {
    this.anchor ??= nodeGenesis(this.api).catch((err: unknown) => {
      this.anchor = undefined;
      throw err;
    });
    return this.anchor;
  }

  /** How many (user, keys) pairs this session has verified so far. */
  get cached(): number {
    return this.verified.size;
  }

  /** The served user's keys, once proven. */
  async verify(served: PublicUser): Promise<VerifiedKey> {
    const cacheKey = JSON.stringify([served.id, served.encKey ?? null, served.signKey, served.role, served.hospital]);
    const hit = this.verified.get(cacheKey);
    if (hit) return hit;
    const { genesis } = await this.trustAnchor();
    let evidence: KeyProofResponse | undefined;
    if (!genesis.file.hospitals.some((h) => h.admin.id === served.id)) {
      try {
        evidence = await this.api.get<KeyProofResponse>(`/v1/users/${encodeURIComponent(served.id)}/key-proof`);
      } catch (err) {
        throw new MedLedgerError(
          'UNAVAILABLE',
          `cannot verify the encryption key of ${served.id}: the node at ${this.api.base} gave no proof of it (${(err as Error).message}); nothing was sent`,
        );
      }
    }
    const proven = verifyServedKey(genesis, served, evidence);
    this.verified.set(cacheKey, proven);
    return proven;
  }

  /** Verifies every recipient the node named for new content of `patient`; the envelope's recipients. */
  async recipients(patient: string, served: PublicUser[]): Promise<Recipient[]> {
    const verified = await Promise.all(served.map((u) => this.verify(u)));
    checkRecipientSet(patient, verified);
    return verified.map((v) => ({ id: v.user, encKey: v.encKey }));
  }
}
