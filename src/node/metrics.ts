import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Outcome } from '../records/audit.js';
import { isMedLedgerError, type ErrorCode } from '../records/errors.js';
import type { ExecutedBlock } from '../consensus/blockExecution.js';

/**
 * The node's Prometheus metrics (`GET /metrics`, PROTOCOL.md §7.4), defined here and nowhere else. Each node
 * has its own registry (several nodes in one test process must not share counters). Labels take fixed sets
 * of values only (error codes, sources, reasons), never ids: the output carries no user, patient or record
 * id, no key and no medical data, and its size does not grow with anyone's input.
 *
 * State (height, round, peers, mempool, integrity) is read from the node when scraped; events (commits,
 * rejections, round changes, shedding, repairs) are counted where they happen, through the methods below.
 */

/** Every error code a transaction can be refused with (a Record, so a new ErrorCode must be added here). */
const ERROR_CODES: Record<ErrorCode, true> = {
  MALFORMED: true,
  TOO_LARGE: true,
  BAD_SIGNATURE: true,
  UNKNOWN_ACTOR: true,
  KEY_MISMATCH: true,
  REPLAY: true,
  BAD_TIME: true,
  USER_EXISTS: true,
  WRONG_PASSWORD: true,
  TAMPERED: true,
  WEAK_PASSWORD: true,
  NOT_FOUND: true,
  FORBIDDEN: true,
  INVALID_BLOCK: true,
  INVALID_CERTIFICATE: true,
  UNAVAILABLE: true,
  CONFLICT: true,
};

export type RejectionReason = ErrorCode | 'other';
export const REJECTION_REASONS: readonly RejectionReason[] = [...(Object.keys(ERROR_CODES) as ErrorCode[]), 'other'];
export type AdmissionSource = 'api' | 'gossip';
const SOURCES: readonly AdmissionSource[] = ['api', 'gossip'];
export type ShedReason = 'mempool' | 'memory' | 'loop';
const SHED_REASONS: readonly ShedReason[] = ['mempool', 'memory', 'loop'];
const OUTCOMES: readonly Outcome[] = ['success', 'denied'];
const REPAIR_RESULTS = ['stored', 'dropped'] as const;
const STATS_OUTCOMES = ['released', 'withheld'] as const;
const STATS_REPORT_RESULTS = ['used', 'dropped'] as const;

/**
 * The label of a refusal: its error code when it is one of the known codes (a MedLedgerError or the code
 * itself), else "other" — so whatever an error carries, the label set stays these 18 values.
 */
export function rejectionReason(err: unknown): RejectionReason {
  const code = typeof err === 'string' ? err : isMedLedgerError(err) ? err.code : undefined;
  return code !== undefined && Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'other';
}

/** What the node's state gauges read when scraped. */
export interface MetricSources {
  height(): number;
  round(): number;
  peers(): number;
  mempool(): { txs: number; bytes: number };
  integrity(): { verifiedHeight: number; alert: boolean };
  payloadsMissing(): number;
}

