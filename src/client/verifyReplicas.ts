import { readFileSync } from 'node:fs';
import { decodeBlock } from '../consensus/block.js';
import { maxStoredBlockBytes, parseCertificate } from '../consensus/chainCheck.js';
import { parseGenesis, type Genesis } from '../consensus/genesis.js';
import { ReplicaComparison, type Equivocation, type ReplicaBlock } from '../consensus/replicaCheck.js';
import { ALL_SIGNATURES, PrecheckCache, SignaturePrecheck, type PrecheckTarget, type SignedBlock } from '../consensus/signaturePrecheck.js';
import { verifyVote, type Certificate } from '../consensus/votes.js';
import { bytesEqual, fromBase64, toHex } from '../records/crypto/bytes.js';
import {
  voteFromWire,
  type EvidenceRecord,
  type GenesisResponse,
  type IntegrityStatus,
  type StatusResponse,
  type WireEvidenceMessage,
} from '../api/contract.js';
import { ApiClient, ApiError } from './apiClient.js';
import { PayloadAudit, type PayloadCheckReport } from './verifyPayloads.js';

/**
 * `medledger verify` as a library (the CLI and the TUI's verify screen call it). Downloads every
 * replica's finalized chain through /v1/chain/raw and re-verifies each one here, from genesis, trusting
 * no node (not even a node's own integrity monitor); then compares them at every height they share.
 *
 * The genesis comes from --genesis FILE when given (the trust anchor an auditor should pin), otherwise
 * from the first reachable node; every node's block 0 must match it.
 *
 * Exit codes: 0 every replica verifies and they agree; 1 a replica fails verification, differs from the
 * others, serves a second certified block at some height (equivocation), reports an integrity alert of
 * its own, or a node's stored equivocation evidence verifies; 2 the check could not be completed (a node
 * unreachable or failing mid-download, bad arguments) and nothing of the kind of 1 was found.
 */
export interface VerifyNodeReport {
  api: string;
  node?: string;
  ok: boolean;
  verifiedHeight?: number;
  problem?: string;
  finalizedHeight?: number;
  /** The last block verified, with the validators who certified it. */
  head?: { height: number; hash: string; round: number; signers: string[] };
  /** What the node's own integrity monitor says (reported, not trusted). */
  integrity?: IntegrityStatus;
  /** Equivocation evidence records the node keeps. */
  evidence?: number;
}

export interface VerifyReport {
  ok: boolean;
  exitCode: 0 | 1 | 2;
  nodes: VerifyNodeReport[];
  divergence?: { height: number; nodes: string[]; detail: string };
  equivocations?: Equivocation[];
  /** Heights past a reported fork where the conflicting branches go on (not listed one by one). */
  equivocationsOmitted?: number;
  /** Where the genesis came from, and what it is. */
  genesis?: { hash: string; network: string; source: string };
  /** The lowest finalized height among the reachable replicas: all agree up to it when ok. */
  comparedUpTo?: number;
  blocks?: number;
  events?: number;
  seconds?: number;
  /** Why the check could not run at all (exit code 2). */
  error?: string;
  /** With `payloads`: every replica's payloads against the hashes the verified chain commits to. */
  payloads?: PayloadCheckReport;
}

export interface VerifyOptions {
  genesisFile?: string;
  /** Called after each downloaded page: the height verified so far and the highest target. */
  onProgress?: (p: { height: number; target: number }) => void;
  /**
   * Also compare each replica's payloads with the chain (client/verifyPayloads.ts): a replica that lacks one
   * it should hold, holds one whose hash differs, or holds one of a deleted record is named (exit 1).
   */
  payloads?: boolean;
}

/** Heights per page: at most what /v1/chain/raw serves at once, fewer for big blocks (about 8 MB a page). */
const PAGE = 100;
const FIRST_PAGE = 8;
const PAGE_BYTES = 8 * 1024 * 1024;

interface Replica {
  api: string;
  client: ApiClient;
  name: string;
  status?: StatusResponse;
  error?: string;
  evidence: EvidenceRecord[];
}

/** One line's heading for an equivocation, as the CLI and the TUI print it. */
export function equivocationLabel(e: Equivocation): string {
  const kind = e.source === 'chains' ? 'EQUIVOCATION (conflicting certified blocks)' : `EQUIVOCATION (evidence kept by ${e.reportedBy?.join(', ')})`;
  return `${kind} at height ${e.height}: ${e.detail}`;
}

