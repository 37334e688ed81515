import { bytesEqual, toHex } from '../records/crypto/bytes.js';
import { sha256 } from '../records/crypto/hash.js';
import { txIdOfBytes } from '../records/tx/codec.js';
import { headerHash, type Block, type BlockHeader } from './block.js';
import type { ExecutedBlock, TxCache } from './blockExecution.js';
import type { SignatureVerifier } from '../records/crypto/signature.js';
import { ChainChecker, ChainFault } from './chainCheck.js';
import type { Genesis } from './genesis.js';
import type { Certificate } from './votes.js';

/**
 * Cross-replica comparison (`medledger verify`): every replica's chain is re-verified from genesis on the
 * verifier's side, height by height in lockstep, and the replicas are compared at every height they share.
 * Replicas with byte-identical histories share one re-execution (same bytes, same state: the same
 * verdict), so N agreeing replicas cost about one verification plus their certificates; where histories
 * part ways the state is forked and each side is verified on its own.
 *
 * Two different blocks at one height that are both valid and certified are a safety violation: the
 * validators who signed both certificates are named (equivocation).
 */
export interface ReplicaBlock {
  block?: Uint8Array;
  cert?: Uint8Array;
}

export interface ReplicaState {
  name: string;
  /** Highest height whose block and certificate verified (-1: not even block 0). */
  verifiedHeight: number;
  fault?: { height: number; problem: string };
  /** The last verified block: the replica's certified head. */
  head?: { height: number; hash: string; round: number; signers: string[] };
}

export interface Divergence {
  height: number;
  /** The replicas that differ from the reference (the largest group serving a valid, certified block). */
  nodes: string[];
  detail: string;
}

export interface Equivocation {
  height: number;
  kind: 'certificates' | 'vote' | 'proposal';
  /** Hospitals of the validators that signed both conflicting messages. */
  validators: string[];
  blocks: { hash: string; round: number; nodes: string[]; signers: string[] }[];
  detail: string;
  /** Where it was found: in the replicas' chains, or in a node's stored evidence. */
  source: 'chains' | 'evidence';
  /** Whether the verifier checked the signatures itself. */
  verified: boolean;
  reportedBy?: string[];
}

interface Member {
  state: ReplicaState;
  order: number;
}

interface Group {
  checker: ChainChecker;
  members: Member[];
}

interface Candidate {
  bytes: Uint8Array;
  block?: Block;
  hash?: Uint8Array;
  valid: boolean;
  members: Member[];
  certs: Certificate[];
}

const MAX_EQUIVOCATIONS = 20;

export class ReplicaComparison {
  readonly replicas: ReplicaState[];
  private groups: Group[];
  private nextHeight = 0;
  divergence: Divergence | undefined;
  readonly equivocations: Equivocation[] = [];
  /** Heights where conflicting branches go on after a reported fork (each a conflict too, not listed one by one). */
  moreEquivocations = 0;
  /** Distinct blocks re-executed, and the transactions (audit events) in them. */
  blocksVerified = 0;
  eventsVerified = 0;

  constructor(
    readonly genesis: Genesis,
    names: string[],
    private readonly opts: {
      txCache?: TxCache;
      verify?: SignatureVerifier;
      /** Each block re-executed here, with the replicas whose certificate of it verified (they all serve it). */
      onExecuted?: (executed: ExecutedBlock, replicas: string[]) => void;
    } = {},
  ) {
    this.replicas = names.map((name) => ({ name, verifiedHeight: -1 }));
    const checker = new ChainChecker(genesis, { ...(opts.txCache ? { txCache: opts.txCache } : {}), ...(opts.verify ? { verify: opts.verify } : {}) });
    this.groups = [{ checker, members: this.replicas.map((state, order) => ({ state, order })) }];
  }

  /** Height whose blocks `feed` expects next. */
  get height(): number {
    return this.nextHeight;
  }

  /** Replicas still being followed (no fault, not past their own head). */
  get active(): string[] {
    return this.groups.flatMap((g) => g.members.map((m) => m.state.name));
  }

  /** A replica could not be read any further (network error): it keeps what it verified so far. */
  drop(name: string, problem?: string): void {
    for (const g of this.groups) {
      const m = g.members.find((x) => x.state.name === name);
      if (!m) continue;
      g.members = g.members.filter((x) => x !== m);
      if (problem) m.state.fault ??= { height: this.nextHeight, problem };
    }
    this.groups = this.groups.filter((g) => g.members.length > 0);
  }

