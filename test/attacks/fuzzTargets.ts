/**
 * Property-based fuzzing of every decoder and validator that takes bytes from a peer or a user
 * (shared by test/attacks/unit/fuzz.test.ts, a modest slice, and scripts/fuzz.ts, the full run).
 *
 * Seeds are real signed objects from a small finalized chain (ChainBuilder): transactions, blocks,
 * certificates, votes, proposals, sealed payloads, gossip messages and sync frames. fast-check generates
 * mutations of them: byte level (bit flips, byte sets, truncation, extension, insertion, deletion,
 * duplication, splicing with another seed, CBOR heads with huge lengths / indefinite lengths / tags,
 * deep nesting) and CBOR level (a field's value or type replaced, fields added or removed, elements
 * duplicated or swapped, subtrees grafted from another seed, edge numbers, deep nesting, byte and tree
 * mutations of byte strings nested inside — a transaction inside a block inside a sync frame —,
 * Ed25519 signature malleation S → S + L), re-encoded canonically or not (widened heads, floats for
 * integers, indefinite lengths, other key orders, duplicate keys). "Resign" cases play a byzantine
 * proposer who re-signs a mutated block header or proposal, so that the checks behind the signature
 * are reached too.
 *
 * Two properties per case:
 *  - no crash: the code under test returns or throws only the project's typed errors (MedLedgerError,
 *    P2PRequestError for frames) or its documented rejection result (a checkProposal reason, false
 *    from verifyVote, a gossip verdict); never a TypeError/RangeError/other exception, never a hang;
 *  - no invalid message accepted: whatever decodes and validates is, in its signed content, one of the
 *    genuine seed objects (byte-identical where the format is canonical), or a legitimately different
 *    valid object (a certificate with a subset of genuine signatures, a byzantine proposer's re-signed
 *    block with the same transactions and parent certificate).
 */
