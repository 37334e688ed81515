import { concatBytes, toHex, utf8 } from '../crypto/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { verifySignature, type Signer } from '../crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../encoding.js';
import { MedLedgerError } from '../errors.js';
import { MAX_TX_BYTES, signedTxSchema, txKinds, unsignedTxSchema, type Tx, type TxType, type UnsignedTx } from './types.js';

const TX_SIGNING_DOMAIN = utf8('medledger/tx/v1\0');

export function txSigningMessage(id: Uint8Array): Uint8Array {
  return concatBytes(TX_SIGNING_DOMAIN, id);
}

function describe(issues: { path: PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Checks the shape of an unsigned transaction, including the per-type body and required fields. */
export function parseUnsignedTx(value: unknown): UnsignedTx {
  const base = unsignedTxSchema.safeParse(value);
  if (!base.success) throw new MedLedgerError('MALFORMED', `malformed transaction: ${describe(base.error.issues)}`);
  const tx = base.data;
  const kind = txKinds[tx.type];
  const body = kind.body.safeParse(tx.body);
  if (!body.success) throw new MedLedgerError('MALFORMED', `malformed ${tx.type} body: ${describe(body.error.issues)}`);
  if (kind.patient !== (tx.patient !== undefined)) {
    throw new MedLedgerError('MALFORMED', `${tx.type} ${kind.patient ? 'needs' : 'must not have'} a patient field`);
  }
  if (kind.record !== (tx.record !== undefined)) {
    throw new MedLedgerError('MALFORMED', `${tx.type} ${kind.record ? 'needs' : 'must not have'} a record field`);
  }
  if (kind.payload !== (tx.payload !== undefined)) {
    throw new MedLedgerError('MALFORMED', `${tx.type} ${kind.payload ? 'needs' : 'must not have'} a payload hash`);
  }
  return { ...tx, body: body.data } as UnsignedTx;
}

export function txId(unsigned: UnsignedTx): Uint8Array {
  return sha256(encodeCanonical(unsigned));
}

/** Builds and signs a transaction; the signer is the user's Ed25519 key. */
export function signTx<T extends TxType>(unsigned: UnsignedTx<T>, signer: Signer): Tx<T> {
  const checked = parseUnsignedTx(unsigned) as UnsignedTx<T>;
  const id = txId(checked);
  const sig = signer.sign(txSigningMessage(id));
  const bytes = encodeCanonical({ tx: checked, sig });
  if (bytes.length > MAX_TX_BYTES) throw new MedLedgerError('TOO_LARGE', `transaction is ${bytes.length} bytes (limit ${MAX_TX_BYTES})`);
  return { id, idHex: toHex(id), tx: checked, sig, bytes };
}

/**
 * Decodes wire bytes into a transaction and verifies the user's signature. `verify: false` is only for
 * callers that checked the signature themselves (a pool of verification workers).
 */
export function decodeTx(bytes: Uint8Array, opts: { verify?: boolean } = {}): Tx {
  if (bytes.length > MAX_TX_BYTES) throw new MedLedgerError('TOO_LARGE', `transaction is ${bytes.length} bytes (limit ${MAX_TX_BYTES})`);
  const outer = signedTxSchema.safeParse(decodeCanonical(bytes, 'transaction'));
  if (!outer.success) throw new MedLedgerError('MALFORMED', `malformed signed transaction: ${describe(outer.error.issues)}`);
  const tx = parseUnsignedTx(outer.data.tx);
  // The bytes are canonical {tx, sig}: "tx" sorts first, so the unsigned part is the slice between the
  // 4-byte map/key header and the 70-byte "sig" entry — already its canonical encoding, no re-encode.
  const id = sha256(bytes.subarray(4, bytes.length - 70));
  const idHex = toHex(id);
  if (opts.verify !== false && !verifySignature(tx.key, txSigningMessage(id), outer.data.sig)) {
    throw new MedLedgerError('BAD_SIGNATURE', `transaction ${idHex.slice(0, 12)} has an invalid signature`);
  }
  return { id, idHex, tx, sig: outer.data.sig, bytes };
}

/** The id of an already-validated transaction from its bytes (no signature check: for stored blocks). */
export function txIdOfBytes(bytes: Uint8Array): string {
  return toHex(sha256(bytes.subarray(4, bytes.length - 70)));
}
