import type { AuditEvent } from '../records/audit.js';
import { bytesEqual, toHex } from '../records/crypto/bytes.js';
import { encodeCanonical } from '../records/encoding.js';
import { MedLedgerError } from '../records/errors.js';
import { apply } from '../records/state/apply.js';
import { OverlayState } from '../records/state/memoryState.js';
import type { StateChange, StateView } from '../records/state/types.js';
import { decodeTx } from '../records/tx/codec.js';
import type { Tx } from '../records/tx/types.js';
import { certificateHash, headerHash, signHeader, verifyHeaderSignature, ZERO_HASH, type Block, type BlockHeader } from './block.js';
import type { Genesis } from './genesis.js';
import { leafHash, merkleRoot, rootOfLeafHashes } from './merkle.js';
import { proposerIndex } from './tendermint.js';
import { verifyCertificate, type Certificate } from './votes.js';
import type { SignatureVerifier, Signer } from '../records/crypto/signature.js';

/**
 * Transactions this node already decoded and whose signatures it checked, by RFC 6962 leaf hash (which
 * covers the exact signed bytes). A transaction seen in gossip is then not decoded or verified again when
 * it arrives in a block: each signature is verified once per node.
 */
export interface TxCache {
  get(leafHex: string): Tx | undefined;
  set(leafHex: string, tx: Tx): void;
}

/**
 * Decodes and verifies a transaction (signed for the network of `genesisHash`) unless the cache already holds
 * these exact bytes. A cache belongs to one network: it only ever holds transactions verified under its hash.
 */
export function decodeTxCached(bytes: Uint8Array, leaf: Uint8Array, genesisHash: Uint8Array, cache?: TxCache): Tx {
  if (!cache) return decodeTx(bytes, { genesisHash });
  const key = toHex(leaf);
  const hit = cache.get(key);
  if (hit) return hit;
  const tx = decodeTx(bytes, { genesisHash });
  cache.set(key, tx);
  return tx;
}

export interface ParentRef {
  header: BlockHeader;
  hash: Uint8Array;
}

/** A block together with what executing it produced; what the store persists in one atomic batch. */
export interface ExecutedBlock {
  block: Block;
  hash: Uint8Array;
  hashHex: string;
  txs: Tx[];
  events: AuditEvent[];
  /** Canonical encodings of the events (the eventsRoot leaves), kept so the store does not encode again. */
  eventBytes: Uint8Array[];
  changes: StateChange[];
}

export function encodeEvents(events: AuditEvent[]): Uint8Array[] {
  return events.map((e) => encodeCanonical(e));
}

function invalidBlock(height: number, why: string): never {
  throw new MedLedgerError('INVALID_BLOCK', `block ${height}: ${why}`);
}

/** Allowed clock skew of a proposer ahead of a validator's own clock. */
export const MAX_CLOCK_DRIFT_MS = 5_000;

/**
 * Full validation of a block against its parent and the state at its parent (PROTOCOL.md §5.3): structure,
 * proposer for the round and signature, the parent's certificate, Merkle roots, and every transaction
 * executed against the permission rules. Pure; `now` is passed only for blocks that arrive live, `hash` only
 * by a caller that already computed this header's hash (it is then not computed again). `verify` checks the
 * proposer's and the parent certificate's signatures (a pre-check may have done them already;
 * `consensus/signaturePrecheck.ts`), as `txCache` serves transactions whose signatures were checked.
 */
