import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Ledger } from '../ledger.js';
import type { Pass } from './chainPass.js';
import type { CrossCheck } from './indexDigests.js';
import type { MonitorOptions } from './monitor.js';

/** The monitor reads the whole history once per pass: keep it out of LevelDB's block cache. */
export const COLD = { cold: true } as const;

/** Thrown inside long scans when the monitor stops, so that it lets go of the store promptly. */
export class Stopped extends Error {}

/** Passes and scans use a share of wall time: they yield to the event loop between steps and sleep as needed. */
export class Pacer {
  stopped = false;
  /** Share of wall time the index and state scans may use (background passes are throttled). */
  scanDuty = 1;
  private sliceStart = performance.now();

  constructor(private readonly opts: Pick<MonitorOptions, 'busy' | 'backgroundDuty'>) {}

  /** Yields between blocks, and sleeps as needed so that a pass uses about `duty` of wall time. */
  async throttle(requested: number): Promise<void> {
    const duty = this.opts.busy() ? Math.min(requested, this.opts.backgroundDuty) : requested;
    const worked = performance.now() - this.sliceStart;
    if (duty >= 1 || worked < 20) await yieldToLoop();
    else await sleep((worked * (1 - duty)) / duty);
    if (duty >= 1 || worked >= 20) this.sliceStart = performance.now();
  }

  /** Between entries of long scans: stop promptly, and leave the event loop to consensus. */
  async pace(count: number): Promise<void> {
    if (this.stopped) throw new Stopped();
    if (count % 5_000 === 0) await this.throttle(this.scanDuty);
  }

  /** A store scan read a thousand entries at a time (far fewer awaits than entry by entry), paced between batches. */
  async *batches<T>(scan: AsyncIterable<T[]>): AsyncGenerator<T[]> {
    if (this.stopped) throw new Stopped();
    for await (const batch of scan) {
      yield batch;
      await this.throttle(this.scanDuty);
      if (this.stopped) throw new Stopped();
    }
  }
}

/** What the schedule runs; each returns false once a problem was raised. */
export interface ScheduledWork {
  newPass(): Pass;
  fullPass(pass: Pass, duty: number): Promise<boolean>;
  follow(pass: Pass): Promise<boolean>;
  crossCheck(pass: Pass): Promise<boolean>;
  /** Logs the figures of a complete pass. */
  passDone(): void;
}

/**
 * When what runs: a pass from genesis at start (startup duty), then following new blocks in batches, the
 * index and state cross-checks every `crossCheckIntervalMs`, and a new pass every `rescanIntervalMs` (both
 * stretched on long chains, to at least 20 and 10 times what the last one took), at the background duty.
 */
export class Schedule {
  private wakeUp: (() => void) | null = null;
  private lastFollow = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: MonitorOptions,
    private readonly pacer: Pacer,
    private readonly crossChecks: CrossCheck,
    private readonly work: ScheduledWork,
  ) {}

  /** A block was committed, or the monitor stops: stop idling. */
  wake(): void {
    this.wakeUp?.();
  }

  async loop(): Promise<void> {
    let duty = this.opts.startupDuty;
    while (!this.pacer.stopped) {
      const pass = this.work.newPass();
      this.opts.logger.info({ head: this.ledger.height }, 'integrity check: verifying the stored chain from genesis');
      this.pacer.scanDuty = duty;
      let healthy = await this.work.fullPass(pass, duty);
      if (healthy && !this.pacer.stopped) this.work.passDone();
      duty = this.opts.backgroundDuty;
      this.pacer.scanDuty = duty;
      // Follow new blocks on this pass until the next full rescan is due.
      // On a long chain the intervals stretch, so that the background checks stay a small share of the CPU.
      const rescanMs = Math.max(this.opts.rescanIntervalMs, 10 * (Date.now() - pass.startedAt));
      while (!this.pacer.stopped && Date.now() - pass.startedAt < rescanMs) {
        const crossMs = Math.max(this.opts.crossCheckIntervalMs, 20 * this.crossChecks.took);
        if (healthy && pass.height < this.ledger.height) {
          // A syncing node needs its CPU for sync; new blocks are checked once it is done, in batches.
          const wait = this.opts.busy() ? this.opts.followDelayMs : this.lastFollow + this.opts.followDelayMs - Date.now();
          if (wait > 0) {
            await sleep(wait);
            continue;
          }
          this.lastFollow = Date.now();
          healthy = await this.work.follow(pass);
          continue;
        }
        if (healthy && Date.now() - this.crossChecks.lastRun >= crossMs) {
          healthy = await this.work.crossCheck(pass);
          continue;
        }
        const untilRescan = rescanMs - (Date.now() - pass.startedAt);
        const untilCross = healthy ? crossMs - (Date.now() - this.crossChecks.lastRun) : untilRescan;
        await this.idle(Math.max(10, Math.min(untilRescan, untilCross)));
      }
    }
  }

  /** Waits for a commit (or `stop`) or the timeout, whichever comes first. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.wakeUp = done;
    });
  }
}