import { randomBytes } from 'node:crypto';
import * as fc from 'fast-check';
import { decode as cborDecode } from 'cborg';
import type { Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import { certificateHash, decodeBlock, encodeBlock, genesisBlock, headerHash, headerSchema, signHeader, type Block } from '../../src/consensus/block.js';
import { buildBlock, validateBlock, type ExecutedBlock, type ParentRef } from '../../src/consensus/blockExecution.js';
import { genesisState, parseGenesis, type Genesis } from '../../src/consensus/genesis.js';
import { merkleRoot } from '../../src/consensus/merkle.js';
import { checkProposal, proposalSchema, signProposal, type Proposal } from '../../src/consensus/proposal.js';
import { VoteBook } from '../../src/consensus/voteBook.js';
import { checkBlockPayloads } from '../../src/node/payloads.js';
import { proposerIndex } from '../../src/consensus/tendermint.js';
import {
  certificateFromVotes,
  certificateSchema,
  signVote,
  signedVoteSchema,
  verifyCertificate,
  verifyVote,
  type Certificate,
  type SignedVote,
} from '../../src/consensus/votes.js';
import { encodeProposal, encodeTxBatch, encodeVotes, gossipHandlers } from '../../src/node/gossip.js';
import type { ConsensusEngine } from '../../src/node/consensusEngine.js';
import type { Ledger } from '../../src/node/ledger.js';
import { Mempool } from '../../src/node/mempool.js';
import { encodeFrame, FrameReader, P2PRequestError } from '../../src/node/p2p/frames.js';
import { judgeMessage, type GossipHandler } from '../../src/node/p2p/verdict.js';
import { checkPayload, payloadKeys } from '../../src/node/payloads.js';
import { payloadKind } from '../../src/records/payloadKind.js';
import { SYNC_MAX_FRAME_BYTES, SyncManager } from '../../src/node/sync.js';
import type { ChainWriter } from '../../src/node/chainWriter.js';
import { BoundedTxCache } from '../../src/node/txCache.js';
import { bytesEqual, concatBytes, toHex } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { createSigner, type Signer } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { blobPayloadSchema, grantPayloadSchema, openBlob, parsePayload, unwrapKey } from '../../src/records/envelope.js';
import { MedLedgerError } from '../../src/records/errors.js';
import { bytes as bytesSchema, uintSchema } from '../../src/records/ids.js';
import { MemoryState } from '../../src/records/state/memoryState.js';
import { tableNames } from '../../src/records/state/types.js';
import { decodeTx, txId } from '../../src/records/tx/codec.js';
import type { Tx } from '../../src/records/tx/types.js';
import { ChainBuilder } from '../support/chainBuilder.js';
import { z } from 'zod';

// =====================================================================================================
// Findings
// =====================================================================================================

export type FindingKind = 'crash' | 'accepted-invalid' | 'hang';

/** A property violation: thrown out of a case so fast-check reports (and shrinks) it. */
export class FuzzFinding extends Error {
  override readonly name = 'FuzzFinding';
  constructor(
    readonly kind: FindingKind,
    message: string,
    readonly original?: unknown,
  ) {
    super(`${kind}: ${message}`);
    if (original instanceof Error && original.stack) this.stack = `${this.stack}\ncaused by: ${original.stack}`;
  }
}

function errorName(err: unknown): string {
  if (err instanceof Error) return `${err.constructor.name}: ${err.message.slice(0, 300)}`;
  return `non-error thrown: ${String(err).slice(0, 200)}`;
}

/** A typed rejection is counted by its code; anything else is a crash. */
function rejection(stats: TargetStats, err: unknown, where: string, alsoTyped?: (e: unknown) => string | undefined): void {
  if (err instanceof FuzzFinding) throw err;
  const code = err instanceof MedLedgerError ? err.code : alsoTyped?.(err);
  if (code === undefined) throw new FuzzFinding('crash', `${where} threw ${errorName(err)}`, err);
  stats.note(`${where}:${code}`);
  if (stats.detail) {
    const reason = `${where}:${code}: ${(err as Error).message
      .replace(/[0-9a-f]{8,}|\d+/g, '#')
      .replace(/\s+/g, ' ')
      .slice(0, 120)}`;
    stats.reasons.set(reason, (stats.reasons.get(reason) ?? 0) + 1);
  }
}

function acceptedInvalid(what: string): never {
  throw new FuzzFinding('accepted-invalid', what);
}

export class TargetStats {
  /** Also count rejections by their message (digits and hex masked): which checks the cases reach. */
  detail = false;
  readonly reasons = new Map<string, number>();
  cases = 0;
  accepted = 0;
  /** Outcomes by where and why (rejection codes, gossip verdicts, frame counts). */
  readonly outcomes = new Map<string, number>();
  note(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
  top(n = 4): string {
    return [...this.outcomes.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  }
}

// =====================================================================================================
// CBOR: a small encoder of our own that can also write non-canonical forms, and tree paths
// =====================================================================================================

export interface CborStyle {
  /** Integer and length heads one size larger than minimal. */
  widen: boolean;
  /** Integral numbers as float64. */
  floatInts: boolean;
  /** Arrays, maps, byte and text strings with indefinite length. */
  indefinite: boolean;
  keyOrder: 'canonical' | 'lengthFirst' | 'reverse' | 'insertion';
  /** Repeat the first entry of every map. */
  dupKey: boolean;
}
export const CANONICAL: CborStyle = { widen: false, floatInts: false, indefinite: false, keyOrder: 'canonical', dupKey: false };

const isCanonicalStyle = (s: CborStyle) => !s.widen && !s.floatInts && !s.indefinite && s.keyOrder === 'canonical' && !s.dupKey;

/** `depth` nested one-element arrays around `inner`, written iteratively (the harness must not overflow). */
class Nest {
  constructor(
    readonly depth: number,
    readonly inner: unknown,
  ) {}
}

class Writer {
  private parts: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private len = 0;
  byte(b: number): void {
    if (this.len === this.buf.length) this.flush();
    this.buf[this.len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.flush();
    this.parts.push(b);
  }
  private flush(): void {
    if (this.len > 0) this.parts.push(this.buf.slice(0, this.len));
    this.len = 0;
  }
  done(): Uint8Array {
    this.flush();
    // No spread: a value may be written in tens of thousands of parts.
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function writeHead(w: Writer, major: number, n: number | bigint, style: CborStyle): void {
  const v = BigInt(n);
  const sizes: [bigint, number, number][] = [
    [24n, 0, 0],
    [256n, 24, 1],
    [65536n, 25, 2],
    [4294967296n, 26, 4],
    [18446744073709551616n, 27, 8],
  ];
  let i = sizes.findIndex(([limit]) => v < limit);
  if (i < 0) throw new RangeError('head value over 64 bits');
  if (style.widen && i < sizes.length - 1) i++;
  const [, info, width] = sizes[i]!;
  if (width === 0) {
    w.byte((major << 5) | Number(v));
    return;
  }
  w.byte((major << 5) | info);
  for (let k = width - 1; k >= 0; k--) w.byte(Number((v >> BigInt(8 * k)) & 0xffn));
}

const textEncoder = new TextEncoder();

function encodedKey(k: string): Uint8Array {
  const w = new Writer();
  const b = textEncoder.encode(k);
  writeHead(w, 3, b.length, CANONICAL);
  w.bytes(b);
  return w.done();
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function writeValue(w: Writer, v: unknown, style: CborStyle, depth: number): void {
  if (depth > 200) throw new RangeError('harness value nested too deeply');
  if (v instanceof Nest) {
    for (let i = 0; i < v.depth; i++) {
      if (style.indefinite) w.byte(0x9f);
      else writeHead(w, 4, 1, style);
    }
    writeValue(w, v.inner, style, depth + 1);
    if (style.indefinite) for (let i = 0; i < v.depth; i++) w.byte(0xff);
    return;
  }
  if (v === false) return w.byte(0xf4);
  if (v === true) return w.byte(0xf5);
  if (v === null) return w.byte(0xf6);
  if (v === undefined) return w.byte(0xf7);
  if (typeof v === 'bigint') {
    if (v >= 0n && v < 2n ** 64n) return writeHead(w, 0, v, style);
    if (v < 0n && -1n - v < 2n ** 64n) return writeHead(w, 1, -1n - v, style);
    // bignum tag 2 / 3
    let m = v < 0n ? -1n - v : v;
    const out: number[] = [];
    while (m > 0n) {
      out.unshift(Number(m & 0xffn));
      m >>= 8n;
    }
    writeHead(w, 6, v < 0n ? 3 : 2, style);
    writeHead(w, 2, out.length, style);
    return w.bytes(Uint8Array.from(out));
  }
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && !Object.is(v, -0) && !style.floatInts) {
      return v >= 0 ? writeHead(w, 0, v, style) : writeHead(w, 1, -1 - v, style);
    }
    const f = new Uint8Array(9);
    f[0] = 0xfb;
    new DataView(f.buffer).setFloat64(1, v);
    return w.bytes(f);
  }
  if (typeof v === 'string') {
    const b = textEncoder.encode(v);
    if (style.indefinite) {
      w.byte(0x7f);
      const cut = b.length >> 1;
      for (const part of [b.subarray(0, cut), b.subarray(cut)]) {
        writeHead(w, 3, part.length, style);
        w.bytes(part);
      }
      return w.byte(0xff);
    }
    writeHead(w, 3, b.length, style);
    return w.bytes(b);
  }
  if (v instanceof Uint8Array) {
    if (style.indefinite) {
      w.byte(0x5f);
      const cut = v.length >> 1;
      for (const part of [v.subarray(0, cut), v.subarray(cut)]) {
        writeHead(w, 2, part.length, style);
        w.bytes(part);
      }
      return w.byte(0xff);
    }
    writeHead(w, 2, v.length, style);
    return w.bytes(v);
  }
  if (Array.isArray(v)) {
    if (style.indefinite) w.byte(0x9f);
    else writeHead(w, 4, v.length, style);
    for (const item of v) writeValue(w, item, style, depth + 1);
    if (style.indefinite) w.byte(0xff);
    return;
  }
  if (typeof v === 'object') {
    let entries = Object.keys(v).map((k) => [k, (v as Record<string, unknown>)[k]] as [string, unknown]);
    const keyed = entries.map((e) => ({ e, k: encodedKey(e[0]) }));
    if (style.keyOrder !== 'insertion')
      keyed.sort((a, b) => (style.keyOrder === 'lengthFirst' ? a.k.length - b.k.length || compareBytes(a.k, b.k) : compareBytes(a.k, b.k)));
    if (style.keyOrder === 'reverse') keyed.reverse();
    entries = keyed.map((x) => x.e);
    if (style.dupKey && entries.length > 0) entries.push(entries[0]!);
    if (style.indefinite) w.byte(0xbf);
    else writeHead(w, 5, entries.length, style);
    for (const [k, item] of entries) {
      writeValue(w, k, style, depth + 1);
      writeValue(w, item, style, depth + 1);
    }
    if (style.indefinite) w.byte(0xff);
    return;
  }
  throw new TypeError(`harness cannot encode ${typeof v}`);
}

function containsNest(v: unknown, depth = 0): boolean {
  if (v instanceof Nest) return true;
  if (depth > 200 || v === null || typeof v !== 'object' || v instanceof Uint8Array) return false;
  return Object.values(v).some((x) => containsNest(x, depth + 1));
}

/** Encodes a (mutated) tree; the canonical style goes through the project's own encoder when it can. */
export function encodeStyled(v: unknown, style: CborStyle): Uint8Array {
  if (isCanonicalStyle(style) && !containsNest(v)) {
    try {
      return encodeCanonical(v);
    } catch {
      // fall through to our writer (e.g. a value cborg refuses)
    }
  }
  const w = new Writer();
  writeValue(w, v, style, 0);
  return w.done();
}

/** Lenient decoding of a seed into a tree to mutate (seeds are canonical, so this never fails on them). */
function decodeTree(bytes: Uint8Array): unknown {
  return cborDecode(bytes, { useMaps: false });
}

type Path = (string | number)[];

function listPaths(root: unknown, limit = 4000): Path[] {
  const out: Path[] = [];
  const stack: { v: unknown; p: Path }[] = [{ v: root, p: [] }];
  while (stack.length > 0 && out.length < limit) {
    const { v, p } = stack.pop()!;
    out.push(p);
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array || v instanceof Nest || p.length > 64) continue;
    if (Array.isArray(v)) for (let i = v.length - 1; i >= 0 && i < 512; i--) stack.push({ v: v[i], p: [...p, i] });
    else for (const k of Object.keys(v).reverse()) stack.push({ v: (v as Record<string, unknown>)[k], p: [...p, k] });
  }
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const k of path) v = (v as Record<string | number, unknown>)[k];
  return v;
}

/** Sets (or with `remove`, deletes) the node at `path`; returns the new root. */
function setAt(root: unknown, path: Path, value: unknown, remove = false): unknown {
  if (path.length === 0) return remove ? undefined : value;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    if (remove) parent.splice(key as number, 1);
    else parent[key as number] = value;
  } else if (remove) {
    delete parent[key];
  } else {
    Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return root;
}

/** Nesting depth of a decoded tree (iterative). */
function depthOf(root: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    max = Math.max(max, d);
    if (isContainer(v)) for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Nest);
}

function cloneTree<T>(v: T): T {
  return structuredClone(v);
}

// =====================================================================================================
// Mutations
// =====================================================================================================

export type ByteOp =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'truncate'; at: number }
  | { k: 'extend'; b: Uint8Array }
  | { k: 'insert'; at: number; b: Uint8Array }
  | { k: 'delete'; at: number; n: number }
  | { k: 'dup'; at: number; n: number }
  | { k: 'splice'; other: number; at: number; otherAt: number }
  | { k: 'head'; at: number; h: Uint8Array; overwrite: boolean }
  | { k: 'nest'; depth: number; map: boolean };

export type BaseTreeOp =
  | { k: 'replace'; p: number; v: unknown }
  | { k: 'remove'; p: number }
  | { k: 'add'; p: number; key: string; v: unknown }
  | { k: 'dupElem'; p: number }
  | { k: 'swap'; p: number; q: number }
  | { k: 'graft'; p: number; other: number; q: number }
  | { k: 'malleate'; p: number }
  | { k: 'num'; p: number; v: number | bigint }
  | { k: 'nestValue'; p: number; depth: number };

export type TreeOp = BaseTreeOp | { k: 'inner'; p: number; ops: ByteOp[] } | { k: 'innerTree'; p: number; op: BaseTreeOp; style: CborStyle };

export interface Mutation {
  seed: number;
  layer: 'bytes' | 'tree';
  tree: TreeOp[];
  bytes: ByteOp[];
  style: CborStyle;
  /** Tree layer: a byzantine signer re-signs ('sig'), after recomputing the header's commitments ('roots'). */
  resign: false | 'sig' | 'roots';
}

const MAX_GROWTH = 1 << 20;

/** A copy (cborg returns Node Buffers, whose slice() is a view: never write through one). */
const copyOf = (b: Uint8Array, start = 0, end = b.length): Uint8Array => new Uint8Array(b.subarray(start, end));

function applyByteOp(b: Uint8Array, op: ByteOp, others: Uint8Array[]): Uint8Array {
  const insertAt = (n: number) => n % (b.length + 1);
  switch (op.k) {
    case 'flip': {
      if (b.length === 0) return b;
      const c = copyOf(b);
      c[op.at % c.length]! ^= 1 << (op.bit & 7);
      return c;
    }
    case 'set': {
      if (b.length === 0) return b;
      const c = copyOf(b);
      c[op.at % c.length] = op.v & 0xff;
      return c;
    }
    case 'truncate':
      return copyOf(b, 0, insertAt(op.at));
    case 'extend':
      return concatBytes(b, op.b);
    case 'insert': {
      const i = insertAt(op.at);
      return concatBytes(b.subarray(0, i), op.b, b.subarray(i));
    }
    case 'delete': {
      if (b.length === 0) return b;
      const i = op.at % b.length;
      return concatBytes(b.subarray(0, i), b.subarray(Math.min(b.length, i + op.n)));
    }
    case 'dup': {
      if (b.length === 0) return b;
      const i = op.at % b.length;
      const end = Math.min(b.length, i + Math.min(op.n, MAX_GROWTH));
      return concatBytes(b.subarray(0, end), b.subarray(i, end), b.subarray(end));
    }
    case 'splice': {
      const o = others.length > 0 ? others[op.other % others.length]! : b;
      return concatBytes(b.subarray(0, insertAt(op.at)), o.subarray(op.otherAt % (o.length + 1)));
    }
    case 'head': {
      const i = insertAt(op.at);
      if (!op.overwrite) return concatBytes(b.subarray(0, i), op.h, b.subarray(i));
      const c = copyOf(b);
      c.set(op.h.subarray(0, Math.max(0, c.length - i)), i);
      return c;
    }
    case 'nest': {
      const unit = op.map ? [0xa1, 0x60] : [0x81];
      const prefix = new Uint8Array(op.depth * unit.length);
      for (let i = 0; i < prefix.length; i++) prefix[i] = unit[i % unit.length]!;
      return concatBytes(prefix, b);
    }
  }
}

export function applyByteOps(b: Uint8Array, ops: ByteOp[], others: Uint8Array[]): Uint8Array {
  for (const op of ops) b = applyByteOp(b, op, others);
  return b;
}

/** Ed25519 group order: a signature (R, S) with S replaced by S + L is the classic malleation. */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

function malleate(sig: Uint8Array): Uint8Array {
  if (sig.length !== 64) return sig;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
  s += ED25519_L;
  const out = copyOf(sig);
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

function applyTreeOp(root: unknown, op: TreeOp, graftSources: unknown[]): unknown {
  const paths = listPaths(root);
  const path = paths[op.p % paths.length]!;
  const node = getAt(root, path);
  switch (op.k) {
    case 'replace':
      return setAt(root, path, cloneTree(op.v));
    case 'num':
      return setAt(root, path, op.v);
    case 'remove':
      return path.length === 0 ? root : setAt(root, path, undefined, true);
    case 'add': {
      if (Array.isArray(node)) {
        node.push(cloneTree(op.v));
        return root;
      }
      if (isContainer(node)) {
        Object.defineProperty(node, op.key, { value: cloneTree(op.v), enumerable: true, writable: true, configurable: true });
        return root;
      }
      return setAt(root, path, { [op.key]: cloneTree(op.v) });
    }
    case 'dupElem': {
      if (Array.isArray(node) && node.length > 0) node.push(cloneTree(node[op.p % node.length]));
      else if (path.length > 0) {
        const parent = getAt(root, path.slice(0, -1));
        if (Array.isArray(parent)) parent.push(cloneTree(node));
      }
      return root;
    }
    case 'swap': {
      const other = paths[op.q % paths.length]!;
      // Never swap a node with its own ancestor or descendant.
      const prefix = (a: Path, b: Path) => a.length <= b.length && a.every((k, i) => k === b[i]);
      if (prefix(path, other) || prefix(other, path)) return root;
      const a = getAt(root, path);
      const b = getAt(root, other);
      setAt(root, path, b);
      return setAt(root, other, a);
    }
    case 'graft': {
      const source = graftSources.length > 0 ? graftSources[op.other % graftSources.length] : root;
      const sourcePaths = listPaths(source);
      return setAt(root, path, cloneTree(getAt(source, sourcePaths[op.q % sourcePaths.length]!)));
    }
    case 'malleate': {
      // The op's index picks among the 64-byte strings (signatures) when there are any.
      const sigs = paths.filter((p) => {
        const v = getAt(root, p);
        return v instanceof Uint8Array && v.length === 64;
      });
      if (sigs.length === 0) return root;
      const at = sigs[op.p % sigs.length]!;
      return setAt(root, at, malleate(getAt(root, at) as Uint8Array));
    }
    case 'nestValue':
      return setAt(root, path, new Nest(op.depth, node));
    case 'inner':
    case 'innerTree': {
      // The op's index picks among byte strings: a transaction in a block, a block in a sync frame…
      const inner = paths.filter((p) => getAt(root, p) instanceof Uint8Array);
      if (inner.length === 0) return root;
      const at = inner[op.p % inner.length]!;
      const bytes = getAt(root, at) as Uint8Array;
      if (op.k === 'inner') return setAt(root, at, applyByteOps(bytes, op.ops, []));
      let tree: unknown;
      try {
        tree = decodeTree(bytes);
      } catch {
        return root; // not CBOR inside (a signature, a key, a ciphertext)
      }
      if (depthOf(tree) > 100) return root; // already nested by an earlier op: leave it as bytes
      return setAt(root, at, encodeStyled(applyTreeOp(tree, op.op, []), op.style));
    }
  }
}

/**
 * The bytes a case feeds to the code under test. `resign` (tree layer only) lets a byzantine signer
 * re-sign the mutated tree before it is encoded.
 */
export function mutate(m: Mutation, seeds: Uint8Array[], resign?: (tree: unknown, mode: 'sig' | 'roots') => void): Uint8Array {
  try {
    return mutateUnchecked(m, seeds, resign);
  } catch (err) {
    // Not a finding about the code under test: the harness itself failed to build the case.
    throw new FuzzFinding('crash', `fuzz harness could not build the case: ${errorName(err)}`, err);
  }
}

function mutateUnchecked(m: Mutation, seeds: Uint8Array[], resign?: (tree: unknown, mode: 'sig' | 'roots') => void): Uint8Array {
  const seed = seeds[m.seed % seeds.length]!;
  let out = seed;
  if (m.layer === 'tree') {
    let tree = decodeTree(seed);
    const grafts = seeds.map(decodeTree);
    for (const op of m.tree) tree = applyTreeOp(tree, op, grafts);
    if (m.resign && resign) {
      try {
        resign(tree, m.resign);
      } catch {
        // the byzantine signer only signs what it can shape into a header/proposal
      }
    }
    out = encodeStyled(tree, m.style);
  }
  return applyByteOps(out, m.bytes, seeds);
}

// ---- arbitraries ------------------------------------------------------------------------------------

const interestingBytes = fc.oneof(
  fc.constantFrom(
    0x00,
    0x01,
    0x17,
    0x18,
    0x19,
    0x1a,
    0x1b,
    0x1f,
    0x3b,
    0x40,
    0x58,
    0x5b,
    0x5f,
    0x60,
    0x78,
    0x7f,
    0x80,
    0x98,
    0x9f,
    0xa0,
    0xb8,
    0xbf,
    0xc0,
    0xc2,
    0xd8,
    0xf4,
    0xf6,
    0xf7,
    0xf9,
    0xfb,
    0xff,
  ),
  fc.integer({ min: 0, max: 255 }),
);

const ff = (n: number) => new Array<number>(n).fill(0xff);
/** CBOR heads that claim huge lengths, open indefinite items, break out, tag, or are not minimal. */
const hostileHeads: Uint8Array[] = [
  [0x5a, ...ff(4)],
  [0x5b, 0, 0, 0, 1, 0, 0, 0, 0],
  [0x5b, ...ff(8)],
  [0x7a, 0x7f, 0xff, 0xff, 0xff],
  [0x7b, ...ff(8)],
  [0x9a, 0x7f, 0xff, 0xff, 0xff],
  [0x9b, 0, 0, 0, 0x10, 0, 0, 0, 0],
  [0x9b, ...ff(8)],
  [0xba, ...ff(4)],
  [0xbb, ...ff(8)],
  [0x5f],
  [0x7f],
  [0x9f],
  [0xbf],
  [0xff],
  [0xc0],
  [0xc1, 0x1a, 0, 0, 0, 0],
  [0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0],
  [0xd8, 0x18],
  [0xd9, 0xd9, 0xf7],
  [0xf9, 0x7e, 0x00],
  [0xf9, 0x7c, 0x00],
  [0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1],
  [0xf7],
  [0xf8, 0x20],
  [0x1b, ...ff(8)],
  [0x3b, ...ff(8)],
  [0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0],
  [0x18, 0x00],
  [0x19, 0x00, 0x01],
  [0x1a, 0, 0, 0, 5],
  [0x38, 0x00],
  [0x62, 0xc3, 0x28],
  [0x63, 0xed, 0xa0, 0x80],
].map((h) => Uint8Array.from(h));

const smallBytes = fc.uint8Array({ minLength: 0, maxLength: 24 });

export const byteOpArb: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('set' as const), at: fc.nat(), v: interestingBytes }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('extend' as const), b: smallBytes }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('insert' as const), at: fc.nat(), b: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 70 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4096 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('splice' as const), other: fc.nat(), at: fc.nat(), otherAt: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('head' as const), at: fc.nat(), h: fc.constantFrom(...hostileHeads), overwrite: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('nest' as const),
      depth: fc.oneof(fc.constantFrom(1, 2, 64, 1_000, 20_000), fc.integer({ min: 4_000, max: 9_000 })),
      map: fc.boolean(),
    }),
  },
);

