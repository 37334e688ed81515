import type { Logger } from 'pino';
import { loadAggregatorKey } from '../aggregatorKey.js';
import type { ChainWriter } from '../chainWriter.js';
import type { NodeConfig } from '../config.js';
import { headerHash } from '../../consensus/block.js';
import type { Genesis } from '../../consensus/genesis.js';
import type { EncryptionKeyPair } from '../../records/crypto/keyAgreement.js';
import type { Signer } from '../../records/crypto/signature.js';
import { networkInfo } from '../../records/state/statsRules.js';
import type { StatsJob } from '../../records/state/types.js';
import { verifyKeyFor } from '../../records/stats/job.js';
import { toBase64 } from '../../records/crypto/bytes.js';
import { prepShareLength, vdafFor, type Prio3Vdaf } from '../../records/stats/prio3.js';
import { signTx } from '../../records/tx/codec.js';
import type { Tx, UnsignedTx } from '../../records/tx/types.js';
import type { FinalizedBlock } from '../finalizedBlock.js';
import type { Ledger } from '../ledger.js';
import type { P2PHost } from '../p2p/host.js';
import { StoreDamage } from '../store/ledgerStore.js';
import { errMessage } from '../p2p/errMessage.js';
import { finishReports, JobAborted, prepareReports, type JobOutcome, type PreparedReports } from './jobWork.js';
import type { NodeMetrics } from '../metrics.js';
import {
  decodePrepRequest,
  encodePrepRequest,
  encodePrepResponse,
  MAX_JOB_REPORTS,
  PREP_MAX_FRAME_BYTES,
  PREP_MAX_FRAMES,
  PREP_MAX_REQUEST_BYTES,
  readPrepResponse,
  STATS_PREP_PROTOCOL,
} from './prepProtocol.js';

/**
 * Pending jobs being worked on at once (prepared, not yet answered by this node on chain); later ones wait
 * their turn. A job costs ~6.9 KiB per report here (own prep state of 281 field elements and own share, three
 * peers' shares; ~160 MB resident measured at MAX_JOB_REPORTS), so two at most: one job waiting for its own share to commit
 * does not stop the next. A job this node has answered (its statsAggregate is committed) takes no slot:
 * it keeps only its encoded preparation-share frames, to serve peers that still need them.
 */
export const MAX_ACTIVE_JOBS = 2;
/**
 * Answered jobs whose frames are kept for peers (~0.6 KiB per report, ~6 MiB at MAX_JOB_REPORTS): beyond
 * this, the newer answered jobs stop being served (logged), so a hospital that never submits cannot pile up
 * memory here.
 */
export const MAX_SERVED_JOBS = 4;
/** A whole preparation-share list must arrive within this; a slow peer is asked again on a later step. */
export const PULL_DEADLINE_MS = 120_000;
const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;
/** A submitted aggregate not yet on the ledger after this long is signed and submitted again (fresh nonce). */
const RESUBMIT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface StatsAggregatorDeps {
  ledger: Ledger;
  genesis: Genesis;
  /** This node's hospital: the actor of its statsAggregate transactions. */
  hospital: string;
  aggregator: EncryptionKeyPair;
  /** The validator key: it signs the hospital's statsAggregate. */
  signer: Signer;
  host: () => Pick<P2PHost, 'request'>;
  /** Through the node's own admission path (mempool, gossip). */
  submit: (tx: Tx) => Promise<void>;
  /** The transaction still waits in this node's mempool (then it is not submitted again). */
  isPending?: (txId: string) => boolean;
  /** Reports a job may hold to be worked on here; default MAX_JOB_REPORTS (tests lower it). */
  maxReports?: number;
  /** Counts of each aggregation (the node's /metrics). */
  metrics?: Pick<NodeMetrics, 'statsAggregated'>;
  logger: Logger;
}

