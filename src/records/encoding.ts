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
  if (fastEncode(value)) return scratch.slice(0, pos);
  return encode(value, ENCODE_OPTIONS);
}

/**
 * Direct canonical encoder for the values MedLedger formats hold (plain objects with ASCII keys, arrays,
 * byte strings, well-formed strings, safe integers, booleans, null): one pass into a reused buffer, keys
 * sorted as plain strings. cborg's RFC 8949 mode builds a token tree and encodes every key to sort it, the
 * largest cost of encoding on the hot paths (events, the canonical check of each transaction). Anything else
 * (floats, bigints, Maps, class instances, non-ASCII keys, lone surrogates, deep nesting) falls back to cborg,
 * and a property test checks that both give the same bytes.
 */
let scratch = new Uint8Array(64 * 1024);
let pos = 0;
let encoding = false;
/** Deeper values go to cborg (which also detects cycles). */
const FAST_MAX_DEPTH = 100;
const UNSUPPORTED = Symbol('unsupported');
const textEncoder = new TextEncoder();
/** In u-mode a well-formed pair is one code point, so this matches only unpaired surrogates. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Encodes `value` into scratch[0, pos); false if it holds something the fast path does not handle. */
function fastEncode(value: unknown): boolean {
  // Reentrance (a getter encoding while we encode) would clobber the shared buffer.
  if (encoding) return false;
  encoding = true;
  pos = 0;
  try {
    writeValue(value, 0);
    return true;
  } catch (err) {
    if (err === UNSUPPORTED) return false;
    throw err;
  } finally {
    encoding = false;
  }
}

function reserve(n: number): void {
  if (pos + n <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < pos + n) size *= 2;
  const grown = new Uint8Array(size);
  grown.set(scratch.subarray(0, pos));
  scratch = grown;
}

/** A head (major type + argument) in its shortest form; `n` a safe non-negative integer. */
function writeHead(major: number, n: number): void {
  reserve(9);
  const m = major << 5;
  if (n < 24) scratch[pos++] = m | n;
  else if (n < 0x100) {
    scratch[pos++] = m | 24;
    scratch[pos++] = n;
  } else if (n < 0x10000) {
    scratch[pos++] = m | 25;
    scratch[pos++] = n >>> 8;
    scratch[pos++] = n & 0xff;
  } else if (n < 0x100000000) {
    scratch[pos++] = m | 26;
    writeUint32(n);
  } else {
    scratch[pos++] = m | 27;
    writeUint32(Math.floor(n / 0x100000000));
    writeUint32(n >>> 0);
  }
}

function writeUint32(n: number): void {
  scratch[pos++] = n >>> 24;
  scratch[pos++] = (n >>> 16) & 0xff;
  scratch[pos++] = (n >>> 8) & 0xff;
  scratch[pos++] = n & 0xff;
}

