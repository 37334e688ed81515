import type { Logger } from 'pino';
import { ChainFault } from '../../consensus/chainCheck.js';
import type { IntegrityStatus } from '../../api/contract.js';
import type { CommittedBlock, Ledger } from '../ledger.js';
import { StoreDamage } from '../store/ledgerStore.js';
import { ChainPass, Pass } from './chainPass.js';
import { CrossCheck } from './indexDigests.js';
import { Pacer, Schedule, Stopped } from './schedule.js';
import { StoredChecks } from './storedChecks.js';

/**
 * The background integrity check (PROTOCOL.md §8.3; "no data integrity in the server's database"), for a
 * replicated ledger: the node re-verifies what it has on disk, not what it believes in memory.
 *
 * A pass starts from genesis with a fresh state and re-executes every stored block (`chainPass.ts`). For
 * each block it also checks that the stored audit events are byte for byte the re-derived ones and that
 * the block-hash index points back to it (`storedChecks.ts`). Once the pass reaches the head it checks the
 * indexes both ways through digests (`indexDigests.ts`) and the stored state against the re-derived state
 * (`stateCheck.ts`). Then it follows new blocks, repeats the cross-checks and starts new passes
 * (`schedule.ts`). Passes are throttled (a share of wall time, yielding to the event loop between blocks)
 * and signatures can be checked on worker threads, so consensus keeps running. The first problem found is
 * raised as an alert naming the height: in the status (API, TUI status bar) and as an error in the log.
 */
export interface IntegrityMonitorOptions {
  logger: Logger;
  /** A new pass from genesis this long after the previous one started (default 1 hour). */
  rescanIntervalMs?: number;
  /** Index and state cross-checks while following new blocks (default 5 minutes). */
  crossCheckIntervalMs?: number;
  /** Share of wall time the pass at startup may use (default 0.5). */
  startupDuty?: number;
  /** Share of wall time later passes may use (default 0.25). */
  backgroundDuty?: number;
  /**
   * Check signatures on two worker threads, one chunk ahead (default false). About twice as fast, but it
   * holds two chunks of decoded transactions at a time and the node's resident memory grows by well over
   * 100 MB; a node's background check favours memory, `scanOnce` callers may choose speed.
   */
  workers?: boolean;
  /** New blocks are verified in batches, at most this often (default 1 s): bursts settle first. */
  followDelayMs?: number;
  /** True while the node catches up by sync: following waits, and passes slow down to the background share. */
  busy?: () => boolean;
  /** A payload was found damaged or missing and marked for repair (the sync manager fetches it from peers). */
  payloadsToRepair?: () => void;
  /** Check each block's payloads (default true; off only to measure what the payload checks cost). */
  checkPayloads?: boolean;
}

export type MonitorOptions = Required<Omit<IntegrityMonitorOptions, 'logger'>> & { logger: Logger };

type Alert = NonNullable<IntegrityStatus['alert']>;

export class IntegrityMonitor {
  private alert: Alert | undefined;
  private pass: Pass | null = null;
  private running: Promise<void> | null = null;
  /** What the last complete pass from genesis took (for the log and benchmarks). */
  lastPass: { height: number; events: number; chainMs: number; crossCheckMs: number } | undefined;
  private readonly opts: MonitorOptions;
  private readonly pacer: Pacer;
  private readonly stored: StoredChecks;
  private readonly chain: ChainPass;
  private readonly crossChecks: CrossCheck;
  private readonly schedule: Schedule;
  private readonly onCommit = (c: CommittedBlock) => {
    this.chain.committed(c);
    this.schedule.wake();
  };

