import type { ExecutedBlock } from '../consensus/blockExecution.js';
import type { Genesis } from '../consensus/genesis.js';
import { verifyProof, type ProofClaim } from '../consensus/proof.js';
import { toHex } from '../records/crypto/bytes.js';
import { payloadListingSchema, type PayloadListingEntry } from '../api/contract.js';
import { payloadKind } from '../records/payloadKind.js';
import { ApiError, type ApiClient } from './apiClient.js';

/**
 * `medledger verify --payloads`: the off-chain payloads of every replica against the chain the verifier
 * re-executes itself. For each successful transaction that carries a payload, the verifier knows the hash its
 * transaction commits to, what kind it is (record content or a grant's wrapped keys) and whether its record
 * was deleted later in the chain; each replica lists, for the same heights, what it holds (GET /v1/payloads:
 * the SHA-256 of its bytes, never the bytes). A replica is named when it
 *
 *   (a) lacks a payload it should hold (not listed, no bytes, not referenced by its store, marked missing);
 *   (b) holds bytes whose hash is not the committed one (a grant payload a deletion redacted cannot match
 *       its hash: redacted copies must then be identical across the replicas that hold them);
 *   (c) still holds record content of a record deleted at or before the height verified on that replica.
 *
 * Cost and memory stay bounded: listings are fetched page by page, right after the verifier has re-executed
 * the same heights, and judged at once; only absences (decided when the whole chain is known: a later
 * deletion explains them) and, per record, the ids of its payload transactions (to check, when a deletion
 * comes later, that they are gone) are kept until the end. A record deleted after the verified height (the
 * replica moved on while it was checked) explains an absence only with the deletion's inclusion proof, which
 * is checked here against the genesis.
 */
export type PayloadProblem = 'lacks' | 'differs' | 'deleted-record' | 'unexpected';

export interface PayloadFinding {
  node: string;
  height: number;
  tx: string;
  kind: 'blob' | 'grant';
  record?: string;
  problem: PayloadProblem;
  detail: string;
}

export interface PayloadCheckReport {
  /** Committed payloads (successful transactions that carry one) in the verified heights. */
  payloads: number;
  /** (payload, replica) pairs compared. */
  compared: number;
  findings: PayloadFinding[];
  /** Findings beyond the listed ones (counted only). */
  findingsOmitted?: number;
  /** Payloads absent because their record was deleted after the verified height (deletion proof checked). */
  deletedSinceVerified?: number;
  /** Replicas whose listing could not be read: the payload check is incomplete for them. */
  errors?: { node: string; problem: string }[];
}

export interface PayloadReplica {
  name: string;
  client: ApiClient;
}

interface Expected {
  height: number;
  tx: string;
  hash: string;
  kind: 'blob' | 'grant';
  record?: string;
  /** Replicas that verified the block holding it. */
  names: readonly string[];
}

interface Deferred {
  node: string;
  expected: Omit<Expected, 'names'>;
  entry: PayloadListingEntry | undefined;
}

const MAX_FINDINGS = 200;
/** Heights per listing request when re-checking single transactions. */
const RECHECK_SPAN = 100;

const short = (hex: string) => `${hex.slice(0, 12)}…`;

export class PayloadAudit {
  private readonly byHeight = new Map<number, Expected[]>();
  /** Payload transactions of each record (record content only): what a later deletion must have removed. */
  private readonly recordTxs = new Map<string, { height: number; tx: string }[]>();
  private readonly deletions = new Map<string, { height: number; names: readonly string[] }[]>();
  /** Per replica: payloads judged before their record's deletion was seen, to be checked again at the end. */
  private readonly recheck = new Map<string, Map<string, { height: number; record: string }>>();
  private readonly deferred: Deferred[] = [];
  private readonly errors = new Map<string, string>();
  private readonly findings: PayloadFinding[] = [];
  private omitted = 0;
  private readonly perNode = new Map<string, number>();
  private payloads = 0;
  private compared = 0;
  private excused = 0;
  private pageFrom = 0;

  constructor(
    private readonly genesis: Genesis,
    private readonly replicas: PayloadReplica[],
  ) {}

  /** Heights from `from` on are about to be fed to the comparison (see onExecuted). */
  beginPage(from: number): void {
    this.pageFrom = from;
  }