interface ActiveJob {
  job: StatsJob;
  vdaf: Prio3Vdaf;
  prepared?: PreparedReports;
  /** Preparation share lists by hospital (this hospital's own included): only hospitals that answered. */
  lists: Map<string, (Uint8Array | undefined)[]>;
  outcome?: JobOutcome;
  submitted?: { tx: string; at: number };
  /** The job cannot be worked on here (too many reports, or the index disagrees with the ledger): logged once. */
  stuck?: string;
  /** This node's preparation-share answer, encoded once (served to every peer that asks). */
  frames?: Uint8Array[];
  /** This node's statsAggregate is committed: prep states and peers' lists are dropped, only `frames` stay. */
  answered?: boolean;
}

/**
 * The node's Prio3 aggregator (issue 13, PROTOCOL.md §6.6). It follows the chain: every pending job of the
 * ledger's statsJobs table (oldest first, at most MAX_ACTIVE_JOBS at a time) is prepared from the batch's
 * committed reports with this hospital's aggregator key and the verify key derived from the query's block;
 * the other hospitals' preparation shares are pulled over `stats-prep` (retried with backoff while a peer is
 * down or not ready), and once every hospital's list is here the reports are combined, finished and summed
 * and the hospital's statsAggregate is submitted. Restart-safe without its own storage: everything is
 * recomputed from the chain (preparation is deterministic), so a restarted node resumes every pending job
 * and serves its shares again. Logs counts only, never a value.
 */
export class StatsAggregator {
  private readonly active = new Map<string, ActiveJob>();
  private readonly log: Logger;
  private readonly hospitals: string[];
  private readonly selfIndex: number;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private kicked = false;
  private lastNonce = 0;

  constructor(private readonly deps: StatsAggregatorDeps) {
    this.log = deps.logger;
    this.hospitals = networkInfo(deps.ledger.state).hospitals;
    this.selfIndex = this.hospitals.indexOf(deps.hospital);
    if (this.selfIndex < 0) throw new Error(`hospital ${deps.hospital} is not in the network`);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.kick();
    await this.loop;
    this.active.clear();
  }

  /** Chain follower: a block that touched a job (created, or a hospital's share) wakes the runner. */
  onCommitted(finalized: FinalizedBlock): void {
    if (finalized.executed.changes.some((c) => c.table === 'statsJobs')) this.kick();
  }

  /** Hospitals this aggregator still needs preparation shares from for a job; undefined when it is not working on it. */
  waitingFor(jobId: string): string[] | undefined {
    const a = this.active.get(jobId);
    if (!a) return undefined;
    const job = this.deps.ledger.state.get('statsJobs', jobId);
    if (job?.shares[this.deps.hospital]) return [];
    return this.hospitals.filter((h) => !a.lists.has(h));
  }

  /** `stats-prep` responder: this hospital's preparation shares of a job, or not-ready. */
  async *serve(request: Uint8Array): AsyncIterable<Uint8Array> {
    let jobId: string;
    try {
      jobId = decodePrepRequest(request);
    } catch {
      return; // a malformed request gets no frames: the requester sees an empty answer
    }
    const a = this.active.get(jobId);
    if (a?.prepared && !a.frames) a.frames = [...encodePrepResponse(a.prepared.shares)];
    yield* a?.frames ?? encodePrepResponse(undefined);
  }