export async function verifyReplicas(urls: string[], opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = performance.now();
  const bad = urls.filter((u) => !/^https?:\/\/[^\s/]+/.test(u));
  if (urls.length === 0 || bad.length > 0) {
    const error = urls.length === 0 ? 'no node API URL given' : `not an http URL: ${bad.join(', ')}`;
    return { ok: false, exitCode: 2, error, nodes: urls.map((api) => ({ api, ok: false, ...(bad.includes(api) ? { problem: 'not an http URL' } : {}) })) };
  }
  const replicas: Replica[] = urls.map((api) => ({ api, client: new ApiClient(api), name: api, evidence: [] }));
  await Promise.all(
    replicas.map(async (r) => {
      try {
        r.status = await r.client.status();
        r.name = r.status.node;
        r.evidence = await fetchEvidence(r.client);
      } catch (err) {
        r.error = `unreachable: ${(err as Error).message}`;
      }
    }),
  );
  // Names identify replicas in the comparison; the same node given twice stays two entries.
  const seen = new Map<string, number>();
  for (const r of replicas) {
    const n = (seen.get(r.name) ?? 0) + 1;
    seen.set(r.name, n);
    if (n > 1) r.name = `${r.name}#${n}`;
  }

  let genesis: Genesis;
  let source: string;
  try {
    ({ genesis, source } = await loadGenesis(replicas, opts.genesisFile));
  } catch (err) {
    return { ok: false, exitCode: 2, error: (err as Error).message, nodes: replicas.map((r) => nodeReport(r, undefined)) };
  }

  const reachable = replicas.filter((r) => r.status);
  const caches = new PrecheckCache();
  const target = new Map(reachable.map((r) => [r.name, r.status!.finalizedHeight]));
  const maxTarget = Math.max(-1, ...target.values());
  const precheck = new SignaturePrecheck(genesis, { kinds: ALL_SIGNATURES });
  const audit = opts.payloads
    ? new PayloadAudit(
        genesis,
        reachable.map((r) => ({ name: r.name, client: r.client })),
      )
    : undefined;
  const checker = new ReplicaComparison(
    genesis,
    reachable.map((r) => r.name),
    { txCache: caches, verify: caches.verify, ...(audit ? { onExecuted: audit.onExecuted } : {}) },
  );
  const verifiedOf = (name: string) => checker.replicas.find((s) => s.name === name)?.verifiedHeight ?? -1;
  let size = FIRST_PAGE;

  /** Downloads one page of heights from every replica and hands its signatures to the workers (once each, however many replicas serve them). */
  const stage = async (from: number, count: number): Promise<Staged> => {
    const page = await Promise.all(
      reachable.map(async (r) => {
        const to = Math.min(from + count - 1, target.get(r.name)!);
        if (to < from || r.error) return [r, null] as const;
        try {
          return [
            r,
            (await r.client.get<{ blocks: { height: number; block: string; cert?: string }[] }>(`/v1/chain/raw?from=${from}&to=${to}`)).blocks,
          ] as const;
        } catch (err) {
          r.error = `download failed at height ${from}: ${(err as Error).message}`;
          return [r, null] as const;
        }
      }),
    );
    const byHeight = new Map<number, Map<string, ReplicaBlock>>();
    let bytes = 0;
    for (const [r, list] of page) {
      for (const item of list ?? []) {
        const entry: ReplicaBlock = { block: fromBase64(item.block), ...(item.cert ? { cert: fromBase64(item.cert) } : {}) };
        bytes += entry.block!.length;
        if (!byHeight.has(item.height)) byHeight.set(item.height, new Map());
        byHeight.get(item.height)!.set(r.name, entry);
      }
    }
    // Pages of about PAGE_BYTES keep memory bounded (three are held at a time) and the stages overlapping.
    size = Math.max(1, Math.min(PAGE, Math.floor((count * PAGE_BYTES) / Math.max(1, bytes))));
    const into = caches.open();
    return {
      from,
      to: from + count - 1,
      byHeight,
      into,
      failed: page.filter(([r]) => r.error).map(([r]) => r.name),
      verified: precheck.check(signedBlocks(byHeight, genesis), into),
    };
  };

  try {
    // While the main thread re-executes one page, the workers check the next page's signatures and the
    // page after it downloads.
    const more = (p: Staged) => p.to + 1 <= maxTarget;
    let current: Staged | null = maxTarget >= 0 ? await stage(0, size) : null;
    let upcoming = current && more(current) ? stage(current.to + 1, size) : null;
    upcoming?.catch(() => undefined);
    while (current && checker.active.length > 0) {
      const next: Staged | null = upcoming ? await upcoming : null;
      upcoming = next && more(next) ? stage(next.to + 1, size) : null;
      upcoming?.catch(() => undefined);
      await current.verified;
      for (const name of current.failed) checker.drop(name);
      audit?.beginPage(current.from);
      for (let h = current.from; h <= Math.min(current.to, maxTarget); h++) checker.feed(current.byHeight.get(h) ?? new Map<string, ReplicaBlock>());
      // The payloads of these heights, on every replica, against what was just re-executed.
      if (audit) await audit.checkPage(Math.max(1, current.from), Math.min(current.to, maxTarget), verifiedOf);
      caches.drop(current.into);
      opts.onProgress?.({ height: Math.min(current.to, maxTarget), target: maxTarget });
      current = next;
    }
    await audit?.finish(verifiedOf);
    return buildReport(replicas, checker, genesis, source, audit, {
      blocks: checker.blocksVerified,
      events: checker.eventsVerified,
      seconds: (performance.now() - started) / 1000,
    });
  } finally {
    await precheck.close();
  }
}