  /**
   * The blocks of the next height, by replica name. A replica missing from `blocks` has reached its head
   * and is no longer followed.
   */
  feed(blocks: ReadonlyMap<string, ReplicaBlock>): void {
    const h = this.nextHeight++;
    if (h === 0) return this.feedGenesis(blocks);
    const candidates = new Map<string, Candidate>();
    const next: Group[] = [];
    for (const group of this.groups) {
      const parts = new Map<string, Member[]>();
      for (const m of group.members) {
        const entry = blocks.get(m.state.name);
        if (!entry?.block) continue; // past its head
        const key = toHex(sha256(entry.block));
        parts.set(key, [...(parts.get(key) ?? []), m]);
      }
      // The largest part continues on the group's state; the others on copies taken before it moves.
      const ordered = [...parts.entries()].sort((a, b) => b[1].length - a[1].length || a[1][0]!.order - b[1][0]!.order);
      const checkers = ordered.map((_, i) => (i === 0 ? group.checker : group.checker.fork()));
      ordered.forEach(([key, members], i) => {
        const checker = checkers[i]!;
        const bytes = blocks.get(members[0]!.state.name)!.block!;
        const candidate: Candidate = candidates.get(key) ?? { bytes, valid: false, members: [], certs: [] };
        candidates.set(key, candidate);
        candidate.members.push(...members);
        let executed: ExecutedBlock;
        try {
          const block = checker.decode(bytes, h);
          candidate.block = block;
          candidate.hash = headerHash(block.header);
          executed = checker.next(block, null);
          this.blocksVerified++;
          this.eventsVerified += executed.events.length;
        } catch (err) {
          if (!(err instanceof ChainFault)) throw err;
          for (const m of members) m.state.fault = { height: err.height, problem: err.problem };
          return;
        }
        const survivors: Member[] = [];
        for (const m of members) {
          try {
            const cert = checker.checkCertificate(blocks.get(m.state.name)!.cert, h, executed.hash);
            candidate.certs.push(cert);
            m.state.verifiedHeight = h;
            m.state.head = { height: h, hash: toHex(executed.hash), round: cert.round, signers: this.hospitals(cert.sigs.map((s) => s.validator)) };
            survivors.push(m);
          } catch (err) {
            if (!(err instanceof ChainFault)) throw err;
            m.state.fault = { height: err.height, problem: err.problem };
          }
        }
        if (survivors.length > 0) {
          candidate.valid = true;
          next.push({ checker, members: survivors });
          this.opts.onExecuted?.(
            executed,
            survivors.map((m) => m.state.name),
          );
        }
      });
    }
    this.groups = next;
    this.compare(h, [...candidates.values()]);
  }

  private feedGenesis(blocks: ReadonlyMap<string, ReplicaBlock>): void {
    const checker = this.groups[0]!.checker;
    const candidates = new Map<string, Candidate>();
    for (const g of this.groups) {
      g.members = g.members.filter((m) => {
        const bytes = blocks.get(m.state.name)?.block;
        if (bytes) {
          const key = toHex(sha256(bytes));
          const c = candidates.get(key) ?? { bytes, valid: false, members: [], certs: [] };
          c.members.push(m);
          candidates.set(key, c);
        }
        try {
          checker.checkGenesisBlock(bytes);
          m.state.verifiedHeight = 0;
          return true;
        } catch (err) {
          if (!(err instanceof ChainFault)) throw err;
          m.state.fault = { height: 0, problem: err.problem };
          return false;
        }
      });
    }
    for (const c of candidates.values()) c.valid = c.members.some((m) => !m.state.fault);
    this.groups = this.groups.filter((g) => g.members.length > 0);
    this.compare(0, [...candidates.values()]);
  }

  private hospitals(indexes: Iterable<number>): string[] {
    return [...indexes].map((i) => this.genesis.validators[i]?.hospital ?? `validator ${i}`);
  }

