import { toHex } from '../crypto/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { verifySignature, type Signer } from '../crypto/signature.js';
import { domainMessage } from '../crypto/signingDomain.js';
import { decodeCanonical, encodeCanonical } from '../encoding.js';
import { MedLedgerError } from '../errors.js';
import { MAX_TX_BYTES, signedTxSchema, txKinds, unsignedTxSchema, type Tx, type TxType, type UnsignedTx } from './types.js';

/**
 * What the user signs: the transaction tag, the genesis hash of the network it is meant for, and the id.
 * The same transaction signed by the same key is valid on one network only.
 */
export function txSigningMessage(genesisHash: Uint8Array, id: Uint8Array): Uint8Array {
  return domainMessage('tx', genesisHash, id);
}

/** Checks a decoded transaction's signature for the network of `genesisHash`. */
export function verifyTxSignature(tx: Pick<Tx, 'id' | 'tx' | 'sig'>, genesisHash: Uint8Array): boolean {
  return verifySignature(tx.tx.key, txSigningMessage(genesisHash, tx.id), tx.sig);
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

/** Builds and signs a transaction for the network of `genesisHash`; the signer is the user's Ed25519 key. */
export function signTx<T extends TxType>(unsigned: UnsignedTx<T>, signer: Signer, genesisHash: Uint8Array): Tx<T> {
  const checked = parseUnsignedTx(unsigned) as UnsignedTx<T>;
  const id = txId(checked);
  const sig = signer.sign(txSigningMessage(genesisHash, id));
  const bytes = encodeCanonical({ tx: checked, sig });
  if (bytes.length > MAX_TX_BYTES) throw new MedLedgerError('TOO_LARGE', `transaction is ${bytes.length} bytes (limit ${MAX_TX_BYTES})`);
  return { id, idHex: toHex(id), tx: checked, sig, bytes };
}

/**
 * Decodes wire bytes into a transaction and verifies the user's signature for the network of `genesisHash`.
 * `verify: false` is only for callers that check the signature themselves (a pool of verification workers,
 * admission after its cheap checks) or read transactions already validated (stored blocks).
 */
export function decodeTx(bytes: Uint8Array, opts: { genesisHash: Uint8Array } | { verify: false }): Tx {
  if (bytes.length > MAX_TX_BYTES) throw new MedLedgerError('TOO_LARGE', `transaction is ${bytes.length} bytes (limit ${MAX_TX_BYTES})`);
  const outer = signedTxSchema.safeParse(decodeCanonical(bytes, 'transaction'));
  if (!outer.success) throw new MedLedgerError('MALFORMED', `malformed signed transaction: ${describe(outer.error.issues)}`);
  const tx = parseUnsignedTx(outer.data.tx);
  // The bytes are canonical {tx, sig}: "tx" sorts first, so the unsigned part is the slice between the
  // 4-byte map/key header and the 70-byte "sig" entry — already its canonical encoding, no re-encode.
  const id = sha256(bytes.subarray(4, bytes.length - 70));
  const idHex = toHex(id);
  if ('genesisHash' in opts && !verifySignature(tx.key, txSigningMessage(opts.genesisHash, id), outer.data.sig)) {
    throw new MedLedgerError('BAD_SIGNATURE', `transaction ${idHex.slice(0, 12)} has an invalid signature`);
  }
  return { id, idHex, tx, sig: outer.data.sig, bytes };
}

/** The id of an already-validated transaction from its bytes (no signature check: for stored blocks). */
export function txIdOfBytes(bytes: Uint8Array): string {
  return toHex(sha256(bytes.subarray(4, bytes.length - 70)));
}