export function validateBlock(
  block: Block,
  parent: ParentRef,
  state: StateView,
  ctx: { genesis: Genesis; txCache?: TxCache; verify?: SignatureVerifier; now?: number; hash?: Uint8Array },
): ExecutedBlock {
  const { header } = block;
  const { genesis } = ctx;
  const h = header.height;
  if (header.network !== genesis.file.network) invalidBlock(h, `network ${header.network} is not ${genesis.file.network}`);
  if (h !== parent.header.height + 1) invalidBlock(h, `does not follow height ${parent.header.height}`);
  if (!bytesEqual(header.parent, parent.hash)) invalidBlock(h, 'parent hash does not match');
  if (header.time <= parent.header.time) invalidBlock(h, 'time does not advance');
  if (ctx.now !== undefined && header.time > ctx.now + MAX_CLOCK_DRIFT_MS) invalidBlock(h, 'time is in the future');

  const expectedProposer = proposerIndex(genesis.validators.length, h, header.round);
  if (header.proposer !== expectedProposer) invalidBlock(h, `proposer ${header.proposer} is not the proposer of round ${header.round} (${expectedProposer})`);
  const hash = ctx.hash ?? headerHash(header);
  if (!verifyHeaderSignature(header, block.sig, genesis.validators[expectedProposer]!, { hash, verify: ctx.verify }))
    invalidBlock(h, 'proposer signature is invalid');

  checkLastCommit(block, parent, genesis, ctx.verify);

  if (block.txs.length !== header.txCount) invalidBlock(h, 'transaction count does not match');
  if (block.txs.length > genesis.params.maxBlockTxs) invalidBlock(h, 'too many transactions');
  const leaves = block.txs.map(leafHash);
  if (!bytesEqual(rootOfLeafHashes(leaves), header.txRoot)) invalidBlock(h, 'transaction root does not match');

  const overlay = new OverlayState(state);
  const txs: Tx[] = [];
  const events: AuditEvent[] = [];
  const seen = new Set<string>();
  block.txs.forEach((bytes, index) => {
    let tx: Tx;
    try {
      tx = decodeTxCached(bytes, leaves[index]!, genesis.hash, ctx.txCache);
    } catch (err) {
      invalidBlock(h, `transaction ${index}: ${(err as Error).message}`);
    }
    if (seen.has(tx.idHex)) invalidBlock(h, `transaction ${tx.idHex.slice(0, 12)} appears twice`);
    seen.add(tx.idHex);
    const result = apply(overlay, tx, { height: h, index, blockTime: header.time, genesisHash: genesis.hash });
    if (!result.valid) invalidBlock(h, `transaction ${index} (${tx.idHex.slice(0, 12)}) is invalid: ${result.error.message}`);
    overlay.write(result.changes);
    txs.push(tx);
    events.push(result.event);
  });
  const eventBytes = encodeEvents(events);
  if (!bytesEqual(merkleRoot(eventBytes), header.eventsRoot)) invalidBlock(h, 'audit events root does not match the execution');
  return { block, hash, hashHex: toHex(hash), txs, events, eventBytes, changes: overlay.changes() };
}

function checkLastCommit(block: Block, parent: ParentRef, genesis: Genesis, verify?: SignatureVerifier): void {
  const h = block.header.height;
  if (h === 1) {
    if (block.lastCommit !== null || !bytesEqual(block.header.lastCommit, ZERO_HASH)) invalidBlock(h, 'block 1 carries no parent certificate');
    return;
  }
  if (!block.lastCommit) invalidBlock(h, "missing the parent's commit certificate");
  try {
    verifyCertificate(block.lastCommit, genesis.validators, genesis.file.network, { height: h - 1, block: parent.hash }, verify);
  } catch (err) {
    invalidBlock(h, `parent certificate: ${(err as Error).message}`);
  }
  if (!bytesEqual(certificateHash(block.lastCommit), block.header.lastCommit)) invalidBlock(h, 'parent certificate hash does not match the header');
}

/**
 * Proposer side: executes mempool candidates in order against the state, drops the invalid ones, stops
 * at the block limits, and signs the header. The result passes validateBlock by construction.
 */
export function buildBlock(args: {
  genesis: Genesis;
  parent: ParentRef;
  lastCommit: Certificate | null;
  state: StateView;
  candidates: Tx[];
  /** Bytes a transaction adds to the proposal (with its payload); defaults to its own size. */
  sizeOf?: (tx: Tx) => number;
  round: number;
  time: number;
  signer: Signer;
}): { executed: ExecutedBlock; dropped: { tx: Tx; error: MedLedgerError }[] } {
  const { genesis, parent, round } = args;
  const height = parent.header.height + 1;
  const proposer = proposerIndex(genesis.validators.length, height, round);
  const time = Math.max(args.time, parent.header.time + 1);
  const overlay = new OverlayState(args.state);
  const txs: Tx[] = [];
  const events: AuditEvent[] = [];
  const dropped: { tx: Tx; error: MedLedgerError }[] = [];
  let size = 0;
  for (const tx of args.candidates) {
    const txSize = args.sizeOf ? args.sizeOf(tx) : tx.bytes.length;
    if (txs.length >= genesis.params.maxBlockTxs || size + txSize > genesis.params.maxBlockBytes) break;
    const result = apply(overlay, tx, { height, index: txs.length, blockTime: time, genesisHash: genesis.hash });
    if (!result.valid) {
      dropped.push({ tx, error: result.error });
      continue;
    }
    overlay.write(result.changes);
    txs.push(tx);
    events.push(result.event);
    size += txSize;
  }
  const eventBytes = encodeEvents(events);
  const header: BlockHeader = {
    v: 1,
    network: genesis.file.network,
    height,
    round,
    time,
    parent: parent.hash,
    proposer,
    txRoot: merkleRoot(txs.map((t) => t.bytes)),
    eventsRoot: merkleRoot(eventBytes),
    txCount: txs.length,
    lastCommit: certificateHash(args.lastCommit),
  };
  const hash = headerHash(header);
  const block: Block = { header, sig: signHeader(header, args.signer, genesis.hash, hash), txs: txs.map((t) => t.bytes), lastCommit: args.lastCommit };
  return { executed: { block, hash, hashHex: toHex(hash), txs, events, eventBytes, changes: overlay.changes() }, dropped };
}
