import { blobPayloadSchema, grantPayloadSchema, parsePayload, type WrappedKey } from '../records/envelope.js';
import { bytesEqual } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { MedLedgerError } from '../records/errors.js';
import type { Tx } from '../records/tx/types.js';
import { MAX_PAYLOAD_BYTES } from '../records/tx/types.js';
import { payloadKind, type PayloadKind } from '../records/payloadKind.js';

/**
 * Off-chain payloads against their transactions (what a transaction's payload is: records/payloadKind.ts):
 * the wrapped keys a payload carries, and the checks at admission and in a proposed block.
 */

/** One wrapped data key a payload carries: of a blob, for a user. */
export interface PayloadKey {
  blob: string;
  user: string;
  key: WrappedKey;
}

/**
 * A payload that passed `checkPayload`, with the wrapped keys parsed from it: hashed and parsed once on a
 * node, and carried from the check (admission, a proposal's assessment, sync) to the store.
 */
export interface CheckedPayload {
  bytes: Uint8Array;
  keys: readonly PayloadKey[];
}

/** Wrapped keys a payload carries, by blob and recipient. */
export function payloadKeys(kind: PayloadKind, payload: Uint8Array): PayloadKey[] {
  if (kind.kind === 'blob') {
    const p = parsePayload(blobPayloadSchema, payload, 'record payload');
    return Object.entries(p.keys).map(([user, key]) => ({ blob: kind.blob, user, key }));
  }
  const p = parsePayload(grantPayloadSchema, payload, 'grant payload');
  return Object.entries(p.keys).map(([blob, key]) => ({ blob, user: kind.grantee, key }));
}

/**
 * Admission check of a payload against its transaction: size, hash, structure, and for record content
 * that the wrapped keys go to exactly the recipients the transaction names (and so the state checks).
 * Returns the payload with its parsed keys (undefined for a transaction that carries none).
 */
export function checkPayload(tx: Tx, payload: Uint8Array | undefined): CheckedPayload | undefined {
  const kind = payloadKind(tx.tx);
  if (!kind) {
    if (payload !== undefined) throw new MedLedgerError('MALFORMED', `${tx.tx.type} carries no payload`);
    return undefined;
  }
  if (payload === undefined) throw new MedLedgerError('MALFORMED', `${tx.tx.type} needs its payload`);
  if (payload.length > MAX_PAYLOAD_BYTES) throw new MedLedgerError('TOO_LARGE', `payload is ${payload.length} bytes (limit ${MAX_PAYLOAD_BYTES})`);
  if (!tx.tx.payload || !bytesEqual(sha256(payload), tx.tx.payload))
    throw new MedLedgerError('MALFORMED', 'payload does not match the hash in the transaction');
  const keys = payloadKeys(kind, payload);
  if (kind.kind === 'blob') {
    const users = keys.map((k) => k.user).sort();
    if (users.join(',') !== [...kind.recipients].sort().join(',')) throw new MedLedgerError('MALFORMED', 'payload keys do not match the recipients');
  } else {
    for (const { blob } of keys) {
      if (!blob.startsWith('rec-')) throw new MedLedgerError('MALFORMED', `grant payload names an invalid blob ${blob}`);
    }
  }
  return { bytes: payload, keys };
}

/**
 * A payload admission already accepted for this transaction (these exact bytes): only its keys are parsed,
 * for the store; nothing is hashed or checked again.
 */
export function admittedPayload(tx: Tx, payload: Uint8Array): CheckedPayload | undefined {
  const kind = payloadKind(tx.tx);
  return kind ? { bytes: payload, keys: payloadKeys(kind, payload) } : undefined;
}

/**
 * The payloads a block brings (aligned with its transactions; null: none), checked by the same rules as
 * admission, so that a validator votes only for blocks whose payloads the commit path can store. Returns
 * them checked, by transaction id. `admitted` may vouch for a payload that admission accepted with these
 * exact bytes (the mempool's): it is then only parsed, not hashed or checked again.
 */
export function checkBlockPayloads(
  txs: Tx[],
  payloads: readonly (Uint8Array | null | undefined)[],
  admitted?: (tx: Tx, payload: Uint8Array) => CheckedPayload | undefined,
): Map<string, CheckedPayload> {
  if (payloads.length !== txs.length) throw new MedLedgerError('INVALID_BLOCK', `${payloads.length} payload slots for ${txs.length} transactions`);
  const checked = new Map<string, CheckedPayload>();
  txs.forEach((tx, i) => {
    const payload = payloads[i] ?? undefined;
    try {
      const c = (payload && admitted?.(tx, payload)) || checkPayload(tx, payload);
      if (c) checked.set(tx.idHex, c);
    } catch (err) {
      throw new MedLedgerError('INVALID_BLOCK', `payload of transaction ${i} (${tx.idHex.slice(0, 12)}): ${(err as Error).message}`);
    }
  });
  return checked;
}