  private kick(): void {
    this.kicked = true;
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async run(): Promise<void> {
    let delay = MIN_DELAY_MS;
    while (!this.stopped) {
      this.kicked = false;
      let progressed = false;
      try {
        progressed = await this.step();
      } catch (err) {
        if (!(err instanceof JobAborted)) this.log.error({ err: errMessage(err) }, 'stats aggregator step failed');
      }
      if (this.stopped) break;
      delay = progressed ? MIN_DELAY_MS : Math.min(MAX_DELAY_MS, delay * 2);
      if (this.kicked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Pending jobs of the ledger, oldest first (by the height of their query, then id). */
  private pendingJobs(): StatsJob[] {
    const jobs: StatsJob[] = [];
    for (const [, job] of this.deps.ledger.state.entries('statsJobs')) if (job.status === 'pending') jobs.push(job);
    return jobs.sort((a, b) => a.height - b.height || (a.id < b.id ? -1 : 1));
  }

  /** One pass: prepare what is new, pull missing lists, finish and submit what is complete. True if anything moved. */
  private async step(): Promise<boolean> {
    const pending = this.pendingJobs();
    const pendingIds = new Set(pending.map((j) => j.id));
    for (const [id, a] of this.active) {
      if (pendingIds.has(id)) continue;
      this.active.delete(id);
      const job = this.deps.ledger.state.get('statsJobs', id);
      this.log.info({ job: short(id), status: job?.status ?? 'unknown', used: job?.used, dropped: job?.dropped, reports: a.job.reports }, 'stats job closed');
    }
    let progressed = false;
    // A job this node cannot work on (stuck) holds no memory and no slot: it must not block the later ones.
    // Nor does a job this node has answered: it waits for other hospitals, which must not block the later ones.
    let slots = MAX_ACTIVE_JOBS;
    let served = 0;
    for (const job of pending) {
      if (this.stopped) return progressed;
      const answered = job.shares[this.deps.hospital] !== undefined;
      if (!answered && slots === 0) continue;
      let a = this.active.get(job.id);
      if (answered && (a?.answered || a?.stuck)) {
        if (a.answered) served++;
        continue;
      }
      if (answered && served >= MAX_SERVED_JOBS) {
        // Bounded: beyond MAX_SERVED_JOBS answered jobs (oldest first), the newer ones are no longer served.
        if (a && !a.stuck) {
          a.stuck = `answered here; over the bound of ${MAX_SERVED_JOBS} served jobs`;
          delete a.prepared;
          delete a.outcome;
          delete a.frames;
          a.lists.clear();
          this.log.warn({ job: short(job.id) }, `stats job no longer served: ${a.stuck}`);
        }
        continue;
      }
      if (!a) {
        a = { job, vdaf: vdafFor(job.measure, job.instance, this.hospitals.length), lists: new Map() };
        this.active.set(job.id, a);
      }
      if (!a.prepared && !a.stuck) {
        // After a restart an answered job is prepared again (deterministic) only to serve peers.
        await this.prepare(a);
        progressed = true;
      }
      if (answered && a.prepared) {
        this.release(a);
        served++;
      } else if (a.prepared) slots--;
    }
    const working = [...this.active.values()].filter((a) => {
      if (this.stopped || !a.prepared || a.answered || a.outcome) return false;
      const current = this.deps.ledger.state.get('statsJobs', a.job.id);
      return current?.status === 'pending' && !current.shares[this.deps.hospital];
    });
    // Pulled for every job at once, each under PULL_DEADLINE_MS: one slow peer cannot hold the others in turn.
    if ((await Promise.all(working.map((a) => this.pull(a)))).some(Boolean)) progressed = true;
    for (const a of this.active.values()) {
      if (this.stopped || !a.prepared || a.answered) continue;
      const current = this.deps.ledger.state.get('statsJobs', a.job.id);
      if (!current || current.status !== 'pending' || current.shares[this.deps.hospital]) continue;
      if (!a.outcome) {
        if (a.lists.size < this.hospitals.length) continue;
        const started = Date.now();
        a.outcome = await finishReports(
          a.vdaf,
          a.prepared,
          this.hospitals.map((h) => a.lists.get(h)!),
          () => this.stopped,
        );
        this.log.info({ job: short(a.job.id), used: a.outcome.used, dropped: a.outcome.dropped, ms: Date.now() - started }, 'stats job aggregated');
        this.deps.metrics?.statsAggregated({ ...a.outcome, withheld: a.outcome.share.length === 0 }, (Date.now() - started) / 1000);
        progressed = true;
      }
      if (a.submitted && (Date.now() - a.submitted.at < RESUBMIT_MS || this.deps.isPending?.(a.submitted.tx))) continue;
      await this.submit(a, a.outcome);
      progressed = true;
    }
    return progressed;
  }

  /** This node's aggregate is on chain: keep only the encoded frames peers may still ask for. */
  private release(a: ActiveJob): void {
    a.frames ??= [...encodePrepResponse(a.prepared!.shares)];
    a.answered = true;
    delete a.prepared;
    delete a.outcome;
    a.lists.clear();
  }

  private async prepare(a: ActiveJob): Promise<void> {
    const { ledger, genesis, aggregator } = this.deps;
    const { job } = a;
    const max = this.deps.maxReports ?? MAX_JOB_REPORTS;
    if (job.reports > max) {
      a.stuck = `${job.reports} reports, over the bound of ${max}`;
      this.log.error({ job: short(job.id), reports: job.reports }, `stats job not aggregated here: ${a.stuck}`);
      return;
    }
    const block = await ledger.getBlock(job.height);
    if (!block) throw new Error(`block ${job.height} of stats job ${short(job.id)} is not stored`);
    const started = Date.now();
    const reports = async function* () {
      for await (const r of ledger.statsReports(job.measure, job.batch, MAX_JOB_REPORTS)) yield r.tx;
    };
    let prepared: PreparedReports;
    try {
      prepared = await prepareReports(reports(), {
        vdaf: a.vdaf,
        genesisHash: genesis.hash,
        aggregator,
        selfIndex: this.selfIndex,
        instance: job.instance,
        verifyKey: verifyKeyFor(headerHash(block.header), job.id, a.vdaf.verifyKeySize),
        aborted: () => this.stopped,
      });
    } catch (err) {
      if (!(err instanceof StoreDamage)) throw err;
      // Damage does not heal by itself: trying again would redo the preparation every step and stall other jobs.
      a.stuck = `damaged store: ${err.message}`;
      this.log.error({ job: short(job.id) }, `stats job not aggregated here: ${a.stuck}`);
      return;
    }
    if (prepared.txIds.length !== job.reports) {
      a.stuck = `the store indexes ${prepared.txIds.length} reports, the ledger counts ${job.reports}`;
      this.log.error({ job: short(job.id) }, `stats job not aggregated here: ${a.stuck}`);
      return;
    }
    a.prepared = prepared;
    a.lists.set(this.deps.hospital, prepared.shares);
    this.log.info({ job: short(job.id), reports: job.reports, invalid: prepared.invalid, ms: Date.now() - started }, 'stats job prepared');
  }

  /** Asks every hospital whose list is missing (in parallel); true if a list arrived. */
  private async pull(a: ActiveJob): Promise<boolean> {
    const missing = this.hospitals.filter((h) => !a.lists.has(h));
    const got = await Promise.all(
      missing.map(async (hospital) => {
        const peer = this.deps.genesis.validators.find((v) => v.hospital === hospital)?.peerId;
        if (!peer) return false;
        try {
          const frames = this.deps.host().request(peer, STATS_PREP_PROTOCOL, encodePrepRequest(a.job.id), {
            timeoutMs: REQUEST_TIMEOUT_MS,
            maxFrameBytes: PREP_MAX_FRAME_BYTES,
            maxFrames: PREP_MAX_FRAMES,
          });
          const list = await readPrepResponse(withDeadline(frames, PULL_DEADLINE_MS), { count: a.job.reports, shareLength: prepShareLength(a.vdaf) });
          if (!list) return false;
          a.lists.set(hospital, list);
          const invalid = list.reduce((n, s) => n + (s ? 0 : 1), 0);
          this.log.info({ job: short(a.job.id), from: hospital, invalid, waiting: this.hospitals.length - a.lists.size }, 'stats preparation shares received');
          return true;
        } catch (err) {
          this.log.debug({ job: short(a.job.id), from: hospital, err: errMessage(err) }, 'stats preparation shares not received');
          return false;
        }
      }),
    );
    return got.some(Boolean);
  }

  private async submit(a: ActiveJob, outcome: JobOutcome): Promise<void> {
    const { ledger, signer, hospital, genesis } = this.deps;
    const now = Date.now();
    const last = ledger.state.get('hospitals', hospital)?.lastNonce ?? 0;
    // Time-based like users' nonces, above the ledger's counter and every nonce this process used.
    this.lastNonce = Math.max(now * 1_000, last + 1, this.lastNonce + 1);
    const unsigned: UnsignedTx<'statsAggregate'> = {
      v: 1,
      type: 'statsAggregate',
      actor: hospital,
      key: signer.publicKey,
      via: hospital,
      nonce: this.lastNonce,
      time: now,
      body: { job: a.job.id, share: outcome.share, used: outcome.used, dropped: outcome.dropped, digest: outcome.digest },
    };
    const tx = signTx(unsigned, signer, genesis.hash);
    try {
      await this.deps.submit(tx);
      a.submitted = { tx: tx.idHex, at: now };
      this.log.info({ job: short(a.job.id), tx: short(tx.idHex), used: outcome.used, dropped: outcome.dropped }, 'stats aggregate submitted');
    } catch (err) {
      this.log.warn({ job: short(a.job.id), err: errMessage(err) }, 'stats aggregate not admitted; trying again');
    }
  }
}

const short = (id: string) => id.slice(0, 12);

/** The frames of `source` until `ms` have passed in all; then it throws and the request's stream is closed. */
export async function* withDeadline<T>(source: AsyncIterable<T>, ms: number): AsyncIterable<T> {
  const it = source[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no complete answer within ${ms} ms`)), Math.max(0, deadline - Date.now()));
      });
      const next = it.next();
      next.catch(() => undefined); // a frame that loses the race must not become an unhandled rejection
      let r: IteratorResult<T>;
      try {
        r = await Promise.race([next, late]);
      } finally {
        clearTimeout(timer);
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    void it.return?.()?.catch(() => undefined);
  }
}

/**
 * The node's wiring: with an aggregator key in the config, an aggregator that follows the chain writer and
 * answers `stats-prep` (started by the node once consensus runs); without one, undefined (logged).
 */
export async function attachStatsAggregator(w: {
  config: Pick<NodeConfig, 'hospital' | 'aggregatorKeyFile'>;
  genesis: Genesis;
  ledger: Ledger;
  chain: ChainWriter;
  host: P2PHost;
  signer: Signer;
  /** Its own admission path (`submit`) and mempool. */
  node: { submit(req: { tx: string; wait: boolean; timeoutMs: number }): Promise<unknown>; readonly mempool: { has(id: string): boolean } };
  metrics: Pick<NodeMetrics, 'statsAggregated'>;
  logger: Logger;
}): Promise<StatsAggregator | undefined> {
  const aggregator = loadAggregatorKey(w.config, w.genesis);
  if (!aggregator) {
    w.logger.warn('no aggregatorKeyFile in the node config: this hospital takes no part in private statistics');
    return undefined;
  }
  const stats = new StatsAggregator({
    ledger: w.ledger,
    genesis: w.genesis,
    hospital: w.config.hospital,
    aggregator,
    signer: w.signer,
    host: () => w.host,
    submit: async (tx) => {
      await w.node.submit({ tx: toBase64(tx.bytes), wait: false, timeoutMs: 30_000 });
    },
    isPending: (txId) => w.node.mempool.has(txId),
    metrics: w.metrics,
    logger: w.logger.child({ module: 'stats' }),
  });
  w.chain.onCommitted((finalized) => stats.onCommitted(finalized));
  await w.host.handle(STATS_PREP_PROTOCOL, (request) => stats.serve(request), { maxRequestBytes: PREP_MAX_REQUEST_BYTES, maxFrameBytes: PREP_MAX_FRAME_BYTES });
  return stats;
}