/** Own-property '__proto__' key: the classic prototype-pollution probe. */
function protoObject(): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  Object.defineProperty(o, '__proto__', { value: { polluted: true }, enumerable: true, writable: true, configurable: true });
  return o;
}

const edgeNumbers: (number | bigint)[] = [
  0,
  1,
  -1,
  23,
  24,
  255,
  256,
  65_535,
  65_536,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  -Number.MAX_SAFE_INTEGER,
  2 ** 63,
  1.5,
  -0,
  0.1,
  NaN,
  Infinity,
  -Infinity,
  1e300,
  2n ** 53n + 1n,
  2n ** 64n - 1n,
  -(2n ** 64n),
  2n ** 64n,
  2n ** 100n,
];

const idLike = [
  'pat-1',
  'pat-2',
  'doc-1',
  'aud-1',
  'admin-a',
  'hosp-a',
  'hosp-b',
  'medledger-test',
  'rec-0000000000000000',
  'file-0000000000000000',
  'apt-0000000000000000',
  'prevote',
  'precommit',
  'createRecord',
  'readRecord',
  'grantAccess',
  'queryAudit',
  'enrolUser',
  'admin',
  'doctor',
];
const keyLike = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'then',
  'v',
  'type',
  'sig',
  'tx',
  'txs',
  'body',
  'header',
  'block',
  'round',
  'height',
  'payload',
  'payloads',
  'keys',
  'n',
  'c',
  'epk',
  'w',
  'sigs',
  'validator',
  'lastCommit',
  'cert',
  'index',
  'redacted',
  'from',
  'to',
  'votes',
  'proposal',
  'recipients',
  'filter',
  'limit',
  'cursor',
  '',
];

export const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...edgeNumbers) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(true, false, null, undefined) },
  { weight: 2, arbitrary: fc.constantFrom(...idLike, ...keyLike) },
  { weight: 2, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(41), 'x'.repeat(70_000), '\ud800', '\u0000', 'é') },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.constantFrom(0, 1, 12, 31, 32, 33, 48, 63, 64, 65, 100).map((n) => new Uint8Array(n)),
      fc.constantFrom(12, 32, 48, 64).map((n) => new Uint8Array(n).fill(0xff)),
      smallBytes,
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom<unknown>([], [0], [null], [[[]]], {}, { a: 1 }, { v: 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(5_000, 20_000).map((n) => new Array<number>(n).fill(0)) },
  { weight: 1, arbitrary: fc.constant(null).map(protoObject) },
);

const styleArb: fc.Arbitrary<CborStyle> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(CANONICAL) },
  {
    weight: 1,
    arbitrary: fc.record({
      widen: fc.boolean(),
      floatInts: fc.boolean(),
      indefinite: fc.boolean(),
      keyOrder: fc.constantFrom('canonical' as const, 'lengthFirst' as const, 'reverse' as const, 'insertion' as const),
      dupKey: fc.boolean(),
    }),
  },
);

const baseTreeOpArb: fc.Arbitrary<BaseTreeOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('replace' as const), p: fc.nat(), v: valueArb }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('remove' as const), p: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('add' as const), p: fc.nat(), key: fc.oneof(fc.constantFrom(...keyLike), fc.string({ maxLength: 6 })), v: valueArb }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('dupElem' as const), p: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('swap' as const), p: fc.nat(), q: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('graft' as const), p: fc.nat(), other: fc.nat(), q: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('malleate' as const), p: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('num' as const), p: fc.nat(), v: fc.constantFrom(...edgeNumbers) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('nestValue' as const),
      p: fc.nat(),
      depth: fc.oneof(fc.constantFrom(1, 3, 100, 1_000, 20_000), fc.integer({ min: 4_000, max: 9_000 })),
    }),
  },
);

export const treeOpArb: fc.Arbitrary<TreeOp> = fc.oneof(
  { weight: 6, arbitrary: baseTreeOpArb },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('inner' as const), p: fc.nat(), ops: fc.array(byteOpArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('innerTree' as const), p: fc.nat(), op: baseTreeOpArb, style: styleArb }) },
);

export function mutationArb(opts: { resign?: boolean } = {}): fc.Arbitrary<Mutation> {
  const bytesCase = fc.record({
    seed: fc.nat(),
    layer: fc.constant('bytes' as const),
    tree: fc.constant([] as TreeOp[]),
    bytes: fc.array(byteOpArb, { minLength: 1, maxLength: 4 }),
    style: fc.constant(CANONICAL),
    resign: fc.constant(false as const),
  });
  const treeCase = fc.record({
    seed: fc.nat(),
    layer: fc.constant('tree' as const),
    tree: fc.array(treeOpArb, { minLength: 1, maxLength: 3 }),
    bytes: fc.oneof({ weight: 5, arbitrary: fc.constant([] as ByteOp[]) }, { weight: 1, arbitrary: fc.array(byteOpArb, { minLength: 1, maxLength: 1 }) }),
    style: styleArb,
    resign: opts.resign ? fc.constantFrom(false as const, 'sig' as const, 'roots' as const) : fc.constant(false as const),
  });
  return fc.oneof({ weight: 1, arbitrary: bytesCase }, { weight: 1, arbitrary: treeCase });
}

