import { describe, expect, it } from 'vitest';
import { finishReports, JobAborted, prepareReports, type PreparedReports } from '../../../src/node/stats/jobWork.js';
import { utf8 } from '../../../src/records/crypto/bytes.js';
import { sha256 } from '../../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../../../src/records/crypto/keyAgreement.js';
import { createSigner, generateSigningKeyPair } from '../../../src/records/crypto/signature.js';
import { histogramMeasurement, measures, valueCount } from '../../../src/records/stats/measures.js';
import { computeStat, createVdaf, shard, vdafFor, type Prio3Vdaf } from '../../../src/records/stats/prio3.js';
import { shareContext } from '../../../src/records/stats/report.js';
import { sealShare } from '../../../src/records/stats/sealing.js';
import { signTx } from '../../../src/records/tx/codec.js';
import type { Tx } from '../../../src/records/tx/types.js';

/** One aggregator's preparation and finish, four aggregators in one process (no network). */
const N = 4;
const genesisHash = sha256(utf8('jobWork test'));
const aggregators = Array.from({ length: N }, () => generateEncryptionKeyPair());
const signing = generateSigningKeyPair();
const signer = createSigner(signing.secretKey);
const verifyKey = sha256(utf8('verify')).subarray(0, 16);
const honest = vdafFor('systolic', 'histogram', N);

function forging(): Prio3Vdaf {
  // Not one-hot: the report would count twice at 300 mmHg.
  const vdaf = createVdaf('systolic', 'histogram', N);
  const len = valueCount(measures.systolic);
  (vdaf.flp as unknown as { encode: () => bigint[] }).encode = () => Array.from({ length: len }, (_, i) => (i === len - 1 ? 2n : 0n));
  return vdaf;
}

async function reportTx(i: number, value: number, vdaf = honest): Promise<Tx<'statsReport'>> {
  const r = await shard(vdaf, histogramMeasurement(measures.systolic, value));
  const place = { patient: 'pat-w', record: `rec-${String(i).padStart(16, '0')}`, version: 1, measure: 'systolic' as const, batch: '2026-12' };
  const part = {
    nonce: r.nonce,
    publicShare: r.publicShare,
    shares: r.inputShares.map((s, h) => sealShare(aggregators[h]!.publicKey, shareContext(genesisHash, place, 'histogram', r.nonce, h), s)),
  };
  return signTx(
    {
      v: 1,
      type: 'statsReport',
      actor: 'pat-w',
      key: signer.publicKey,
      via: 'hosp-a',
      nonce: i + 1,
      time: 0,
      patient: 'pat-w',
      record: place.record,
      body: { version: 1, measure: 'systolic', batch: '2026-12', reports: { histogram: part } },
    },
    signer,
    genesisHash,
  ) as Tx<'statsReport'>;
}

async function run(txs: Tx<'statsReport'>[]) {
  const prepared = [];
  for (let h = 0; h < N; h++)
    prepared.push(await prepareReports(txs, { vdaf: honest, genesisHash, aggregator: aggregators[h]!, selfIndex: h, instance: 'histogram', verifyKey }));
  const lists = prepared.map((p) => p.shares);
  return Promise.all(prepared.map((p) => finishReports(honest, p, lists)));
}

describe('an aggregator’s work on a job', () => {
  it('ten valid reports: every aggregator agrees and the shares give the exact mean', async () => {
    const values = [100, 110, 120, 130, 140, 150, 160, 170, 180, 190];
    const outcomes = await run(await Promise.all(values.map((v, i) => reportTx(i, v))));
    for (const o of outcomes) expect(o).toMatchObject({ used: 10, dropped: 0, digest: outcomes[0]!.digest });
    const mean = computeStat(
      'systolic',
      'mean',
      outcomes.map((o) => o.share),
      10,
    );
    expect(mean).toMatchObject({ count: 10, mean: 145 });
  });

  it('fewer than ten valid after the proof: the share is withheld (empty), the counts still agree', async () => {
    const txs = [...(await Promise.all(Array.from({ length: 9 }, (_, i) => reportTx(i, 120)))), await reportTx(9, 20, forging())];
    const outcomes = await run(txs);
    for (const o of outcomes) {
      expect(o).toMatchObject({ used: 9, dropped: 1, digest: outcomes[0]!.digest });
      expect(o.share).toHaveLength(0);
    }
  });

  it('a hospital that marks reports invalid cannot choose the survivors: beyond 10% dropped, every honest node withholds', async () => {
    const txs = await Promise.all(Array.from({ length: 20 }, (_, i) => reportTx(i, 100 + i)));
    const prepared: PreparedReports[] = [];
    for (let h = 0; h < N; h++)
      prepared.push(await prepareReports(txs, { vdaf: honest, genesisHash, aggregator: aggregators[h]!, selfIndex: h, instance: 'histogram', verifyKey }));
    // Hospital d (byzantine) sends a list keeping only the first `kept` reports.
    const finish = (kept: number) => {
      const lists = prepared.map((p) => p.shares);
      lists[3] = lists[3]!.map((s, r) => (r < kept ? s : undefined));
      return Promise.all([0, 1, 2].map((h) => finishReports(honest, prepared[h]!, lists)));
    };
    for (const o of await finish(10)) {
      expect(o).toMatchObject({ used: 10, dropped: 10 });
      expect(o.share).toHaveLength(0);
    }
    // 3 of 20 dropped (15%): withheld; 2 of 20 (10%): released.
    for (const o of await finish(17)) expect(o.share).toHaveLength(0);
    const released = await finish(18);
    for (const o of released) expect(o).toMatchObject({ used: 18, dropped: 2 });
    expect(released[0]!.share.length).toBeGreaterThan(0);
  });

  it('a share sealed for another aggregator is invalid here; work stops when aborted', async () => {
    const txs = await Promise.all(Array.from({ length: 20 }, (_, i) => reportTx(i, 120)));
    const wrongKey = await prepareReports(txs.slice(0, 2), {
      vdaf: honest,
      genesisHash,
      aggregator: aggregators[1]!,
      selfIndex: 0,
      instance: 'histogram',
      verifyKey,
    });
    expect(wrongKey).toMatchObject({ invalid: 2, states: [undefined, undefined] });
    await expect(
      prepareReports(txs, { vdaf: honest, genesisHash, aggregator: aggregators[0]!, selfIndex: 0, instance: 'histogram', verifyKey, aborted: () => true }),
    ).rejects.toBeInstanceOf(JobAborted);
  });
});
