import { decode, encode, rfc8949EncodeOptions } from 'cborg';
import { bytesEqual } from './crypto/bytes.js';
import { MedLedgerError } from './errors.js';

/**
 * Canonical CBOR (RFC 8949 §4.2.1 core deterministic encoding): the same value gives the same bytes on
 * every machine, which is what makes hashes and signatures over encoded data meaningful.
 */
const ENCODE_OPTIONS = { ...rfc8949EncodeOptions, ignoreUndefinedProperties: true };

export function encodeCanonical(value: unknown): Uint8Array {
  // An optional field set to undefined encodes like an absent one, so one value has one encoding.
  return encode(value, ENCODE_OPTIONS);
}

/**
 * Deeper than any MedLedger format (a proposal's certificate entries sit at depth 6). Bounded so that the
 * canonical re-encoding (recursive) and the schemas never meet a nesting that exhausts the stack: cborg's
 * recursive decoder accepts a few thousand levels, which fit in a 16 KiB transaction.
 */
export const MAX_CBOR_NESTING = 64;

/** Whether arrays/maps nest deeper than `limit` (iterative, so the check itself cannot overflow). */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Strict decode: minimal integer and length forms, no duplicate keys, no undefined, and the bytes must
 * be exactly the canonical encoding of what they decode to (so one value has exactly one valid encoding),
 * and at most MAX_CBOR_NESTING levels of arrays and maps.
 * `requireCanonical: false` skips only the last check, for envelopes (gossip batches, proposals) whose
 * bytes are never hashed or signed themselves: what they carry is checked on its own.
 */
export function decodeCanonical(bytes: Uint8Array, what = 'message', opts: { requireCanonical?: boolean } = {}): unknown {
  let value: unknown;
  try {
    value = decode(bytes, {
      strict: true,
      rejectDuplicateMapKeys: true,
      allowUndefined: false,
      allowIndefinite: false,
      allowInfinity: false,
      allowNaN: false,
      useMaps: false,
    });
  } catch (err) {
    throw new MedLedgerError('MALFORMED', `${what} is not valid CBOR: ${(err as Error).message}`);
  }
  if (nestedDeeperThan(value, MAX_CBOR_NESTING)) throw new MedLedgerError('MALFORMED', `${what} nests arrays or maps deeper than ${MAX_CBOR_NESTING} levels`);
  if (opts.requireCanonical !== false && !bytesEqual(encodeCanonical(value), bytes)) {
    throw new MedLedgerError('MALFORMED', `${what} is not in canonical CBOR form`);
  }
  return value;
}