// =====================================================================================================
// Fixture: a small real chain, serialisable so a failing run can be replayed with the same keys
// =====================================================================================================

export interface FixtureData {
  v: 1;
  genesis: unknown;
  validatorSecrets: Uint8Array[];
  /** X25519 keys of users, to check that a tampered envelope never opens to something else. */
  users: { id: string; secretKey: Uint8Array; publicKey: Uint8Array }[];
  blocks: { block: Uint8Array; cert: Uint8Array; payloads: { tx: string; payload: Uint8Array }[] }[];
  /** Signed transactions valid at the head, not in any block yet (the mempool's and the proposal's). */
  pending: { tx: Uint8Array; payload?: Uint8Array }[];
  /** Proposals for head + 1 (round 0, and round 1 re-proposing it with validRound 0). */
  proposals: Uint8Array[];
  votes: Uint8Array[];
  /** Certificates beyond those of the blocks (all four validators for the head). */
  certs: Uint8Array[];
  /** "Now" for admission and live proposals. */
  clock: number;
}

export function buildFixtureData(): FixtureData {
  const chain = ChainBuilder.create();
  const network = chain.genesis.file.network;
  chain.finalize([
    chain.registerPatient('pat-1', 'hosp-a'),
    chain.registerPatient('pat-2', 'hosp-b'),
    ...chain.enrol('admin-a', 'doc-1', 'doctor'),
    ...chain.enrol('admin-b', 'aud-1', 'auditor'),
  ]);
  const r1 = chain.createRecord('pat-1', 'pat-1', 'BP 120/80');
  chain.finalize([
    r1.tx,
    chain.sign('doc-1', { type: 'requestAccess', patient: 'pat-2', body: {} }),
    chain.sign('pat-1', {
      type: 'bookAppointment',
      patient: 'pat-1',
      body: { appointment: chain.appointmentId(), doctor: 'doc-1', at: chain.clock + 86_400_000 },
    }),
  ]);
  const grant = chain.grant('pat-1', 'doc-1');
  const approve = chain.approve('pat-2', 'doc-1');
  chain.finalize([grant.tx, approve.tx]);
  const update = chain.updateRecord('doc-1', 'pat-1', r1.record, 2, 'BP 118/79');
  const file = chain.attachFile('doc-1', 'pat-1', r1.record, 'scan.png');
  chain.finalize([
    update.tx,
    file.tx,
    chain.readRecord('doc-1', 'pat-1', r1.record),
    chain.sign('aud-1', { type: 'queryAudit', body: { filter: { hospital: 'hosp-b', action: 'R' }, limit: 10 } }),
    chain.sign('pat-1', { type: 'queryAudit', body: { filter: { patient: 'pat-1' } } }),
  ]);
  const r2 = chain.createRecord('doc-1', 'pat-2', 'note');
  chain.finalize([r2.tx]);
  chain.finalize([chain.deleteRecord('pat-2', 'pat-2', r2.record), chain.sign('pat-2', { type: 'listRecords', patient: 'pat-2', body: {} })]);

  // Pending: valid at the head, in the mempool of a node and in the next proposal.
  const pr = chain.createRecord('doc-1', 'pat-1', 'pending note');
  const pending: { tx: Tx; payload?: Uint8Array }[] = [
    { tx: pr.tx, payload: pr.payload },
    { tx: chain.readRecord('pat-1', 'pat-1', r1.record) },
    { tx: chain.sign('pat-2', { type: 'listRecords', patient: 'pat-2', body: {} }) },
    { tx: chain.revoke('pat-1', 'doc-1') },
  ];

  const n = chain.validators.length;
  const height = chain.height + 1;
  const last = chain.blocks[chain.blocks.length - 1]!;
  const { executed, dropped } = buildBlock({
    genesis: chain.genesis,
    parent: chain.head,
    lastCommit: last.cert,
    state: chain.state,
    candidates: pending.map((p) => p.tx),
    round: 0,
    time: chain.clock,
    signer: chain.validators[proposerIndex(n, height, 0)]!.signer,
  });
  if (dropped.length > 0) throw new Error(`fixture: pending transaction dropped: ${dropped[0]!.error.message}`);
  const payloads = executed.txs.map((t) => pending.find((p) => p.tx.idHex === t.idHex)?.payload ?? null);
  const p0 = signProposal(
    network,
    { height, round: 0, validRound: -1, block: executed.block, payloads },
    chain.validators[proposerIndex(n, height, 0)]!.signer,
    chain.genesis.hash,
  );
  const p1 = signProposal(
    network,
    { height, round: 1, validRound: 0, block: executed.block, payloads },
    chain.validators[proposerIndex(n, height, 1)]!.signer,
    chain.genesis.hash,
  );

  const votes: SignedVote[] = [];
  for (let v = 0; v < n; v++) {
    for (const type of ['prevote', 'precommit'] as const) {
      votes.push(signVote({ type, network, height, round: 0, validator: v, block: executed.hash }, chain.validators[v]!.signer, chain.genesis.hash));
    }
  }
  votes.push(signVote({ type: 'prevote', network, height, round: 1, validator: 2, block: null }, chain.validators[2]!.signer, chain.genesis.hash));

  const lastHash = last.executed.hash;
  const fullCert = certificateFromVotes(
    chain.validators.map((val, v) =>
      signVote(
        { type: 'precommit', network, height: chain.height, round: last.executed.block.header.round, validator: v, block: lastHash },
        val.signer,
        chain.genesis.hash,
      ),
    ),
  );

  return {
    v: 1,
    genesis: chain.genesis.file,
    validatorSecrets: chain.validators.map((v) => v.signing.secretKey),
    users: ['pat-1', 'pat-2', 'doc-1'].map((id) => ({ id, secretKey: chain.keys(id).enc.secretKey, publicKey: chain.keys(id).enc.publicKey })),
    blocks: chain.blocks.map((b) => ({
      block: encodeBlock(b.executed.block),
      cert: encodeCanonical(b.cert),
      payloads: [...b.payloads.entries()].map(([tx, payload]) => ({ tx, payload })),
    })),
    pending: pending.map((p) => ({ tx: p.tx.bytes, ...(p.payload ? { payload: p.payload } : {}) })),
    proposals: [p0, p1].map((p) => encodeCanonical(p)),
    votes: votes.map((v) => encodeCanonical(v)),
    certs: [encodeCanonical(fullCert)],
    clock: chain.clock,
  };
}

export function encodeFixture(data: FixtureData): Uint8Array {
  return encodeCanonical(data);
}

/** A payload with the transaction it belongs to. */
interface PayloadSeed {
  tx: Tx;
  payload: Uint8Array;
}

export interface Fixture {
  data: FixtureData;
  genesis: Genesis;
  network: string;
  signers: Signer[];
  users: Map<string, { id: string; secretKey: Uint8Array; publicKey: Uint8Array }>;
  /** blocks[h - 1] is height h. */
  blocks: { bytes: Uint8Array; block: Block; executed: ExecutedBlock; cert: Certificate; certBytes: Uint8Array; payloads: Map<string, Uint8Array> }[];
  /** parents[h]: the ref of block h (parents[0] is block 0). */
  parents: ParentRef[];
  /** states[h]: the state after block h. */
  states: MemoryState[];
  head: ParentRef;
  headState: MemoryState;
  pending: { tx: Tx; payload?: Uint8Array }[];
  proposals: Proposal[];
  proposalBytes: Uint8Array[];
  votes: SignedVote[];
  voteBytes: Uint8Array[];
  certs: { cert: Certificate; bytes: Uint8Array }[];
  payloads: PayloadSeed[];
  /** What each blob's genuine envelopes open to (any recipient): its plaintext and its data key. */
  plaintextByBlob: Map<string, Uint8Array>;
  dataKeyByBlob: Map<string, Uint8Array>;
  /** Every genuine signed transaction (hex of its bytes). */
  txSet: Set<string>;
  /** Genuine precommit signatures: `${height}/${round}/${blockHex}/${validator}` → sig hex. */
  genuineSigs: Map<string, Set<string>>;
  finalizedTxIds: Set<string>;
  clock: number;
}

function cloneState(state: MemoryState): MemoryState {
  const copy = new MemoryState();
  for (const table of tableNames) copy.write([...state.entries(table)].map(([key, value]) => ({ table, key, value }) as never));
  return copy;
}