interface Staged {
  from: number;
  to: number;
  byHeight: Map<number, Map<string, ReplicaBlock>>;
  into: PrecheckTarget;
  /** Replicas whose download of this page failed. */
  failed: string[];
  verified: Promise<void>;
}

/** A node without the evidence endpoint (an older version) simply has none to show. */
async function fetchEvidence(client: ApiClient): Promise<EvidenceRecord[]> {
  try {
    return (await client.get<{ evidence: EvidenceRecord[] }>('/v1/evidence')).evidence;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return [];
    throw err;
  }
}

async function loadGenesis(replicas: Replica[], file: string | undefined): Promise<{ genesis: Genesis; source: string }> {
  if (file) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read genesis file ${file}: ${(err as Error).message}`);
    }
    return { genesis: parseGenesis(raw), source: file };
  }
  const first = replicas.find((r) => r.status);
  if (!first) throw new Error('no node could be reached, and no --genesis file was given');
  let served: GenesisResponse;
  try {
    served = await first.client.get<GenesisResponse>('/v1/genesis');
  } catch (err) {
    throw new Error(`cannot fetch the genesis from ${first.api} (${(err as Error).message}): pass --genesis FILE`);
  }
  const genesis = parseGenesis(served.genesis);
  if (toHex(genesis.hash) !== served.hash) throw new Error(`${first.name} serves a genesis file whose hash is not the one it names`);
  return { genesis, source: `${first.name} (${first.api}); pass --genesis FILE to pin it` };
}

/**
 * A page's blocks for the signature pre-check, each distinct block once with every replica's certificate
 * of it (replicas that agree serve the same bytes: decoded once). What does not decode is left to the
 * comparison, which names it.
 */
function* signedBlocks(byHeight: Map<number, Map<string, ReplicaBlock>>, genesis: Genesis): Generator<SignedBlock> {
  for (const [height, entries] of byHeight) {
    const seen: Uint8Array[] = [];
    const certificates: Certificate[] = [];
    for (const { cert } of entries.values()) {
      try {
        if (cert) certificates.push(parseCertificate(cert, height));
      } catch {
        // named by the comparison
      }
    }
    for (const { block } of entries.values()) {
      if (!block || seen.some((b) => b.length === block.length && bytesEqual(b, block))) continue;
      seen.push(block);
      let decoded;
      try {
        decoded = decodeBlock(block, maxStoredBlockBytes(genesis));
      } catch {
        continue; // an undecodable block is named by the comparison
      }
      yield { block: decoded, certificates };
    }
  }
}

/** A node's stored evidence, checked here: both votes signed by the named validator, for different blocks. */
export function checkEvidence(e: EvidenceRecord, genesis: Genesis): { verified: boolean; why?: string } {
  if (e.kind !== 'vote') return { verified: false, why: 'the node kept only the two block hashes, not the signed proposals' };
  const a = voteFromWire(e.first);
  const b = voteFromWire(e.second);
  if (!a || !b) return { verified: false, why: 'malformed votes' };
  const same =
    a.type === b.type && a.height === b.height && a.round === b.round && a.validator === b.validator && a.validator === e.validator && a.height === e.height;
  if (!same) return { verified: false, why: 'the two votes are not of one validator, height and round' };
  if ((a.block && b.block && toHex(a.block) === toHex(b.block)) || a.block === b.block) return { verified: false, why: 'the two votes are for the same block' };
  if (a.network !== genesis.file.network || b.network !== genesis.file.network) return { verified: false, why: 'votes of another network' };
  if (!verifyVote(a, genesis.validators) || !verifyVote(b, genesis.validators)) return { verified: false, why: 'a signature does not verify' };
  return { verified: true };
}

function evidenceEquivocations(replicas: Replica[], genesis: Genesis): Equivocation[] {
  const merged = new Map<string, Equivocation>();
  for (const r of replicas) {
    for (const e of r.evidence) {
      const blockOf = (m: WireEvidenceMessage) => ('sig' in m ? (m.block ?? 'nil') : m.block);
      const hashes = [blockOf(e.first), blockOf(e.second)].sort();
      const key = `${e.kind}/${e.height}/${e.round}/${e.validator}/${hashes.join('/')}`;
      const existing = merged.get(key);
      if (existing) {
        existing.reportedBy!.push(r.name);
        continue;
      }
      const check = checkEvidence(e, genesis);
      const what = e.kind === 'vote' && 'sig' in e.first ? `${e.first.type}s` : 'proposals';
      merged.set(key, {
        height: e.height,
        kind: e.kind,
        validators: [e.hospital],
        blocks: hashes.map((hash) => ({ hash, round: e.round, nodes: [], signers: [e.hospital] })),
        detail: `${e.hospital} signed two different ${what} at height ${e.height} round ${e.round} (${hashes.map((h) => h.slice(0, 12)).join(' and ')}); ${check.verified ? 'signatures verified here' : `not verifiable here: ${check.why}`}`,
        source: 'evidence',
        verified: check.verified,
        reportedBy: [r.name],
      });
    }
  }
  return [...merged.values()];
}

function nodeReport(r: Replica, problem: string | undefined, extra: Partial<VerifyNodeReport> = {}): VerifyNodeReport {
  const p = problem ?? r.error;
  return {
    api: r.api,
    ...(r.status ? { node: r.status.node, finalizedHeight: r.status.finalizedHeight, integrity: r.status.integrity, evidence: r.evidence.length } : {}),
    ok: p === undefined,
    ...extra,
    ...(p !== undefined ? { problem: p } : {}),
  };
}

function buildReport(
  replicas: Replica[],
  comparison: ReplicaComparison,
  genesis: Genesis,
  source: string,
  audit: PayloadAudit | undefined,
  stats: { blocks: number; events: number; seconds: number },
): VerifyReport {
  const { replicas: states, divergence, equivocations, moreEquivocations } = comparison.result();
  const byName = new Map(states.map((s) => [s.name, s]));
  let failed = false;
  let errored = false;
  const nodes = replicas.map((r) => {
    const state = byName.get(r.name);
    const problems: string[] = [];
    if (state?.fault) problems.push(`height ${state.fault.height}: ${state.fault.problem}`);
    if (divergence?.nodes.includes(r.name)) problems.push(`differs from the other replicas at height ${divergence.height}`);
    const equivocated = equivocations.find(
      (e) => e.source === 'chains' && e.blocks.some((b) => b.nodes.includes(r.name)) && divergence?.nodes.includes(r.name),
    );
    if (equivocated) problems.push(`serves a second certified block at height ${equivocated.height}`);
    if (state && !state.fault && !r.error && r.status && state.verifiedHeight < r.status.finalizedHeight) {
      problems.push(`served blocks only up to height ${state.verifiedHeight} though it reports height ${r.status.finalizedHeight} final`);
    }
    const alert = r.status?.integrity.alert;
    if (alert) problems.push(`its own integrity monitor reports height ${alert.height}: ${alert.problem}`);
    const payloadFindings = audit?.findingsOf(r.name) ?? 0;
    if (payloadFindings > 0) problems.push(`${payloadFindings} payload problem${payloadFindings === 1 ? '' : 's'} (listed below)`);
    if (problems.length > 0) failed = true;
    if (r.error) errored = true;
    if (r.error) problems.push(r.error);
    const payloadError = r.status ? audit?.errorOf(r.name) : undefined;
    if (payloadError) {
      errored = true;
      problems.push(payloadError);
    }
    return nodeReport(r, problems.length > 0 ? problems.join('; ') : undefined, {
      ...(state && state.verifiedHeight >= 0 ? { verifiedHeight: state.verifiedHeight } : {}),
      ...(state?.head ? { head: state.head } : {}),
    });
  });
  const fromEvidence = evidenceEquivocations(replicas, genesis);
  if (fromEvidence.some((e) => e.verified) || equivocations.length > 0 || divergence) failed = true;
  const all = [...equivocations, ...fromEvidence];
  const finals = replicas.filter((r) => r.status).map((r) => r.status!.finalizedHeight);
  const exitCode = failed ? 1 : errored ? 2 : 0;
  return {
    ok: exitCode === 0,
    exitCode,
    nodes,
    ...(divergence ? { divergence } : {}),
    ...(all.length > 0 ? { equivocations: all } : {}),
    ...(moreEquivocations > 0 ? { equivocationsOmitted: moreEquivocations } : {}),
    genesis: { hash: toHex(genesis.hash), network: genesis.file.network, source },
    ...(finals.length > 0 ? { comparedUpTo: Math.min(...finals) } : {}),
    ...stats,
    ...(audit ? { payloads: audit.report() } : {}),
  };
}
