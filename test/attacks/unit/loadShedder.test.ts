import { afterEach, describe, expect, it } from 'vitest';
import { LoadShedder } from '../../../src/node/loadShedder.js';
import { metricValue, parsePrometheus } from '../../../scripts/bench/prometheus.js';
import { isMedLedgerError } from '../../../src/records/errors.js';
import { idleNodeMetrics } from '../../support/metrics.js';

/** The node's load shedder refuses new work with UNAVAILABLE (HTTP 503) for each reason, and counts it. */
describe('load shedder', () => {
  let shedder: LoadShedder | undefined;
  afterEach(() => shedder?.stop());

  const refusal = (fn: () => void) => {
    try {
      fn();
      return null;
    } catch (err) {
      return isMedLedgerError(err) ? { code: err.code, message: err.message } : { code: 'OTHER', message: String(err) };
    }
  };

  it('refuses once the mempool would pass its high-water mark, for a batch as a whole', () => {
    let pending = 90;
    shedder = new LoadShedder({ mempoolHighWater: 100, rssHighWater: 1e12, loopDelayHighWaterMs: 1e6 }, () => pending);
    expect(refusal(() => shedder!.admit(10))).toBeNull();
    expect(refusal(() => shedder!.admit(11))).toEqual({ code: 'UNAVAILABLE', message: 'the node is busy (too many pending transactions): retry in 1 s' });
    pending = 100;
    expect(shedder.reason()).toBe('mempool');
    expect(shedder.status().shed.mempool).toBe(11);
  });

  it("counts each refusal in the node's metrics under its reason", async () => {
    const metrics = idleNodeMetrics();
    shedder = new LoadShedder({ mempoolHighWater: 100, rssHighWater: 1e12, loopDelayHighWaterMs: 1e6 }, () => 95, metrics);
    expect(refusal(() => shedder!.admit(6))?.code).toBe('UNAVAILABLE');
    expect(refusal(() => shedder!.admit(1))).toBeNull();
    const samples = parsePrometheus((await metrics.exposition()).text);
    expect(metricValue(samples, 'medledger_load_shed_total', { reason: 'mempool' })).toBe(6);
    expect(metricValue(samples, 'medledger_load_shed_total', { reason: 'memory' })).toBe(0);
    expect(metricValue(samples, 'medledger_load_shed_total', { reason: 'loop' })).toBe(0);
  });

  const hog = (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      // a synchronous hog: the loop cannot run timers meanwhile
    }
  };

  it('refuses while the event loop lags for a while with work queued, and takes work again once it recovers', async () => {
    shedder = new LoadShedder({ mempoolHighWater: 100, rssHighWater: 1e12, loopDelayHighWaterMs: 100 }, () => 50);
    await new Promise((r) => setTimeout(r, 600)); // one quiet sample
    expect(shedder.reason()).toBeNull();
    for (let i = 0; i < 6; i++) {
      hog(350);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(shedder.reason()).toBe('loop');
    expect(refusal(() => shedder!.admit())?.message).toContain('event loop busy');
    await new Promise((r) => setTimeout(r, 1_600));
    expect(shedder.reason()).toBeNull();
    expect(shedder.status().shed.loop).toBe(1);
  });

  it('a single stall, or a lagging loop with nothing queued, refuses nothing', async () => {
    shedder = new LoadShedder({ mempoolHighWater: 100, rssHighWater: 1e12, loopDelayHighWaterMs: 100 }, () => 50);
    await new Promise((r) => setTimeout(r, 600));
    hog(400);
    await new Promise((r) => setTimeout(r, 50));
    expect(shedder.reason()).toBeNull();
    shedder.stop();
    shedder = new LoadShedder({ mempoolHighWater: 100, rssHighWater: 1e12, loopDelayHighWaterMs: 100 }, () => 0);
    for (let i = 0; i < 6; i++) {
      hog(350);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(shedder.reason()).toBeNull();
  });

  it('refuses while memory is above its bound', async () => {
    shedder = new LoadShedder({ mempoolHighWater: 1e9, rssHighWater: 1, loopDelayHighWaterMs: 1e6 }, () => 0);
    await new Promise((r) => setTimeout(r, 600));
    expect(refusal(() => shedder!.admit())?.message).toContain('memory high');
    expect(shedder.status().shed.memory).toBe(1);
  });
});
