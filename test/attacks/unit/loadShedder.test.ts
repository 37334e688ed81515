import { afterEach, describe, expect, it } from 'vitest';
import { LoadShedder } from '../../../src/node/loadShedder.js';
import { isMedLedgerError } from '../../../src/records/errors.js';

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

  it('refuses while the event loop lags, and takes work again once it recovers', async () => {
    shedder = new LoadShedder({ mempoolHighWater: 1e9, rssHighWater: 1e12, loopDelayHighWaterMs: 100 }, () => 0);
    await new Promise((r) => setTimeout(r, 600)); // one quiet sample
    expect(shedder.reason()).toBeNull();
    const busyUntil = Date.now() + 400;
    while (Date.now() < busyUntil) {
      // a synchronous hog: the loop cannot run timers meanwhile
    }
    // The sample due during the hog runs right after it and sees the lag; the state holds for one window.
    await new Promise((r) => setTimeout(r, 50));
    expect(shedder.reason()).toBe('loop');
    expect(refusal(() => shedder!.admit())?.message).toContain('event loop busy');
    await new Promise((r) => setTimeout(r, 1_100));
    expect(shedder.reason()).toBeNull();
    expect(shedder.status().shed.loop).toBe(1);
  });

  it('refuses while memory is above its bound', async () => {
    shedder = new LoadShedder({ mempoolHighWater: 1e9, rssHighWater: 1, loopDelayHighWaterMs: 1e6 }, () => 0);
    await new Promise((r) => setTimeout(r, 600));
    expect(refusal(() => shedder!.admit())?.message).toContain('memory high');
    expect(shedder.status().shed.memory).toBe(1);
  });
});