/** Rebuilds everything from the serialised data, re-validating the chain (a stale fixture fails here). */
export function loadFixture(data: FixtureData): Fixture {
  const genesis = parseGenesis(data.genesis);
  const network = genesis.file.network;
  const signers = data.validatorSecrets.map((s) => createSigner(s));
  signers.forEach((s, i) => {
    if (!bytesEqual(s.publicKey, genesis.validators[i]!.key)) throw new Error(`fixture: validator ${i} key mismatch`);
  });
  const maxBytes = genesis.params.maxBlockBytes;
  let state = genesisState(genesis);
  const block0 = genesisBlock(genesis);
  const parents: ParentRef[] = [{ header: block0.header, hash: headerHash(block0.header) }];
  const states: MemoryState[] = [state];
  const blocks: Fixture['blocks'] = [];
  const genuineSigs = new Map<string, Set<string>>();
  const noteCert = (cert: Certificate) => {
    for (const { validator, sig } of cert.sigs) {
      const key = `${cert.height}/${cert.round}/${toHex(cert.block)}/${validator}`;
      if (!genuineSigs.has(key)) genuineSigs.set(key, new Set());
      genuineSigs.get(key)!.add(toHex(sig));
    }
  };
  for (const b of data.blocks) {
    const block = decodeBlock(b.block, maxBytes);
    const executed = validateBlock(block, parents[parents.length - 1]!, state, { genesis });
    const cert = certificateSchema.parse(decodeCanonical(b.cert, 'certificate'));
    verifyCertificate(cert, genesis.validators, network, { height: block.header.height, block: executed.hash });
    noteCert(cert);
    state = cloneState(state);
    state.write(executed.changes);
    parents.push({ header: block.header, hash: executed.hash });
    states.push(state);
    blocks.push({ bytes: b.block, block, executed, cert, certBytes: b.cert, payloads: new Map(b.payloads.map((p) => [p.tx, p.payload])) });
  }
  const head = parents[parents.length - 1]!;
  const headState = states[states.length - 1]!;
  const pending = data.pending.map((p) => ({ tx: decodeTx(p.tx, { genesisHash: genesis.hash }), ...(p.payload ? { payload: p.payload } : {}) }));
  const proposals = data.proposals.map((b) => proposalSchema.parse(decodeCanonical(b, 'proposal')));
  for (const p of proposals) {
    const problem = checkProposal(p, genesis.validators, network);
    if (problem) throw new Error(`fixture: proposal ${p.round}: ${problem}`);
    validateBlock(p.block, head, headState, { genesis });
  }
  const votes = data.votes.map((b) => signedVoteSchema.parse(decodeCanonical(b, 'vote')));
  for (const v of votes) if (!verifyVote(v, genesis.validators)) throw new Error('fixture: bad vote');
  const certs = data.certs.map((bytes) => ({ cert: certificateSchema.parse(decodeCanonical(bytes, 'certificate')), bytes }));
  for (const { cert } of certs) {
    verifyCertificate(cert, genesis.validators, network);
    noteCert(cert);
  }
  for (const b of blocks) certs.push({ cert: b.cert, bytes: b.certBytes });

  const users = new Map(data.users.map((u) => [u.id, u]));
  const txSet = new Set<string>();
  const finalizedTxIds = new Set<string>();
  const payloads: PayloadSeed[] = [];
  const plaintextByBlob = new Map<string, Uint8Array>();
  const dataKeyByBlob = new Map<string, Uint8Array>();
  const learn = (map: Map<string, Uint8Array>, blob: string, value: Uint8Array) => {
    if (map.has(blob) && !bytesEqual(map.get(blob)!, value)) throw new Error(`fixture: blob ${blob} opens to two different values`);
    map.set(blob, value);
  };
  const addPayload = (tx: Tx, payload: Uint8Array) => {
    const kind = payloadKind(tx.tx)!;
    for (const { blob, user, key } of payloadKeys(kind, payload)) {
      const me = users.get(user);
      if (!me) continue;
      learn(dataKeyByBlob, blob, unwrapKey(key, blob, user, me.secretKey, me.publicKey));
      if (kind.kind === 'blob') learn(plaintextByBlob, blob, openBlob(parsePayload(blobPayloadSchema, payload, 'payload'), key, blob, me));
    }
    payloads.push({ tx, payload });
  };
  for (const b of blocks) {
    for (const tx of b.executed.txs) {
      txSet.add(toHex(tx.bytes));
      finalizedTxIds.add(tx.idHex);
      const payload = b.payloads.get(tx.idHex);
      if (payload) addPayload(tx, payload);
    }
  }
  for (const p of pending) {
    txSet.add(toHex(p.tx.bytes));
    if (p.payload) addPayload(p.tx, p.payload);
  }
  return {
    data,
    genesis,
    network,
    signers,
    users,
    blocks,
    parents,
    states,
    head,
    headState,
    pending,
    proposals,
    proposalBytes: data.proposals,
    votes,
    voteBytes: data.votes,
    certs,
    payloads,
    plaintextByBlob,
    dataKeyByBlob,
    txSet,
    genuineSigs,
    finalizedTxIds,
    clock: data.clock,
  };
}

export function decodeFixture(bytes: Uint8Array): FixtureData {
  return cborDecode(bytes, { useMaps: false }) as FixtureData;
}

// =====================================================================================================
// Oracles shared by several targets
// =====================================================================================================

/** Every signature of an accepted certificate must be a genuine precommit for what it certifies. */
function checkGenuineCertificate(fx: Fixture, cert: Certificate, what: string): void {
  for (const { validator, sig } of cert.sigs) {
    const key = `${cert.height}/${cert.round}/${toHex(cert.block)}/${validator}`;
    if (!fx.genuineSigs.get(key)?.has(toHex(sig)))
      acceptedInvalid(`${what}: certificate signature of validator ${validator} is not a genuine precommit (${toHex(sig).slice(0, 16)}…)`);
  }
}

/**
 * An accepted block must be the original; a byzantine proposer's re-signed block may differ only in what
 * the proposer legitimately chooses (round, proposer index, time, signature), never in its transactions,
 * its parent certificate, its height, parent or roots.
 */
function checkAcceptedBlock(fx: Fixture, block: Block, original: Block, resigned: boolean, what: string): void {
  if (bytesEqual(encodeBlock(block), encodeBlock(original))) return;
  if (!resigned) acceptedInvalid(`${what}: a mutated block validated (header ${toHex(headerHash(block.header)).slice(0, 16)}…)`);
  const strip = (b: Block) => encodeCanonical({ ...b.header, round: 0, proposer: 0, time: 0 });
  if (!bytesEqual(strip(block), strip(original))) acceptedInvalid(`${what}: a re-signed block with a different header validated`);
  if (!bytesEqual(encodeCanonical(block.txs), encodeCanonical(original.txs)))
    acceptedInvalid(`${what}: a re-signed block with different transactions validated`);
  if (!bytesEqual(encodeCanonical(block.lastCommit), encodeCanonical(original.lastCommit))) {
    if (!block.lastCommit) acceptedInvalid(`${what}: a block lost its parent certificate and validated`);
    checkGenuineCertificate(fx, block.lastCommit, what);
  }
}

function resignHeader(fx: Fixture, header: unknown): Uint8Array | undefined {
  const parsed = headerSchema.safeParse(header);
  if (!parsed.success) return undefined;
  const signer = fx.signers[proposerIndex(fx.signers.length, parsed.data.height, parsed.data.round)]!;
  return signHeader(parsed.data, signer, fx.genesis.hash);
}

function resignBlockTree(fx: Fixture, tree: unknown, mode: 'sig' | 'roots'): void {
  if (!isContainer(tree) || Array.isArray(tree)) return;
  const header = tree.header;
  if (mode === 'roots' && isContainer(header) && !Array.isArray(header)) {
    // A byzantine proposer who commits to whatever transactions and certificate it carries, so that
    // validation gets as far as executing them.
    const txs = tree.txs;
    if (Array.isArray(txs) && txs.every((t) => t instanceof Uint8Array)) {
      header.txRoot = merkleRoot(txs as Uint8Array[]);
      header.txCount = txs.length;
    }
    if (tree.lastCommit === null) header.lastCommit = new Uint8Array(32);
    const cert = certificateSchema.safeParse(tree.lastCommit);
    if (cert.success) header.lastCommit = certificateHash(cert.data);
  }
  const sig = resignHeader(fx, header);
  if (sig) tree.sig = sig;
}

function resignProposalTree(fx: Fixture, tree: unknown, mode: 'sig' | 'roots'): void {
  if (!isContainer(tree) || Array.isArray(tree)) return;
  resignBlockTree(fx, tree.block, mode);
  const parsed = proposalSchema.safeParse(tree);
  if (!parsed.success) return;
  const p = parsed.data;
  tree.sig = signProposal(fx.network, p, fx.signers[proposerIndex(fx.signers.length, p.height, p.round)]!, fx.genesis.hash).sig;
}