/** Per transaction: tens of microseconds (a duplicate) to milliseconds (signature check, large payload). */
const ADMISSION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
/** Per block: a millisecond (empty) to seconds (thousands of transactions on a busy machine). */
const BLOCK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class NodeMetrics {
  readonly registry = new Registry();
  readonly roundChanges: Counter;
  readonly blocksCommitted: Counter;
  readonly txsCommitted: Counter;
  readonly eventsCommitted: Counter<'outcome'>;
  readonly rejections: Counter<'source' | 'reason'>;
  readonly admissionSeconds: Histogram<'source'>;
  readonly validationSeconds: Histogram;
  readonly commitSeconds: Histogram;
  readonly payloadRepairs: Counter<'result'>;
  readonly statsAggregations: Counter<'outcome'>;
  readonly statsReports: Counter<'result'>;
  readonly statsAggregationSeconds: Histogram;
  readonly loadShed: Counter<'reason'>;

  constructor(sources: MetricSources, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('medledger_chain_height', 'Height of the last finalized block stored here.', () => sources.height());
    gauge('medledger_consensus_round', 'Consensus round of the open height (0 when the first proposal succeeds).', () => sources.round());
    gauge('medledger_peers_connected', 'Validator peers connected over libp2p.', () => sources.peers());
    gauge('medledger_mempool_transactions', 'Transactions waiting for a block.', () => sources.mempool().txs);
    gauge('medledger_mempool_bytes', 'Bytes held by the mempool (transactions and their payloads).', () => sources.mempool().bytes);
    gauge(
      'medledger_integrity_verified_height',
      'Height up to which the integrity monitor has re-verified the stored chain.',
      () => sources.integrity().verifiedHeight,
    );
    gauge('medledger_integrity_alert', '1 when the integrity monitor has raised an alert (see GET /v1/status), else 0.', () =>
      sources.integrity().alert ? 1 : 0,
    );
    gauge('medledger_payloads_missing', 'Committed payloads missing here and waiting for repair from peers (at most one page).', () =>
      sources.payloadsMissing(),
    );

    this.roundChanges = new Counter({
      name: 'medledger_consensus_round_changes_total',
      help: 'Rounds the engine moved beyond round 0 of a height (timeouts, round skips).',
      registers,
    });
    this.blocksCommitted = new Counter({
      name: 'medledger_blocks_committed_total',
      help: 'Blocks committed here (decided by consensus or synced).',
      registers,
    });
    this.txsCommitted = new Counter({ name: 'medledger_transactions_committed_total', help: 'Transactions in blocks committed here.', registers });
    this.eventsCommitted = new Counter({
      name: 'medledger_audit_events_committed_total',
      help: 'Audit events committed here, by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.rejections = new Counter({
      name: 'medledger_tx_rejected_total',
      help: 'Transactions refused at admission, by source (api, gossip) and error code ("other" for anything else).',
      labelNames: ['source', 'reason'],
      registers,
    });
    this.admissionSeconds = new Histogram({
      name: 'medledger_tx_admission_seconds',
      help: 'Time to admit (or refuse) one transaction into the mempool, by source.',
      labelNames: ['source'],
      buckets: ADMISSION_BUCKETS,
      registers,
    });
    this.validationSeconds = new Histogram({
      name: 'medledger_block_validation_seconds',
      help: 'Time to execute and check a proposed block (once per block).',
      buckets: BLOCK_BUCKETS,
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'medledger_block_commit_seconds',
      help: 'Time to store a finalized block and move the ledger state (one LevelDB batch).',
      buckets: BLOCK_BUCKETS,
      registers,
    });
    this.payloadRepairs = new Counter({
      name: 'medledger_payload_repairs_total',
      help: 'Missing payloads fetched from peers: stored, or dropped (deleted meanwhile).',
      labelNames: ['result'],
      registers,
    });
    this.statsAggregations = new Counter({
      name: 'medledger_stats_aggregations_total',
      help: 'Statistics jobs this node aggregated (issue 13): its share released, or withheld (too few valid reports).',
      labelNames: ['outcome'],
      registers,
    });
    this.statsReports = new Counter({
      name: 'medledger_stats_reports_total',
      help: 'Reports of the aggregated statistics jobs: used, or dropped (failed proof, unopenable, marked by a hospital).',
      labelNames: ['result'],
      registers,
    });
    this.statsAggregationSeconds = new Histogram({
      name: 'medledger_stats_aggregation_seconds',
      help: "Time to finish a statistics job once every hospital's preparation shares are here (combine, prepareNext, sum).",
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.loadShed = new Counter({
      name: 'medledger_load_shed_total',
      help: 'API submissions refused with 503 because the node was busy, by reason.',
      labelNames: ['reason'],
      registers,
    });
    // Every series of a fixed label set is shown from the start (at 0), so rate() sees its first increase.
    for (const outcome of OUTCOMES) this.eventsCommitted.inc({ outcome }, 0);
    for (const source of SOURCES) {
      this.admissionSeconds.zero({ source });
      for (const reason of REJECTION_REASONS) this.rejections.inc({ source, reason }, 0);
    }
    for (const result of REPAIR_RESULTS) this.payloadRepairs.inc({ result }, 0);
    for (const reason of SHED_REASONS) this.loadShed.inc({ reason }, 0);
    for (const outcome of STATS_OUTCOMES) this.statsAggregations.inc({ outcome }, 0);
    for (const result of STATS_REPORT_RESULTS) this.statsReports.inc({ result }, 0);
    // CPU, memory, event-loop lag, GC, handles: prom-client's standard process metrics, in this registry (they
    // describe the process: nodes sharing one, as in some tests, report the same figures; each adds one
    // event-loop histogram and one GC observer, which live as long as the process).
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Runs one admission, timed whether it admits or refuses. */
  admission<T>(source: AdmissionSource, admit: () => T): T {
    const end = this.admissionSeconds.startTimer({ source });
    try {
      return admit();
    } finally {
      end();
    }
  }

  /**
   * A transaction refused, counted where the refusal is final: a resubmitted transaction that admission
   * refuses as a replay but that is already final is answered as known, not counted; load shedding is
   * counted apart (loadShed).
   */
  rejected(source: AdmissionSource, err: unknown): void {
    this.rejections.inc({ source, reason: rejectionReason(err) });
  }

  /** A block was committed here (by consensus or sync). */
  committed(executed: Pick<ExecutedBlock, 'txs' | 'events'>): void {
    this.blocksCommitted.inc();
    this.txsCommitted.inc(executed.txs.length);
    let denied = 0;
    for (const e of executed.events) if (e.outcome === 'denied') denied++;
    this.eventsCommitted.inc({ outcome: 'success' }, executed.events.length - denied);
    this.eventsCommitted.inc({ outcome: 'denied' }, denied);
  }

  /** A statistics job aggregated here: counts only, never a value. */
  statsAggregated(outcome: { used: number; dropped: number; withheld: boolean }, seconds: number): void {
    this.statsAggregations.inc({ outcome: outcome.withheld ? 'withheld' : 'released' });
    this.statsReports.inc({ result: 'used' }, outcome.used);
    this.statsReports.inc({ result: 'dropped' }, outcome.dropped);
    this.statsAggregationSeconds.observe(seconds);
  }

  /** The Prometheus text exposition (format 0.0.4) of this node's registry. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