/** RFC 8949 order of text keys is by their encoding: for ASCII keys, shorter first, then by code units. */
function compareKeys(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function writeString(s: string): void {
  if (isAscii(s)) {
    writeHead(3, s.length);
    reserve(s.length);
    for (let i = 0; i < s.length; i++) scratch[pos++] = s.charCodeAt(i);
    return;
  }
  // Lone surrogates are encoded differently by different UTF-8 encoders: leave them to cborg.
  if (LONE_SURROGATE.test(s)) throw UNSUPPORTED;
  const bytes = textEncoder.encode(s);
  writeHead(3, bytes.length);
  reserve(bytes.length);
  scratch.set(bytes, pos);
  pos += bytes.length;
}

function writeValue(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v)) throw UNSUPPORTED;
      // -0 is an integer >= 0, so it encodes as 0 (as cborg does).
      if (v >= 0) writeHead(0, v);
      else writeHead(1, -1 - v);
      return;
    case 'string':
      writeString(v);
      return;
    case 'boolean':
      reserve(1);
      scratch[pos++] = v ? 0xf5 : 0xf4;
      return;
    case 'object':
      break;
    default:
      throw UNSUPPORTED;
  }
  if (v === null) {
    reserve(1);
    scratch[pos++] = 0xf6;
    return;
  }
  if (depth >= FAST_MAX_DEPTH) throw UNSUPPORTED;
  if (v instanceof Uint8Array) {
    writeHead(2, v.length);
    reserve(v.length);
    scratch.set(v, pos);
    pos += v.length;
    return;
  }
  if (Array.isArray(v)) {
    writeHead(4, v.length);
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      // cborg writes undefined in arrays (and holes) as the simple value; not a MedLedger value.
      if (item === undefined) throw UNSUPPORTED;
      writeValue(item, depth + 1);
    }
    return;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw UNSUPPORTED;
  const obj = v as Record<string, unknown>;
  const keys: string[] = [];
  for (const k of Object.keys(obj)) {
    if (obj[k] === undefined) continue;
    if (!isAscii(k)) throw UNSUPPORTED;
    keys.push(k);
  }
  // Insertion sort for the usual handful of keys: Array.prototype.sort allocates on every call.
  if (keys.length > 16) keys.sort(compareKeys);
  else
    for (let i = 1; i < keys.length; i++) {
      const k = keys[i]!;
      let j = i - 1;
      while (j >= 0 && compareKeys(keys[j]!, k) > 0) {
        keys[j + 1] = keys[j]!;
        j--;
      }
      keys[j + 1] = k;
    }
  writeHead(5, keys.length);
  for (const k of keys) {
    writeString(k);
    writeValue(obj[k], depth + 1);
  }
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
  // Canonical input (nearly all of it) is read in one pass; anything else takes the full path below, which
  // accepts or refuses it with its reason.
  const fast = fastDecode(bytes);
  if (fast !== UNSUPPORTED) return fast;
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
  if (opts.requireCanonical !== false && !encodesTo(value, bytes)) {
    throw new MedLedgerError('MALFORMED', `${what} is not in canonical CBOR form`);
  }
  return value;
}

/** Whether `value` encodes canonically to exactly `bytes` (no copy of the encoding on the fast path). */
function encodesTo(value: unknown, bytes: Uint8Array): boolean {
  if (!fastEncode(value)) return bytesEqual(encode(value, ENCODE_OPTIONS), bytes);
  return pos === bytes.length && bytesEqual(scratch.subarray(0, pos), bytes);
}

/**
 * One-pass reader that only ever accepts: it returns the value of `bytes` if they are exactly the canonical
 * encoding (as encodeCanonical writes it) of a value made of maps with text keys, arrays, byte and text
 * strings, safe integers, booleans and null, nested at most MAX_CBOR_NESTING levels; the same value the full
 * path (cborg's strict decoder, then the re-encoding check) returns for them. For anything else — not
 * canonical, not well-formed, another type — it returns UNSUPPORTED and the full path decides.
 */
let input: Uint8Array = new Uint8Array(0);
let at = 0;
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fastDecode(bytes: Uint8Array): unknown {
  input = bytes;
  at = 0;
  try {
    const value = readValue(1);
    return at === bytes.length ? value : UNSUPPORTED;
  } catch (err) {
    if (err === UNSUPPORTED) return UNSUPPORTED;
    throw err;
  } finally {
    input = new Uint8Array(0);
  }
}

/** The argument of a head with additional info `info`, which must be in its shortest form. */
function readArgument(info: number): number {
  if (info < 24) return info;
  let n: number;
  if (info === 24) {
    if (at + 1 > input.length) throw UNSUPPORTED;
    n = input[at++]!;
    if (n < 24) throw UNSUPPORTED;
  } else if (info === 25) {
    if (at + 2 > input.length) throw UNSUPPORTED;
    n = (input[at]! << 8) | input[at + 1]!;
    at += 2;
    if (n < 0x100) throw UNSUPPORTED;
  } else if (info === 26) {
    if (at + 4 > input.length) throw UNSUPPORTED;
    n = readUint32At(at);
    at += 4;
    if (n < 0x10000) throw UNSUPPORTED;
  } else if (info === 27) {
    if (at + 8 > input.length) throw UNSUPPORTED;
    const hi = readUint32At(at);
    const lo = readUint32At(at + 4);
    at += 8;
    // Beyond 2^53 - 1 cborg gives a bigint: not for this path.
    if (hi > 0x1fffff) throw UNSUPPORTED;
    n = hi * 0x100000000 + lo;
    if (n < 0x100000000) throw UNSUPPORTED;
  } else throw UNSUPPORTED; // 28-30 reserved, 31 indefinite
  return n;
}