  private compare(h: number, candidates: Candidate[]): void {
    if (candidates.length < 2) return;
    const rank = (c: Candidate) => Math.min(...c.members.map((m) => m.order));
    const sorted = [...candidates].sort((a, b) => Number(b.valid) - Number(a.valid) || b.members.length - a.members.length || rank(a) - rank(b));
    const reference = sorted[0]!;
    if (!this.divergence) {
      const others = sorted.slice(1);
      this.divergence = {
        height: h,
        nodes: others
          .flatMap((c) => c.members)
          .sort((a, b) => a.order - b.order)
          .map((m) => m.state.name),
        detail:
          others.map((c) => `${c.members.map((m) => m.state.name).join(', ')}: ${describeDifference(reference, c)}`).join('; ') +
          ` (reference: ${reference.members.map((m) => m.state.name).join(', ')})`,
      };
    }
    const certified = sorted.filter((c) => c.valid && c.certs.length > 0);
    if (certified.length < 2) return;
    // Past a fork each branch goes on with its own certified blocks: the fork itself is the report.
    const forkPoint = certified.every((c) => bytesEqual(c.block!.header.parent, certified[0]!.block!.header.parent));
    if (!forkPoint || this.equivocations.filter((e) => e.source === 'chains').length >= MAX_EQUIVOCATIONS) {
      this.moreEquivocations++;
      return;
    }
    const signersOf = (c: Candidate) => new Set(c.certs.flatMap((cert) => cert.sigs.map((s) => s.validator)));
    const sets = certified.map(signersOf);
    const both = [...sets[0]!].filter((v) => sets.slice(1).some((s) => s.has(v))).sort((a, b) => a - b);
    const headers = certified.map((c) => c.block!.header);
    const sameRound = headers.every((hd) => hd.round === headers[0]!.round);
    const proposerNote = sameRound
      ? ` The proposer ${this.hospitals([headers[0]!.proposer])[0]} signed ${certified.length} different blocks for round ${headers[0]!.round}.`
      : '';
    this.equivocations.push({
      height: h,
      kind: 'certificates',
      validators: this.hospitals(both),
      blocks: certified.map((c, i) => ({
        hash: toHex(c.hash!),
        round: c.certs[0]!.round,
        nodes: c.members.filter((m) => !m.state.fault || m.state.fault.height > h).map((m) => m.state.name),
        signers: this.hospitals([...sets[i]!].sort((a, b) => a - b)),
      })),
      detail: `${certified.length} different blocks at height ${h} each carry a valid commit certificate; validators who signed both: ${this.hospitals(both).join(', ') || 'none'}.${proposerNote}`,
      source: 'chains',
      verified: true,
    });
  }

  /** What each replica reached, the first divergence and every equivocation found. */
  result(): { replicas: ReplicaState[]; divergence?: Divergence; equivocations: Equivocation[]; moreEquivocations: number } {
    return {
      replicas: this.replicas,
      ...(this.divergence ? { divergence: this.divergence } : {}),
      equivocations: this.equivocations,
      moreEquivocations: this.moreEquivocations,
    };
  }
}

/** Where a replica's block differs from the reference block: the transaction if possible, else the header. */
export function describeDifference(reference: { bytes: Uint8Array; block?: Block }, other: { bytes: Uint8Array; block?: Block }): string {
  const a = reference.block;
  const b = other.block;
  if (!b) return 'its block bytes are not a valid block';
  if (!a) return 'the reference block bytes are not a valid block';
  const ids = (blk: Block) => blk.txs.map((t) => safeTxId(t));
  const idsA = ids(a);
  const idsB = ids(b);
  for (let i = 0; i < Math.max(a.txs.length, b.txs.length); i++) {
    const ta = a.txs[i];
    const tb = b.txs[i];
    if (!ta) return `transaction ${i} (${short(idsB[i])}) is extra: the reference block has ${a.txs.length} transactions`;
    if (!tb) return `transaction ${i} (${short(idsA[i])}) is missing: ${b.txs.length} transactions where the reference has ${a.txs.length}`;
    if (bytesEqual(ta, tb)) continue;
    if (idsA[i] !== idsB[i]) return `transaction ${i} is ${short(idsB[i])} where the reference has ${short(idsA[i])}`;
    return `transaction ${i} (${short(idsA[i])}) has different bytes (its signature or encoding was altered)`;
  }
  const fields = (Object.keys(a.header) as (keyof BlockHeader)[]).filter((k) => {
    const x = a.header[k];
    const y = b.header[k];
    return x instanceof Uint8Array && y instanceof Uint8Array ? !bytesEqual(x, y) : x !== y;
  });
  if (fields.length > 0) return `same transactions; header differs in ${fields.join(', ')}`;
  if (!bytesEqual(a.sig, b.sig)) return 'same header and transactions; the proposer signature differs';
  return 'same header and transactions; the carried parent certificate differs';
}

function safeTxId(bytes: Uint8Array): string {
  try {
    return txIdOfBytes(bytes);
  } catch {
    return '(undecodable)';
  }
}

const short = (id: string | undefined) => (id ? `${id.slice(0, 12)}…` : '?');