/** Runs `fn` with Date.now() pinned, so that admission and live checks are reproducible. */
async function withClock<T>(now: number, fn: () => T | Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => now;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

function sameVote(a: SignedVote, b: SignedVote): boolean {
  return bytesEqual(encodeCanonical(a), encodeCanonical(b));
}

// =====================================================================================================
// Targets
// =====================================================================================================

export interface FuzzTarget<C = unknown> {
  name: string;
  what: string;
  arb: fc.Arbitrary<C>;
  async: boolean;
  /** The seed messages (checked for in-place modification after every run). */
  seeds: Uint8Array[];
  run(c: C, stats: TargetStats): void | Promise<void>;
}

/** A list of targets whose case types differ (each target's `run` takes its own). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- `unknown` would not accept a target's narrower `run`
export type AnyFuzzTarget = FuzzTarget<any>;

const quietLogger = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, fatal() {} } as unknown as Logger;

/** A logger whose error() (gossip.ts logs its own bugs there, "not the sender's fault") records a crash. */
function crashLogger(crashes: FuzzFinding[]): Logger {
  const error = (obj: { err?: unknown }, msg?: string) =>
    crashes.push(new FuzzFinding('crash', `logged as our own bug: ${msg ?? ''} ${errorName(obj?.err)}`, obj?.err));
  return { ...(quietLogger as object), error, fatal: error, child: () => crashLogger(crashes) } as unknown as Logger;
}

/**
 * A gossip validator's verdict as the host judges it (p2p/verdict.ts): a GossipError is a verdict, anything
 * else thrown is a crash (the host would ignore the message and log it as our own bug).
 */
async function gossipVerdict(what: string, handler: GossipHandler, bytes: Uint8Array, clock?: number): Promise<string> {
  const judge = () => judgeMessage(handler, bytes, { topic: what, peer: 'fuzz-peer', maxMessageBytes: Infinity, log: quietLogger });
  const judged = clock === undefined ? await judge() : await withClock(clock, judge);
  if (judged.unexpected !== undefined) throw new FuzzFinding('crash', `gossip ${what} validate threw ${errorName(judged.unexpected)}`, judged.unexpected);
  return judged.verdict;
}

/** The real gossip validators of src/node/gossip.ts over a node at the fixture's head (fresh per case). */
function gossipNode(fx: Fixture) {
  const mempool = new Mempool({ maxTxs: 10_000, maxBytes: 64 * 1024 * 1024 });
  const proposals: Proposal[] = [];
  const assessed = new Map<Proposal, 'valid' | 'invalid'>();
  const votes: SignedVote[] = [];
  const crashes: FuzzFinding[] = [];
  const ledger = {
    genesis: fx.genesis,
    state: fx.headState,
    height: fx.head.header.height,
    txCache: new BoundedTxCache(),
    txLocation: async (idHex: string) => (fx.finalizedTxIds.has(idHex) ? { height: 1, index: 0 } : undefined),
  };
  const engine = {
    checkProposal: (p: Proposal) => checkProposal(p, fx.genesis.validators, fx.network),
    // As ConsensusEngine.assess: validateBlock against the head plus the payload check; it catches
    // everything, so here a non-typed error is recorded as a crash rather than hidden as 'invalid'.
    assess(p: Proposal): 'valid' | 'invalid' {
      let verdict: 'valid' | 'invalid' = 'valid';
      try {
        const executed = validateBlock(p.block, fx.head, fx.headState, { genesis: fx.genesis, now: Date.now() });
        checkBlockPayloads(executed.txs, p.payloads);
      } catch (err) {
        if (!(err instanceof MedLedgerError)) crashes.push(new FuzzFinding('crash', `validateBlock (gossiped proposal) threw ${errorName(err)}`, err));
        verdict = 'invalid';
      }
      assessed.set(p, verdict);
      return verdict;
    },
    onProposal: (p: Proposal) => proposals.push(p),
    onVote: (v: SignedVote) => votes.push(v),
    onMempoolTx: () => {},
    // As ConsensusEngine.judgeVote, over a real vote book of the next height (round 0).
    round: 0,
    judgeVote(v: SignedVote): 'useful' | 'known' | 'excess' {
      if (v.height < book.height) return 'known';
      if (v.height > book.height) return 'useful';
      const verdict = book.wouldAdd(v, 0);
      return verdict === 'new' ? 'useful' : verdict === 'duplicate' ? 'known' : 'excess';
    },
  };
  const book = new VoteBook(fx.head.header.height + 1);
  const handlers = gossipHandlers({ ledger: ledger as unknown as Ledger, mempool, engine: engine as unknown as ConsensusEngine, logger: crashLogger(crashes) });
  return { handlers, mempool, proposals, assessed, votes, crashes };
}

/** The shape of sync.ts's frames (private there), and the sync request it serves. */
const syncFrameSchema = z.strictObject({
  block: bytesSchema(),
  cert: certificateSchema,
  payloads: z.array(z.strictObject({ index: uintSchema, payload: bytesSchema(), redacted: z.boolean() })),
});

/** A SyncManager serving the fixture's chain (only serve() is used: no host, no chain writer). */
function syncServer(fx: Fixture): SyncManager {
  const byId = new Map<string, Uint8Array>();
  for (const b of fx.blocks) for (const [id, p] of b.payloads) byId.set(id, p);
  const ledger = {
    height: fx.blocks.length,
    getStoredBlock: async (h: number) => {
      const b = fx.blocks[h - 1];
      return b && { block: b.block, bytes: b.bytes };
    },
    getCertificate: async (h: number) => fx.blocks[h - 1]?.cert,
    getPayload: async (id: string) => (byId.has(id) ? { payload: byId.get(id)!, redacted: false } : undefined),
  };
  return new SyncManager({
    ledger: ledger as unknown as Ledger,
    chain: null as unknown as ChainWriter,
    host: () => {
      throw new Error('not used');
    },
    logger: quietLogger,
    maxBlockBytes: fx.genesis.params.maxBlockBytes,
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Just enough of a libp2p stream for FrameReader: events, pause/resume holding data back. */
class FakeStream extends EventTarget {
  remoteWriteStatus = 'writable';
  private paused = false;
  private held: Uint8Array[] = [];
  receive(chunk: Uint8Array): void {
    if (this.paused) this.held.push(chunk);
    else this.dispatchEvent(Object.assign(new Event('message'), { data: chunk }));
  }
  end(): void {
    this.remoteWriteStatus = 'closed';
    this.dispatchEvent(new Event('remoteCloseWrite'));
  }
  reset(): void {
    this.dispatchEvent(Object.assign(new Event('close'), { error: new Error('connection reset') }));
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    for (const chunk of this.held.splice(0)) this.receive(chunk);
  }
}

export interface SyncFrameCase {
  m: Mutation;
  /** Which frame a tree-level mutation applies to. */
  frame: number;
  /** Chunk sizes the stream is cut into (cycled). */
  chunks: number[];
  /** How many chunks arrive before the reader starts waiting. */
  early: number;
  /** How the remote ends: cleanly, never (all bytes arrive at once, then the reader times out), or with a reset. */
  close: 'end' | 'stall' | 'reset';
  /** Append a >1 MiB frame, so the reader pauses the stream. */
  big: boolean;
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

export function makeTargets(fx: Fixture): AnyFuzzTarget[] {
  const { genesis, network } = fx;
  const validators = genesis.validators;
  const maxBlockBytes = genesis.params.maxBlockBytes;

  // ---- seeds --------------------------------------------------------------------------------------
  const txSeeds = [...fx.blocks.flatMap((b) => b.block.txs), ...fx.pending.map((p) => p.tx.bytes)];
  const blockSeeds = fx.blocks.map((b) => b.bytes);
  const certSeeds = fx.certs.map((c) => c.bytes);
  const payloadSeeds = fx.payloads.map((p) => p.payload);
  const batchSeeds = [
    encodeTxBatch([fx.pending[0]!].map((p) => ({ tx: p.tx.bytes, payload: p.payload! }))),
    encodeTxBatch(fx.pending.map((p) => (p.payload ? { tx: p.tx.bytes, payload: p.payload } : { tx: p.tx.bytes }))),
    encodeTxBatch([{ tx: fx.pending[1]!.tx.bytes }]),
    encodeTxBatch([{ tx: fx.blocks[0]!.block.txs[0]! }]),
  ];
  const proposalMsgSeeds = fx.proposals.map((p) => encodeProposal(p));
  const voteMsgSeeds = [encodeVotes(fx.votes), encodeVotes([fx.votes[0]!]), encodeVotes(fx.votes.filter((v) => v.type === 'precommit'))];
  const genuineProposal = (p: Proposal) =>
    fx.proposals.some(
      (o) =>
        o.height === p.height && o.round === p.round && o.validRound === p.validRound && bytesEqual(headerHash(o.block.header), headerHash(p.block.header)),
    );

  const server = syncServer(fx);
  const last = fx.blocks.length;
  const requestSeeds = [
    encodeCanonical({ from: 1, to: last }),
    encodeCanonical({ from: last, to: last + 10 }),
    encodeCanonical({ from: 2, to: 3 }),
    encodeCanonical({ from: 0, to: 0 }),
  ];
  const genuineFrames: Uint8Array[] = [];
  const ranges: [number, number][] = [
    [1, last],
    [last, last],
    [2, 3],
  ];

  const txTarget: FuzzTarget<Mutation> = {
    name: 'tx',
    what: 'decodeTx (records/tx/codec.ts): canonical CBOR, schema, per-type body, id, Ed25519 signature',
    arb: mutationArb(),
    async: false,
    seeds: txSeeds,
    run(m, stats) {
      const bytes = mutate(m, txSeeds);
      let tx: Tx;
      try {
        tx = decodeTx(bytes, { genesisHash: fx.genesis.hash });
      } catch (err) {
        return rejection(stats, err, 'decodeTx');
      }
      stats.accepted++;
      if (!fx.txSet.has(toHex(bytes)))
        acceptedInvalid(`decodeTx accepted ${bytes.length} bytes that are no genuine transaction (${tx.tx.type} by ${tx.tx.actor})`);
      if (!bytesEqual(tx.id, txId(tx.tx))) acceptedInvalid('decodeTx returned an id that is not the hash of the decoded content');
    },
  };

  const blockTarget: FuzzTarget<Mutation> = {
    name: 'block',
    what: 'decodeBlock + validateBlock (consensus/block.ts, blockExecution.ts) against the parent and its state',
    arb: mutationArb({ resign: true }),
    async: false,
    seeds: blockSeeds,
    run(m, stats) {
      const i = m.seed % blockSeeds.length;
      const bytes = mutate(m, blockSeeds, (tree, mode) => resignBlockTree(fx, tree, mode));
      let block: Block;
      try {
        block = decodeBlock(bytes, maxBlockBytes);
      } catch (err) {
        return rejection(stats, err, 'decodeBlock');
      }
      try {
        validateBlock(block, fx.parents[i]!, fx.states[i]!, { genesis });
      } catch (err) {
        return rejection(stats, err, 'validateBlock');
      }
      stats.accepted++;
      checkAcceptedBlock(fx, block, fx.blocks[i]!.block, m.resign !== false, `block ${i + 1}`);
    },
  };

  const voteTarget: FuzzTarget<Mutation> = {
    name: 'vote',
    what: 'signedVoteSchema + verifyVote (consensus/votes.ts), decoded as gossip does',
    arb: mutationArb(),
    async: false,
    seeds: fx.voteBytes,
    run(m, stats) {
      const bytes = mutate(m, fx.voteBytes);
      let value: unknown;
      try {
        value = decodeCanonical(bytes, 'vote', { requireCanonical: false });
      } catch (err) {
        return rejection(stats, err, 'decode');
      }
      const parsed = signedVoteSchema.safeParse(value);
      if (!parsed.success) return stats.note('schema');
      if (parsed.data.network !== network) return stats.note('network');
      let ok: boolean;
      try {
        ok = verifyVote(parsed.data, validators);
      } catch (err) {
        return rejection(stats, err, 'verifyVote');
      }
      if (!ok) return stats.note('verifyVote:false');
      stats.accepted++;
      if (!fx.votes.some((v) => sameVote(v, parsed.data)))
        acceptedInvalid(`verifyVote accepted a vote that was never signed: ${JSON.stringify(describeValue(parsed.data))}`);
    },
  };

  const certificateTarget: FuzzTarget<Mutation> = {
    name: 'certificate',
    what: 'certificateSchema + verifyCertificate (consensus/votes.ts) for the height and block it must certify',
    arb: mutationArb(),
    async: false,
    seeds: certSeeds,
    run(m, stats) {
      const original = fx.certs[m.seed % fx.certs.length]!.cert;
      const bytes = mutate(m, certSeeds);
      let value: unknown;
      try {
        value = decodeCanonical(bytes, 'certificate');
      } catch (err) {
        return rejection(stats, err, 'decode');
      }
      const parsed = certificateSchema.safeParse(value);
      if (!parsed.success) return stats.note('schema');
      try {
        verifyCertificate(parsed.data, validators, network, { height: original.height, block: original.block });
      } catch (err) {
        return rejection(stats, err, 'verifyCertificate');
      }
      stats.accepted++;
      const cert = parsed.data;
      if (cert.height !== original.height || cert.round !== original.round || !bytesEqual(cert.block, original.block)) {
        acceptedInvalid(`a certificate for ${cert.height}/${cert.round} was accepted in place of ${original.height}/${original.round}`);
      }
      checkGenuineCertificate(fx, cert, 'verifyCertificate');
    },
  };

  const proposalTarget: FuzzTarget<Mutation> = {
    name: 'proposal',
    what: 'proposalSchema + checkProposal (consensus/proposal.ts), then validateBlock and the payload checks of a live proposal',
    arb: mutationArb({ resign: true }),
    async: false,
    seeds: fx.proposalBytes,
    run(m, stats) {
      const original = fx.proposals[m.seed % fx.proposals.length]!;
      const bytes = mutate(m, fx.proposalBytes, (tree, mode) => resignProposalTree(fx, tree, mode));
      let value: unknown;
      try {
        value = decodeCanonical(bytes, 'proposal', { requireCanonical: false });
      } catch (err) {
        return rejection(stats, err, 'decode');
      }
      const parsed = proposalSchema.safeParse(value);
      if (!parsed.success) return stats.note('schema');
      const p = parsed.data;
      let problem: string | null;
      try {
        problem = checkProposal(p, validators, network);
      } catch (err) {
        return rejection(stats, err, 'checkProposal');
      }
      if (problem) return stats.note(`checkProposal:${problem}`);
      if (!m.resign && !genuineProposal(p))
        acceptedInvalid('checkProposal accepted a proposal whose signed content (height, round, validRound, header) was never signed');
      let executed: ExecutedBlock;
      try {
        executed = validateBlock(p.block, fx.head, fx.headState, { genesis, now: fx.clock });
        checkBlockPayloads(executed.txs, p.payloads);
      } catch (err) {
        return rejection(stats, err, 'validateBlock');
      }
      stats.accepted++;
      checkAcceptedBlock(fx, p.block, original.block, m.resign !== false, 'proposal');
    },
  };

  const payloadTarget: FuzzTarget<Mutation> = {
    name: 'payload',
    what: 'checkPayload (node/payloads.ts), parsePayload and the envelope (records/envelope.ts): keys, open/unwrap',
    arb: mutationArb(),
    async: false,
    seeds: payloadSeeds,
    run(m, stats) {
      const seed = fx.payloads[m.seed % fx.payloads.length]!;
      const bytes = mutate(m, payloadSeeds);
      try {
        checkPayload(seed.tx, bytes);
        stats.accepted++;
        if (!bytesEqual(bytes, seed.payload)) acceptedInvalid('checkPayload accepted a payload that is not the one the transaction committed to');
      } catch (err) {
        rejection(stats, err, 'checkPayload');
      }
      // The payload parsers and the envelope below the hash check: a tampered payload never opens to
      // anything but genuine content.
      const kind = payloadKind(seed.tx.tx)!;
      let keys: ReturnType<typeof payloadKeys>;
      try {
        parsePayload(kind.kind === 'blob' ? blobPayloadSchema : grantPayloadSchema, bytes, 'payload');
        keys = payloadKeys(kind, bytes);
      } catch (err) {
        return rejection(stats, err, 'parsePayload');
      }
      for (const { blob, user, key } of keys) {
        const me = fx.users.get(user);
        if (!me) continue;
        let opened: Uint8Array;
        try {
          opened =
            kind.kind === 'blob'
              ? openBlob(parsePayload(blobPayloadSchema, bytes, 'payload'), key, blob, me)
              : unwrapKey(key, blob, user, me.secretKey, me.publicKey);
        } catch (err) {
          rejection(stats, err, 'open');
          continue;
        }
        // Keys and ciphertexts may be moved between genuine envelopes (doc-1's key of a blob from one grant
        // into another); what opens under a blob's name is always that blob's genuine content / data key.
        const expected = (kind.kind === 'blob' ? fx.plaintextByBlob : fx.dataKeyByBlob).get(blob);
        if (!expected || !bytesEqual(opened, expected))
          acceptedInvalid(`a tampered envelope opened for ${user} under ${blob} to something else than that blob's content`);
      }
    },
  };

  const gossipTxTarget: FuzzTarget<Mutation> = {
    name: 'gossip-tx',
    what: 'the tx topic validator of node/gossip.ts with real admission (decode, signature, payload, state pre-check)',
    arb: mutationArb(),
    async: true,
    seeds: batchSeeds,
    async run(m, stats) {
      const bytes = mutate(m, batchSeeds);
      const node = gossipNode(fx);
      const verdict = await gossipVerdict('tx', node.handlers.tx, bytes, fx.clock);
      if (node.crashes.length > 0) throw node.crashes[0]!;
      stats.note(`verdict:${verdict}`);
      for (const entry of node.mempool.candidates(10_000)) {
        stats.accepted++;
        const genuine = fx.pending.find((p) => bytesEqual(p.tx.bytes, entry.tx.bytes));
        if (!genuine) acceptedInvalid(`gossip admitted a transaction that is not genuine (${entry.tx.tx.type} by ${entry.tx.tx.actor})`);
        const same = genuine.payload === undefined ? entry.payload === undefined : entry.payload !== undefined && bytesEqual(entry.payload, genuine.payload);
        if (!same) acceptedInvalid(`gossip admitted transaction ${entry.tx.idHex.slice(0, 12)} with a payload that is not its own`);
      }
    },
  };

  const gossipBlockTarget: FuzzTarget<Mutation> = {
    name: 'gossip-block',
    what: 'the block topic validator of node/gossip.ts (checkProposal, then validateBlock as the engine assesses it)',
    arb: mutationArb({ resign: true }),
    async: true,
    seeds: proposalMsgSeeds,
    async run(m, stats) {
      const original = fx.proposals[m.seed % fx.proposals.length]!;
      const bytes = mutate(m, proposalMsgSeeds, (tree, mode) => {
        if (isContainer(tree) && !Array.isArray(tree)) resignProposalTree(fx, tree.proposal, mode);
      });
      const node = gossipNode(fx);
      const verdict = await gossipVerdict('block', node.handlers.block, bytes, fx.clock);
      if (node.crashes.length > 0) throw node.crashes[0]!;
      stats.note(`verdict:${verdict}`);
      for (const p of node.proposals) {
        stats.accepted++;
        if (!m.resign && !genuineProposal(p)) acceptedInvalid('gossip passed on a proposal whose signed content was never signed');
        if (node.assessed.get(p) === 'valid') checkAcceptedBlock(fx, p.block, original.block, m.resign !== false, 'gossiped proposal');
        else if (p.height === fx.head.header.height + 1) acceptedInvalid('gossip accepted a proposal for the next height whose block is invalid');
      }
    },
  };

  const gossipVoteTarget: FuzzTarget<Mutation> = {
    name: 'gossip-vote',
    what: 'the vote topic validator of node/gossip.ts',
    arb: mutationArb(),
    async: true,
    seeds: voteMsgSeeds,
    async run(m, stats) {
      const bytes = mutate(m, voteMsgSeeds);
      const node = gossipNode(fx);
      const verdict = await gossipVerdict('vote', node.handlers.vote, bytes);
      if (node.crashes.length > 0) throw node.crashes[0]!;
      stats.note(`verdict:${verdict}`);
      for (const v of node.votes) {
        stats.accepted++;
        if (!fx.votes.some((o) => sameVote(o, v))) acceptedInvalid(`gossip passed on a vote that was never signed: ${JSON.stringify(describeValue(v))}`);
      }
    },
  };

  const syncRequestTarget: FuzzTarget<Mutation> = {
    name: 'sync-request',
    what: "SyncManager.serve (node/sync.ts): a peer's range request",
    arb: mutationArb(),
    async: true,
    seeds: requestSeeds,
    async run(m, stats) {
      const bytes = mutate(m, requestSeeds);
      let frames: Uint8Array[];
      try {
        frames = await collect(server.serve(bytes));
      } catch (err) {
        return rejection(stats, err, 'serve');
      }
      stats.note(`frames:${frames.length}`);
      if (frames.length > 0) stats.accepted++;
      // Whatever is served is a run of genuine frames, in height order.
      const start = genuineFrames.findIndex((f) => frames[0] !== undefined && bytesEqual(f, frames[0]));
      if (frames.length > 0 && start < 0) acceptedInvalid('serve produced a frame that is not a stored block');
      frames.forEach((f, k) => {
        if (!genuineFrames[start + k] || !bytesEqual(f, genuineFrames[start + k]!)) acceptedInvalid('serve produced frames out of order');
      });
    },
  };

  const byTxId = new Map<string, Uint8Array>();
  for (const b of fx.blocks) for (const [id, payload] of b.payloads) byTxId.set(id, payload);
  const storedIds = [...byTxId.keys()];
  const payloadRequestSeeds = [
    encodeCanonical({ ids: storedIds }),
    encodeCanonical({ ids: [storedIds[0]!] }),
    encodeCanonical({ ids: [toHex(new Uint8Array(32)), storedIds[1]!] }),
  ];
  const payloadRequestTarget: FuzzTarget<Mutation> = {
    name: 'payload-request',
    what: "SyncManager.servePayloads (node/sync.ts): a peer's request for missing payloads",
    arb: mutationArb(),
    async: true,
    seeds: payloadRequestSeeds,
    async run(m, stats) {
      const bytes = mutate(m, payloadRequestSeeds);
      let frames: Uint8Array[];
      try {
        frames = await collect(server.servePayloads(bytes));
      } catch (err) {
        return rejection(stats, err, 'servePayloads');
      }
      stats.note(`frames:${frames.length}`);
      if (frames.length > 0) stats.accepted++;
      if (frames.length > 256) acceptedInvalid(`servePayloads answered with ${frames.length} frames (at most 256 ids per request)`);
      for (const f of frames) {
        const { id, payload } = decodeCanonical(f, 'payload frame') as { id: string; payload: Uint8Array };
        if (!byTxId.has(id) || !bytesEqual(byTxId.get(id)!, payload))
          acceptedInvalid(`servePayloads answered with a payload that is not the one stored for ${String(id).slice(0, 16)}`);
      }
    },
  };

  const syncFrameTarget: FuzzTarget<SyncFrameCase> = {
    name: 'sync-frame',
    what: 'FrameReader (node/p2p/frames.ts) over a chunked stream, then each frame as sync.ts handles it: decode, validateBlock, certificate, payloads',
    arb: fc.record({
      m: mutationArb(),
      frame: fc.nat(),
      chunks: fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 17, max: 70_000 })), { minLength: 1, maxLength: 5 }),
      early: fc.nat({ max: 8 }),
      close: fc.oneof(
        { weight: 6, arbitrary: fc.constant('end' as const) },
        { weight: 1, arbitrary: fc.constant('stall' as const) },
        { weight: 1, arbitrary: fc.constant('reset' as const) },
      ),
      big: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
    async: true,
    seeds: genuineFrames,
    async run(c, stats) {
      const [from, to] = ranges[c.m.seed % ranges.length]!;
      const frames = genuineFrames.slice(from - 1, to);
      // The stream: frames, one of them mutated at the CBOR level, or the whole stream at the byte level.
      let expected: Uint8Array[] | undefined;
      let stream: Uint8Array;
      if (c.m.layer === 'tree') {
        const k = c.frame % frames.length;
        frames[k] = mutate({ ...c.m, seed: 0, bytes: [] }, [frames[k]!]);
        if (c.m.bytes.length > 0) frames[k] = applyByteOps(frames[k]!, c.m.bytes, []);
        expected = [...frames];
        stream = concatBytes(...frames.map(encodeFrame));
      } else {
        stream = applyByteOps(concatBytes(...frames.map(encodeFrame)), c.m.bytes, []);
      }
      if (c.big) {
        const junk = new Uint8Array(1_100_000).fill(0x41);
        expected?.push(junk);
        stream = concatBytes(stream, encodeFrame(junk));
      }
      const chunks: Uint8Array[] = [];
      const floor = Math.ceil(stream.length / 2_000);
      for (let at = 0, i = 0; at < stream.length; i++) {
        const size = Math.max(floor, c.chunks[i % c.chunks.length]!);
        chunks.push(stream.subarray(at, at + size));
        at += size;
      }

      const fake = new FakeStream();
      const reader = new FrameReader(fake as unknown as Stream, SYNC_MAX_FRAME_BYTES, 'fuzz sync');
      // FrameReader's timeout is per frame (not reset by data arriving), so a stalled stream gets all its
      // bytes up front: then only the wait for a frame that never comes may time out.
      const early = c.close === 'stall' ? chunks.length : Math.min(c.early, chunks.length);
      for (const chunk of chunks.slice(0, early)) fake.receive(chunk);
      const feeding = (async () => {
        for (const chunk of chunks.slice(early)) {
          await immediate();
          fake.receive(chunk);
        }
        await immediate();
        if (c.close === 'end') fake.end();
        if (c.close === 'reset') fake.reset();
      })();
      const read: Uint8Array[] = [];
      let failure: P2PRequestError | undefined;
      const started = Date.now();
      try {
        for (;;) {
          const frame = await reader.next(c.close === 'stall' ? 30 : 5_000);
          if (frame === undefined) break;
          read.push(frame);
          // Every frame takes at least its one-byte length prefix.
          if (read.length > stream.length) throw new FuzzFinding('hang', 'FrameReader returns more frames than the stream has bytes');
        }
      } catch (err) {
        if (err instanceof P2PRequestError) failure = err;
        else if (err instanceof FuzzFinding) throw err;
        else throw new FuzzFinding('crash', `FrameReader.next threw ${errorName(err)}`, err);
      } finally {
        reader.dispose();
      }
      await feeding;
      if (failure) stats.note(`frames:${failure.kind}`);
      if (failure?.kind === 'timeout' && c.close !== 'stall')
        throw new FuzzFinding('hang', `FrameReader timed out on a stream that ${c.close === 'end' ? 'ended' : 'was reset'} (${Date.now() - started} ms)`);
      if (c.close === 'stall' && !failure) throw new FuzzFinding('hang', 'FrameReader returned end-of-stream on a stream that never ended');
      if (expected) {
        // The framing itself is lossless, however the stream is cut.
        const whole = expected.length === read.length && expected.every((f, i) => bytesEqual(f, read[i]!));
        if (!whole) acceptedInvalid(`FrameReader returned ${read.length} frames instead of the ${expected.length} sent (cut into ${chunks.length} chunks)`);
        if (c.close === 'end' && failure) acceptedInvalid(`FrameReader failed (${failure.message}) on a well-framed stream`);
      }

      // Each frame as sync.ts handles it, against the chain the requester holds (height from - 1).
      let height = from - 1;
      for (const frameBytes of read) {
        let block: Block;
        let frame: z.infer<typeof syncFrameSchema>;
        try {
          const parsed = syncFrameSchema.safeParse(decodeCanonical(frameBytes, 'sync frame'));
          if (!parsed.success) throw new MedLedgerError('MALFORMED', 'malformed sync frame');
          frame = parsed.data;
          block = decodeBlock(frame.block, maxBlockBytes * 2);
        } catch (err) {
          return rejection(stats, err, 'syncFrame');
        }
        if (block.header.height !== height + 1) {
          stats.note('syncFrame:skipped');
          continue;
        }
        let executed: ExecutedBlock;
        try {
          executed = validateBlock(block, fx.parents[height]!, fx.states[height]!, { genesis });
          verifyCertificate(frame.cert, validators, network, { height: block.header.height, block: executed.hash });
        } catch (err) {
          return rejection(stats, err, 'syncValidate');
        }
        stats.accepted++;
        const original = fx.blocks[height];
        if (!original || !bytesEqual(frame.block, original.bytes)) acceptedInvalid(`sync committed a block ${height + 1} that is not the finalized one`);
        checkGenuineCertificate(fx, frame.cert, `sync block ${height + 1}`);
        for (const { index, payload, redacted } of frame.payloads) {
          const tx = executed.txs[index];
          if (!tx || !tx.tx.payload) continue;
          // As sync.ts: a payload is stored only if it matches its hash and passes admission's checks; a
          // redacted grant payload waits for f+1 identical offers (not stored from one peer).
          if (bytesEqual(sha256(payload), tx.tx.payload)) {
            try {
              checkPayload(tx, payload);
            } catch (err) {
              rejection(stats, err, 'syncPayload');
              continue;
            }
            if (!bytesEqual(payload, original.payloads.get(tx.idHex) ?? new Uint8Array()))
              acceptedInvalid('sync would store a payload that is not the original');
          } else if (redacted && payloadKind(tx.tx)?.kind === 'grant') {
            stats.note('syncPayload:redacted-offer');
          }
        }
        height++;
      }
    },
  };

  const targets: AnyFuzzTarget[] = [
    txTarget,
    blockTarget,
    voteTarget,
    certificateTarget,
    proposalTarget,
    payloadTarget,
    gossipTxTarget,
    gossipBlockTarget,
    gossipVoteTarget,
    syncRequestTarget,
    payloadRequestTarget,
    syncFrameTarget,
  ];
  return Object.assign(targets, {
    /** Frames are produced by the real serve(): call once before running the sync targets. */
    async prepare(): Promise<void> {
      if (genuineFrames.length > 0) return;
      genuineFrames.push(...(await collect(server.serve(encodeCanonical({ from: 1, to: last })))));
      if (genuineFrames.length !== last) throw new Error(`fixture: serve() produced ${genuineFrames.length} frames for ${last} blocks`);
    },
  });
}

export type Targets = ReturnType<typeof makeTargets> & { prepare(): Promise<void> };

// =====================================================================================================
// Running
// =====================================================================================================

export interface RunOptions {
  numRuns: number;
  seed?: number;
  /** Replays one case (fast-check path, e.g. from a report) instead of generating. */
  path?: string;
  /** Stop generating after this long (the cases run so far count). */
  timeLimitMs?: number;
  /** A single case slower than this is reported as a hang. */
  slowCaseMs?: number;
  /** 'throw': stop at the first finding and shrink it (tests); 'collect': record findings and go on. */
  mode: 'throw' | 'collect';
  /** Count rejections by message too (TargetStats.reasons). */
  detail?: boolean;
}

export interface Finding {
  target: string;
  kind: FindingKind;
  message: string;
  seed: number;
  path: string;
  input: string;
}

export interface TargetReport {
  target: string;
  cases: number;
  accepted: number;
  ms: number;
  seed: number;
  interrupted: boolean;
  findings: Finding[];
  stats: TargetStats;
  /** In throw mode: fast-check's report of the shrunk counterexample. */
  failure?: string;
}

/** JSON-friendly view of a case (bytes as hex, bigints as strings, long arrays cut). */
export function describeValue(v: unknown, depth = 0): unknown {
  if (depth > 12) return '…';
  if (v instanceof Uint8Array) return `hex:${toHex(v.subarray(0, 256))}${v.length > 256 ? `…(${v.length} bytes)` : ''}`;
  if (v instanceof Nest) return { nest: v.depth, inner: describeValue(v.inner, depth + 1) };
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (typeof v === 'string' && v.length > 200) return `${v.slice(0, 40)}…(${v.length} chars)`;
  if (Array.isArray(v))
    return v.length > 50 ? [...v.slice(0, 20).map((x) => describeValue(x, depth + 1)), `…(${v.length} items)`] : v.map((x) => describeValue(x, depth + 1));
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).map((k) => [k, describeValue((v as Record<string, unknown>)[k], depth + 1)]));
  return v;
}

export async function runTarget(target: AnyFuzzTarget, opts: RunOptions): Promise<TargetReport> {
  const stats = new TargetStats();
  stats.detail = opts.detail ?? false;
  const findings: Finding[] = [];
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) >>> 0;
  const slow = opts.slowCaseMs ?? 5_000;
  let index = -1;
  const started = Date.now();

  const before = (): number => {
    index++;
    stats.cases++;
    return performance.now();
  };
  const after = (t0: number, c: unknown, err: unknown): boolean => {
    const ms = performance.now() - t0;
    if (err === undefined && ms > slow) err = new FuzzFinding('hang', `one case took ${Math.round(ms)} ms (limit ${slow} ms)`);
    if (err === undefined) return true;
    const finding = err instanceof FuzzFinding ? err : new FuzzFinding('crash', `harness/target threw ${errorName(err)}`, err);
    if (opts.mode === 'throw') throw finding;
    if (findings.length < 20) {
      findings.push({
        target: target.name,
        kind: finding.kind,
        message: finding.message,
        seed,
        path: String(index),
        input: JSON.stringify(describeValue(c)).slice(0, 4_000),
      });
    }
    return true;
  };

  const params = {
    numRuns: opts.numRuns,
    seed,
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    ...(opts.timeLimitMs !== undefined ? { plugins: [fc.interruptAfterTimeLimit(opts.timeLimitMs)] } : {}),
  };
  const details = target.async
    ? await fc.check(
        fc.asyncProperty(target.arb, async (c) => {
          const t0 = before();
          let error: unknown;
          try {
            await target.run(c, stats);
          } catch (err) {
            error = err ?? new Error('undefined thrown');
          }
          return after(t0, c, error);
        }),
        params,
      )
    : fc.check(
        // Synchronous targets stay synchronous: no microtask per case.
        fc.property(target.arb, (c) => {
          const t0 = before();
          let error: unknown;
          try {
            void target.run(c, stats);
          } catch (err) {
            error = err ?? new Error('undefined thrown');
          }
          return after(t0, c, error);
        }),
        params,
      );
  const report: TargetReport = {
    target: target.name,
    cases: details.numRuns,
    accepted: stats.accepted,
    ms: Date.now() - started,
    seed,
    interrupted: details.interrupted,
    findings,
    stats,
  };
  if (details.failed && details.counterexamplePath !== null) {
    const err = details.errorInstance;
    const kind: FindingKind = err instanceof FuzzFinding ? err.kind : 'crash';
    findings.push({
      target: target.name,
      kind,
      message: err instanceof Error ? err.message : String(err),
      seed,
      path: details.counterexamplePath,
      input: JSON.stringify(describeValue((details.counterexample as unknown[] | null)?.[0])).slice(0, 4_000),
    });
    report.failure =
      `${target.name}: ${err instanceof Error ? err.message : String(err)}\n  seed ${seed}, path "${details.counterexamplePath}" (after ${details.numShrinks} shrinks)\n` +
      `  case ${findings[findings.length - 1]!.input}\n${err instanceof Error ? (err.stack ?? '') : ''}`;
  }
  return report;
}

/** A fresh fixture, serialised and re-loaded, as every run uses it. */
export function freshFixture(): { fixture: Fixture; bytes: Uint8Array } {
  const bytes = encodeFixture(buildFixtureData());
  return { fixture: loadFixture(decodeFixture(bytes)), bytes };
}

export const randomSeed = (): number => randomBytes(4).readUInt32LE(0);
