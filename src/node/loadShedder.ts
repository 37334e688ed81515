import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { MedLedgerError } from '../records/errors.js';
import type { NodeMetrics } from './metrics.js';

/**
 * Decides, cheaply and before any decoding or signature check, whether the node takes more transactions
 * now. Consensus shares the event loop and the memory with admission: when either runs short, new work is
 * refused with 503 (and Retry-After) so that rounds stay on time and memory stays bounded. Checked per
 * request; the measurements are refreshed every SAMPLE_MS.
 */
export interface ShedLimits {
  /** Pending transactions above which new submissions are refused: a few blocks' worth is enough queue. */
  mempoolHighWater: number;
  /** Resident memory (bytes) above which new submissions are refused. */
  rssHighWater: number;
  /** Event-loop delay (ms, p99 over the last sample) above which new submissions are refused. */
  loopDelayHighWaterMs: number;
}

const SAMPLE_MS = 500;
/** Share of V8's heap limit that the live heap may fill before submissions are shed. */
const HEAP_HIGH_WATER_SHARE = 0.6;
const heapLimit = () => getHeapStatistics().heap_size_limit;

/** A fifth of a propose timeout, sustained: beyond it, rounds would start to time out. */
export const LOOP_DELAY_HIGH_WATER_MS = 300;
/** Loop lag sheds only while at least this share of the mempool's high-water mark is pending. */
const LOOP_SHED_MIN_PENDING_SHARE = 0.1;

export class LoadShedder {
  private readonly delay: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private overloadedBy: string | null = null;
  /** Submissions refused since start, by reason (status and metrics). */
  readonly shed: Record<'mempool' | 'memory' | 'loop', number> = { mempool: 0, memory: 0, loop: 0 };
  private rss = 0;
  private loopP99Ms = 0;
  private lastSampleAt = performance.now();
  private laggedBefore = false;

  constructor(
    private readonly limits: ShedLimits,
    private readonly mempoolSize: () => number,
    private readonly metrics?: NodeMetrics,
  ) {
    this.delay = monitorEventLoopDelay({ resolution: 10 });
    this.delay.enable();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  private sample(): void {
    const mem = process.memoryUsage();
    const now = performance.now();
    // This timer's own lateness catches a hog that the histogram's window may straddle.
    const late = now - this.lastSampleAt - SAMPLE_MS;
    this.lastSampleAt = now;
    this.rss = mem.rss;
    this.loopP99Ms = Math.max(late, this.delay.percentile(99) / 1e6);
    this.delay.reset();
    // The live heap says whether taking more would grow memory; resident memory alone lags (V8 and malloc
    // keep freed pages for a while), so it sheds only near the hard bound.
    const memoryHigh = mem.heapUsed > HEAP_HIGH_WATER_SHARE * heapLimit() || this.rss > this.limits.rssHighWater;
    // A lagging loop is overload only when it lasts (two windows in a row) and work is queueing: a single
    // stall (a compaction, a busy machine) with an empty mempool is not helped by refusing one request.
    const lagging = this.loopP99Ms > this.limits.loopDelayHighWaterMs;
    const sustained = lagging && this.laggedBefore && this.mempoolSize() >= LOOP_SHED_MIN_PENDING_SHARE * this.limits.mempoolHighWater;
    this.laggedBefore = lagging;
    this.overloadedBy = memoryHigh ? 'memory' : sustained ? 'loop' : null;
  }

  /** Why the node is too busy for `count` more transactions, or null. */
  reason(count = 1): 'mempool' | 'memory' | 'loop' | null {
    if (this.mempoolSize() + count > this.limits.mempoolHighWater) return 'mempool';
    return this.overloadedBy as 'memory' | 'loop' | null;
  }

  /** Throws UNAVAILABLE (HTTP 503, Retry-After) when the node is too busy; counts each refusal. */
  admit(count = 1): void {
    const why = this.reason(count);
    if (!why) return;
    this.shed[why] += count;
    this.metrics?.loadShed.inc({ reason: why }, count);
    const what = why === 'mempool' ? 'too many pending transactions' : why === 'memory' ? 'memory high' : 'event loop busy';
    throw new MedLedgerError('UNAVAILABLE', `the node is busy (${what}): retry in 1 s`);
  }

  status(): { shed: Record<'mempool' | 'memory' | 'loop', number>; rssMB: number; loopDelayP99Ms: number } {
    return { shed: { ...this.shed }, rssMB: Math.round(this.rss / 2 ** 20), loopDelayP99Ms: Math.round(this.loopP99Ms) };
  }

  stop(): void {
    clearInterval(this.timer);
    this.delay.disable();
  }
}