function readUint32At(i: number): number {
  return ((input[i]! << 24) >>> 0) + ((input[i + 1]! << 16) | (input[i + 2]! << 8) | input[i + 3]!);
}

/** A definite length that fits in what is left of the input (so a forged length allocates nothing). */
function readLength(info: number, minBytesPerItem: number): number {
  const n = readArgument(info);
  if (n * minBytesPerItem > input.length - at) throw UNSUPPORTED;
  return n;
}

function readText(info: number): string {
  const n = readLength(info, 1);
  const start = at;
  at += n;
  let ascii = true;
  for (let i = start; i < at; i++) {
    if (input[i]! > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    if (n > 32) return asciiDecoder.decode(input.subarray(start, at));
    let text = '';
    for (let i = start; i < at; i++) text += String.fromCharCode(input[i]!);
    return text;
  }
  // A leading byte order mark is dropped by some decoders, so its encoding would not round-trip.
  if (input[start] === 0xef && input[start + 1] === 0xbb && input[start + 2] === 0xbf) throw UNSUPPORTED;
  try {
    return utf8Decoder.decode(input.subarray(start, at));
  } catch {
    throw UNSUPPORTED; // not well-formed UTF-8
  }
}
const asciiDecoder = new TextDecoder('latin1');

function readValue(depth: number): unknown {
  if (at >= input.length) throw UNSUPPORTED;
  const initial = input[at++]!;
  const major = initial >> 5;
  const info = initial & 0x1f;
  switch (major) {
    case 0:
      return readArgument(info);
    case 1: {
      const n = readArgument(info);
      // -1 - n must be a safe integer, else cborg encodes it back as a float.
      if (n > Number.MAX_SAFE_INTEGER - 1) throw UNSUPPORTED;
      return -1 - n;
    }
    case 2: {
      const n = readLength(info, 1);
      // A copy, and a plain Uint8Array even from a Buffer (whose slice() would share the input's memory).
      const out = new Uint8Array(n);
      out.set(input.subarray(at, at + n));
      at += n;
      return out;
    }
    case 3:
      return readText(info);
    case 4: {
      if (depth > MAX_CBOR_NESTING) throw UNSUPPORTED;
      const n = readLength(info, 1);
      const out: unknown[] = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(depth + 1);
      return out;
    }
    case 5: {
      if (depth > MAX_CBOR_NESTING) throw UNSUPPORTED;
      const n = readLength(info, 2);
      const out: Record<string, unknown> = {};
      let prevStart = -1;
      let prevEnd = -1;
      for (let i = 0; i < n; i++) {
        const keyStart = at;
        if (at >= input.length || input[at]! >> 5 !== 3) throw UNSUPPORTED;
        const key = readText(input[at++]! & 0x1f);
        // Keys strictly ascending by their encoded bytes: canonical order, and no key twice.
        if (prevStart >= 0 && compareBytes(prevStart, prevEnd, keyStart, at) >= 0) throw UNSUPPORTED;
        prevStart = keyStart;
        prevEnd = at;
        if (key === '__proto__') throw UNSUPPORTED;
        out[key] = readValue(depth + 1);
      }
      return out;
    }
    case 7:
      if (initial === 0xf4) return false;
      if (initial === 0xf5) return true;
      if (initial === 0xf6) return null;
      throw UNSUPPORTED; // floats, undefined, other simple values
    default:
      throw UNSUPPORTED; // tags
  }
}

/** Bytewise comparison of input[a0, a1) and input[b0, b1). */
function compareBytes(a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let i = 0; i < n; i++) {
    const d = input[a0 + i]! - input[b0 + i]!;
    if (d !== 0) return d;
  }
  return a1 - a0 - (b1 - b0);
}