  /** Hook of ReplicaComparison: each re-executed block with the replicas that serve it. */
  readonly onExecuted = (executed: ExecutedBlock, names: string[]): void => {
    const h = executed.block.header.height;
    executed.txs.forEach((tx, i) => {
      if (executed.events[i]?.outcome !== 'success') return;
      const t = tx.tx;
      if (t.type === 'deleteRecord' && t.record) {
        const list = this.deletions.get(t.record) ?? [];
        list.push({ height: h, names });
        this.deletions.set(t.record, list);
        // Payloads judged on an earlier page were judged as live: check at the end that they are gone.
        for (const p of this.recordTxs.get(t.record) ?? []) {
          if (p.height >= this.pageFrom) continue;
          for (const name of names) {
            const m = this.recheck.get(name) ?? new Map<string, { height: number; record: string }>();
            m.set(p.tx, { height: p.height, record: t.record });
            this.recheck.set(name, m);
          }
        }
        return;
      }
      const kind = payloadKind(t);
      if (!kind || !t.payload) return;
      const expected: Expected = {
        height: h,
        tx: tx.idHex,
        hash: toHex(t.payload),
        kind: kind.kind,
        ...(kind.kind === 'blob' ? { record: kind.record } : {}),
        names,
      };
      const list = this.byHeight.get(h) ?? [];
      list.push(expected);
      this.byHeight.set(h, list);
      this.payloads++;
      if (kind.kind === 'blob') {
        const txs = this.recordTxs.get(kind.record) ?? [];
        txs.push({ height: h, tx: tx.idHex });
        this.recordTxs.set(kind.record, txs);
      }
    });
  };

  /** Where the verified chain of `node` deletes `record`, as far as it has been re-executed. */
  private deletedAt(record: string, node: string): number | undefined {
    let at: number | undefined;
    for (const d of this.deletions.get(record) ?? []) if (d.names.includes(node) && (at === undefined || d.height < at)) at = d.height;
    return at;
  }

  private find(f: PayloadFinding): void {
    this.perNode.set(f.node, (this.perNode.get(f.node) ?? 0) + 1);
    if (this.findings.length < MAX_FINDINGS) this.findings.push(f);
    else this.omitted++;
  }

