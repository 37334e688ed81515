import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeTxBatch, gossipHandlers, MAX_TX_BATCH } from '../../../src/node/gossip.js';
import { judgeMessage, type WeighedVerdict } from '../../../src/node/p2p/verdict.js';
import { encodeCanonical } from '../../../src/records/encoding.js';
import type { NodeMetrics } from '../../../src/node/metrics.js';
import { metricValue, parsePrometheus } from '../../../scripts/bench/prometheus.js';
import { EngineRig } from '../../support/engineRig.js';
import { idleNodeMetrics } from '../../support/metrics.js';

/**
 * The cost a gossiped transaction batch causes is charged to its sender, transaction by transaction, and
 * a transaction that fails against the state costs a decode, never a signature check.
 */
describe('gossiped transaction batches', () => {
  let rig: EngineRig;
  let metrics: NodeMetrics;
  beforeEach(() => {
    metrics = idleNodeMetrics();
  });
  afterEach(async () => {
    await rig?.destroy();
  });

  function handler() {
    return gossipHandlers({ ledger: rig.ledger, mempool: rig.mempool, engine: rig.engine, logger: pino({ level: 'silent' }), metrics }).tx;
  }

  /** Gossip refusals the node's metrics counted, by reason (nonzero only), and the admissions timed. */
  async function counted(): Promise<{ refused: Record<string, number>; timed: number }> {
    const samples = parsePrometheus((await metrics.exposition()).text);
    const refused: Record<string, number> = {};
    for (const s of samples) if (s.name === 'medledger_tx_rejected_total' && s.labels.source === 'gossip' && s.value > 0) refused[s.labels.reason!] = s.value;
    return { refused, timed: metricValue(samples, 'medledger_tx_admission_seconds_count', { source: 'gossip' }) };
  }

  /** The verdict and the sender's charge, as the host decides them from the validator's outcome. */
  async function judge(batch: Uint8Array): Promise<WeighedVerdict> {
    const { verdict, penalty } = await judgeMessage(handler(), batch, {
      topic: 'tx',
      peer: 'peer-x',
      maxMessageBytes: Infinity,
      log: pino({ level: 'silent' }),
    });
    return { verdict, penalty };
  }

  /** A transaction of a user nobody registered, with a broken signature. */
  function ghostTx(i: number): Uint8Array {
    const forged = rig.chain.sign(`ghost-${i}`, { type: 'revokeAccess', patient: `ghost-${i}`, body: { grantee: 'dr-x' } });
    const bytes = new Uint8Array(forged.bytes);
    bytes[bytes.length - 1]! ^= 1;
    return bytes;
  }

  it('1,000 transactions of unknown users with broken signatures: ignored, charged a fiftieth each, no signature checked', async () => {
    rig = await EngineRig.create();
    const batch = encodeTxBatch(Array.from({ length: MAX_TX_BATCH }, (_, i) => ({ tx: ghostTx(i) })));
    const result = await judge(batch);
    // Had the signatures been checked first, each would be a provable forgery (1 unit each, 1,000 in all).
    expect(result).toEqual({ verdict: 'ignore', penalty: MAX_TX_BATCH / 50 });
    expect(rig.mempool.size).toBe(0);
    expect(await counted()).toEqual({ refused: { UNKNOWN_ACTOR: MAX_TX_BATCH }, timed: MAX_TX_BATCH });
  });

  it('one forged transaction in a batch rejects the batch (1 unit) but the valid ones in it are admitted', async () => {
    rig = await EngineRig.create();
    const good = Array.from({ length: 5 }, (_, i) => rig.chain.registerPatient(`pat-${i}`, 'hosp-a'));
    const forged = new Uint8Array(rig.chain.registerPatient('pat-forged', 'hosp-a').bytes);
    forged[forged.length - 1]! ^= 1;
    const batch = encodeTxBatch([...good.slice(0, 2).map((t) => ({ tx: t.bytes })), { tx: forged }, ...good.slice(2).map((t) => ({ tx: t.bytes }))]);
    const result = await judge(batch);
    expect(result).toEqual({ verdict: 'reject', penalty: 1 });
    for (const t of good) expect(rig.mempool.has(t.idHex)).toBe(true);
    expect(rig.mempool.size).toBe(5);
    expect(await counted()).toEqual({ refused: { BAD_SIGNATURE: 1 }, timed: 6 });
  });

  it('a batch over the size limit is rejected before anything in it is decoded', async () => {
    rig = await EngineRig.create();
    const tx = rig.chain.registerPatient('pat-big', 'hosp-a');
    const batch = encodeCanonical({ txs: Array.from({ length: MAX_TX_BATCH + 1 }, () => ({ tx: tx.bytes })) });
    expect(await judge(batch)).toEqual({ verdict: 'reject', penalty: 1 });
    expect(rig.mempool.size).toBe(0);
  });
});