  constructor(
    private readonly ledger: Ledger,
    opts: IntegrityMonitorOptions,
  ) {
    this.opts = {
      rescanIntervalMs: 3_600_000,
      crossCheckIntervalMs: 300_000,
      startupDuty: 0.5,
      backgroundDuty: 0.25,
      workers: false,
      followDelayMs: 1_000,
      busy: () => false,
      payloadsToRepair: () => undefined,
      checkPayloads: true,
      ...opts,
    };
    this.pacer = new Pacer(this.opts);
    this.stored = new StoredChecks(ledger, this.opts);
    this.chain = new ChainPass(ledger, this.opts.workers, this.pacer, this.stored);
    this.crossChecks = new CrossCheck(ledger, this.pacer);
    this.schedule = new Schedule(ledger, this.opts, this.pacer, this.crossChecks, {
      newPass: () => this.newPass(),
      fullPass: (pass, duty) => this.fullPass(pass, duty),
      follow: (pass) => this.guard(() => this.chain.follow(pass)),
      crossCheck: (pass) => this.guard(() => this.crossChecks.run(pass)),
      passDone: () => this.logPass(),
    });
  }

  /** Payload checks: how many were checked, what was found (and handed to repair or purged). */
  get payloads(): StoredChecks['payloads'] {
    return this.stored.payloads;
  }

  /** What the status endpoint reports. */
  status(): IntegrityStatus {
    const verified = this.chain.verified;
    if (this.alert) return { ok: false, verifiedHeight: Math.min(verified, this.alert.height - 1), alert: { ...this.alert } };
    return { ok: true, verifiedHeight: verified };
  }

  /** Starts the first pass now and keeps following the chain until stopped. */
  start(): void {
    this.ledger.on('committed', this.onCommit);
    this.running = this.schedule.loop().catch((err: Error) => this.opts.logger.error({ err }, 'integrity monitor stopped unexpectedly'));
  }

  async stop(): Promise<void> {
    this.pacer.stopped = true;
    this.ledger.off('committed', this.onCommit);
    this.schedule.wake();
    await this.running;
    await this.chain.close();
  }

  /**
   * One complete pass from genesis to the current head with the cross-checks, unthrottled. For tests and
   * benchmarks; a running monitor does the same in the background.
   */
  async scanOnce(): Promise<IntegrityStatus> {
    const pass = this.newPass();
    this.pacer.scanDuty = 1;
    await this.fullPass(pass, 1);
    return this.status();
  }

  private newPass(): Pass {
    this.pass = new Pass(this.ledger, this.opts.workers);
    return this.pass;
  }

  /** From genesis to the head, then the cross-checks; records how long each took. */
  private async fullPass(pass: Pass, duty: number): Promise<boolean> {
    const t0 = performance.now();
    let healthy = await this.guard(() => this.chain.catchUp(pass, duty));
    const t1 = performance.now();
    if (healthy && !this.pacer.stopped) healthy = await this.guard(() => this.crossChecks.run(pass));
    if (healthy && !this.pacer.stopped) this.lastPass = { height: pass.height, events: pass.events, chainMs: t1 - t0, crossCheckMs: performance.now() - t1 };
    return healthy;
  }

  private logPass(): void {
    if (!this.lastPass) return;
    const { height, events, chainMs, crossCheckMs } = this.lastPass;
    this.opts.logger.info(
      { height, events, chainSeconds: Number((chainMs / 1000).toFixed(1)), crossCheckSeconds: Number((crossCheckMs / 1000).toFixed(1)) },
      'integrity check: stored chain verified',
    );
  }

  /** Runs a check; false once it found a problem (raised as the alert). */
  private async guard(check: () => Promise<void>): Promise<boolean> {
    try {
      await check();
      return true;
    } catch (err) {
      return this.fault(err);
    }
  }

  private raise(height: number, problem: string): false {
    if (!this.alert || height < this.alert.height) {
      this.alert = { height, problem, since: this.alert?.since ?? Date.now() };
      this.opts.logger.error({ height, problem }, `No data integrity in the server's database: ${problem} (height ${height})`);
    }
    return false;
  }

  private fault(err: unknown): false {
    if (err instanceof Stopped) return false;
    if (err instanceof ChainFault) return this.raise(err.height, err.problem);
    if (err instanceof StoreDamage) return this.raise(err.height ?? this.pass?.height ?? 0, err.message);
    return this.raise(this.pass?.height ?? 0, `integrity check failed: ${(err as Error).message}`);
  }
}