  /** One replica's listing of [from, to], page by page, zod-checked; undefined (and an error noted) if unreadable. */
  private async list(r: PayloadReplica, from: number, to: number): Promise<Map<string, PayloadListingEntry> | undefined> {
    const out = new Map<string, PayloadListingEntry>();
    try {
      for (let next = from; next <= to;) {
        const parsed = payloadListingSchema.safeParse(await r.client.get<unknown>(`/v1/payloads?from=${next}&to=${to}`));
        if (!parsed.success) throw new Error(`malformed payload listing: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
        const page = parsed.data;
        if (page.from !== next || page.to < next || page.to > to) throw new Error(`payload listing of ${next}..${to} answered ${page.from}..${page.to}`);
        for (const e of page.payloads) {
          if (e.height < next || e.height > page.to) throw new Error(`payload listing of ${next}..${page.to} names height ${e.height}`);
          out.set(e.tx, e);
        }
        next = page.to + 1;
      }
      return out;
    } catch (err) {
      const why = err instanceof ApiError && err.status === 404 ? 'does not serve /v1/payloads (an older node)' : (err as Error).message;
      this.errors.set(r.name, `payload listing failed at heights ${from}..${to}: ${why}`);
      return undefined;
    }
  }

  /**
   * Judges the payloads of heights [from, to], which the comparison has just re-executed: `verified` is the
   * height each replica is verified up to (heights above it are not asked of it).
   */
  async checkPage(from: number, to: number, verified: (node: string) => number): Promise<void> {
    const targets = this.replicas.filter((r) => !this.errors.has(r.name) && verified(r.name) >= from);
    const listings = new Map<string, Map<string, PayloadListingEntry>>();
    await Promise.all(
      targets.map(async (r) => {
        const listing = await this.list(r, from, Math.min(to, verified(r.name)));
        if (listing) listings.set(r.name, listing);
      }),
    );
    const matched = new Map<string, Set<string>>([...listings.keys()].map((n) => [n, new Set<string>()]));
    for (let h = from; h <= to; h++) {
      for (const e of this.byHeight.get(h) ?? []) {
        const redacted = new Map<string, string[]>();
        for (const node of e.names) {
          const listing = listings.get(node);
          if (!listing) continue;
          const entry = listing.get(e.tx);
          if (entry) matched.get(node)!.add(e.tx);
          this.compared++;
          this.judge(node, e, entry, redacted);
        }
        if (redacted.size > 1) this.redactedDiffer(e, redacted);
      }
      this.byHeight.delete(h);
    }
    // A replica that holds bytes for a transaction the verified chain gives no payload to (or denied).
    for (const [node, listing] of listings) {
      for (const entry of listing.values()) {
        if (!entry.held || matched.get(node)!.has(entry.tx)) continue;
        this.find({
          node,
          height: entry.height,
          tx: entry.tx,
          kind: entry.kind,
          problem: 'unexpected',
          detail: `holds a ${entry.kind === 'blob' ? 'record' : 'grant'} payload for a transaction that, in the verified chain, carries none or did not succeed`,
        });
      }
    }
  }

  private judge(node: string, e: Expected, entry: PayloadListingEntry | undefined, redacted: Map<string, string[]>): void {
    const at = { node, height: e.height, tx: e.tx, kind: e.kind, ...(e.record ? { record: e.record } : {}) };
    const holds = entry !== undefined && entry.held && entry.referenced && !entry.missing;
    if (e.kind === 'blob') {
      const deleted = this.deletedAt(e.record!, node);
      if (deleted !== undefined) {
        if (entry?.held) this.find({ ...at, problem: 'deleted-record', detail: `still holds the content of record ${e.record}, deleted at height ${deleted}` });
        return;
      }
      // An absence may be explained by a deletion further on: decided once the whole chain is known.
      if (!holds) return void this.deferred.push({ node, expected: { height: e.height, tx: e.tx, hash: e.hash, kind: e.kind, record: e.record! }, entry });
      if (entry!.sha256 !== e.hash)
        this.find({
          ...at,
          problem: 'differs',
          detail: `holds bytes with SHA-256 ${short(entry!.sha256!)}, not the ${short(e.hash)} its transaction commits to`,
        });
      return;
    }
    // Grant payloads are never purged; a deletion may redact them (then their hash cannot match).
    if (!holds) return this.find({ ...at, problem: 'lacks', detail: `lacks the grant payload: ${absence(entry)}` });
    const sha = entry!.sha256!;
    if (entry!.redacted) {
      const names = redacted.get(sha) ?? [];
      names.push(node);
      redacted.set(sha, names);
    } else if (sha !== e.hash) {
      this.find({
        ...at,
        problem: 'differs',
        detail: `holds grant payload bytes with SHA-256 ${short(sha)}, not the ${short(e.hash)} its transaction commits to (and does not mark it redacted)`,
      });
    }
  }

  /** Redaction is deterministic: copies that differ are named, all but the largest group (all of them on a tie). */
  private redactedDiffer(e: Expected, copies: Map<string, string[]>): void {
    const groups = [...copies.entries()].sort((a, b) => b[1].length - a[1].length);
    const tie = groups[0]![1].length === groups[1]![1].length;
    for (const [i, [hash, names]] of groups.entries()) {
      if (i === 0 && !tie) continue;
      const others = groups.filter(([h]) => h !== hash).flatMap(([, n]) => n);
      for (const node of names) {
        this.find({
          node,
          height: e.height,
          tx: e.tx,
          kind: 'grant',
          problem: 'differs',
          detail: `holds a redacted copy of the grant payload (SHA-256 ${short(hash)}) that differs from the redacted copy held by ${others.join(', ')}`,
        });
      }
    }
  }

  /** After the last page: absences against the whole verified chain, and payloads of records deleted later. */
  async finish(verified: (node: string) => number): Promise<void> {
    const proofs = new Map<string, ProofClaim | string>();
    /** Decided here: not to be reported again by the re-check below. */
    const decided = new Set<string>();
    for (const d of this.deferred) {
      const { node, expected: e, entry } = d;
      const at = { node, height: e.height, tx: e.tx, kind: e.kind, record: e.record! };
      const deleted = this.deletedAt(e.record!, node);
      decided.add(`${node}/${e.tx}`);
      if (deleted !== undefined) {
        if (entry?.held) this.find({ ...at, problem: 'deleted-record', detail: `still holds the content of record ${e.record}, deleted at height ${deleted}` });
        continue;
      }
      const claim = entry && !entry.held ? entry.deleted : undefined;
      if (!claim) {
        this.find({ ...at, problem: 'lacks', detail: `lacks the content of live record ${e.record}: ${absence(entry)}` });
        continue;
      }
      if (claim.height <= verified(node)) {
        this.find({
          ...at,
          problem: 'lacks',
          detail: `lacks the content of record ${e.record}: it says the record was deleted at height ${claim.height} (tx ${short(claim.tx)}), which its verified chain does not show`,
        });
        continue;
      }
      const key = `${node}/${claim.tx}`;
      if (!proofs.has(key)) proofs.set(key, await this.deletionProof(node, claim.tx));
      const why = deletionMismatch(proofs.get(key)!, e.record!, claim);
      if (why === null) this.excused++;
      else
        this.find({
          ...at,
          problem: 'lacks',
          detail: `lacks the content of record ${e.record}: its claimed deletion at height ${claim.height} past the verified height does not check out (${why})`,
        });
    }
    this.deferred.length = 0;
    for (const [node, txs] of this.recheck) {
      const r = this.replicas.find((x) => x.name === node);
      if (!r || this.errors.has(node)) continue;
      const items = [...txs.entries()].sort((a, b) => a[1].height - b[1].height);
      for (let i = 0; i < items.length;) {
        const first = items[i]![1].height;
        let j = i;
        while (j < items.length && items[j]![1].height < first + RECHECK_SPAN) j++;
        const span = items.slice(i, j);
        const listing = await this.list(r, first, span[span.length - 1]![1].height);
        if (!listing) break;
        for (const [tx, { height, record }] of span) {
          if (decided.has(`${node}/${tx}`) || !listing.get(tx)?.held) continue;
          this.find({
            node,
            height,
            tx,
            kind: 'blob',
            record,
            problem: 'deleted-record',
            detail: `still holds the content of record ${record}, deleted at height ${this.deletedAt(record, node)}`,
          });
        }
        i = j;
      }
    }
    this.recheck.clear();
  }

  /** What the replica's inclusion proof of `tx`, checked here against the genesis, proves (or why it proves nothing). */
  private async deletionProof(node: string, tx: string): Promise<ProofClaim | string> {
    const r = this.replicas.find((x) => x.name === node);
    if (!r) return 'unknown replica';
    try {
      const verdict = verifyProof(await r.client.get<unknown>(`/v1/proof/${tx}`), this.genesis);
      return verdict.ok ? verdict.claim : `its inclusion proof is invalid: ${verdict.reason}`;
    } catch (err) {
      return `no inclusion proof: ${(err as Error).message}`;
    }
  }

  report(): PayloadCheckReport {
    const findings = [...this.findings].sort((a, b) => a.height - b.height || a.tx.localeCompare(b.tx) || a.node.localeCompare(b.node));
    return {
      payloads: this.payloads,
      compared: this.compared,
      findings,
      ...(this.omitted > 0 ? { findingsOmitted: this.omitted } : {}),
      ...(this.excused > 0 ? { deletedSinceVerified: this.excused } : {}),
      ...(this.errors.size > 0 ? { errors: [...this.errors].map(([node, problem]) => ({ node, problem })) } : {}),
    };
  }

  /** Findings per replica, for the per-node verdicts. */
  findingsOf(node: string): number {
    return this.perNode.get(node) ?? 0;
  }

  errorOf(node: string): string | undefined {
    return this.errors.get(node);
  }
}

/** null when the proven transaction is the successful deletion of `record` at the claimed height. */
function deletionMismatch(proven: ProofClaim | string, record: string, claim: { tx: string; height: number }): string | null {
  if (typeof proven === 'string') return proven;
  const c = proven;
  if (c.tx === claim.tx && c.type === 'deleteRecord' && c.outcome === 'success' && c.record === record && c.height === claim.height) return null;
  return `the proven transaction is a ${c.outcome} ${c.type} of ${c.record ?? 'no record'} at height ${c.height}`;
}

/** Why a replica does not hold a payload, from its own listing entry. */
function absence(entry: PayloadListingEntry | undefined): string {
  if (!entry) return 'it does not list the transaction';
  if (entry.missing) return 'its store marks it missing (waiting for a repair from peers)';
  if (entry.held && !entry.referenced) return 'a file of it is on disk but the store does not reference it (never served)';
  if (entry.referenced) return 'its store references it but the payload file is missing';
  return 'it is not stored';
}
