/**
 * Time to answer a statistics query over N reports (issue 13), through the node-side functions in one process
 * with 4 aggregators: each aggregator's preparation (open its sealed share, prepareInit), the stats-prep wire
 * form of its list (encoded frames and their checked decoding), and the finish (combine every report's four
 * preparation shares, prepareNext, sum) — then the querier's computeStat. In a network the four aggregators
 * run in parallel on their own machines, so the per-node figure (one preparation + decoding three peers'
 * lists + one finish) is what a query waits for, besides block times and the transfer.
 *
 *   npx tsx scripts/bench-stats.ts [--reports 1000,10000]
 */
import '../src/polyfill.js';
import { parseArgs } from 'node:util';
import { sha256 } from '../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../src/records/crypto/keyAgreement.js';
import { createSigner, generateSigningKeyPair } from '../src/records/crypto/signature.js';
import { utf8 } from '../src/records/crypto/bytes.js';
import { measures, histogramMeasurement, type StatsInstance } from '../src/records/stats/measures.js';
import { computeStat, prepShareLength, shard, vdafFor } from '../src/records/stats/prio3.js';
import { shareContext } from '../src/records/stats/report.js';
import { sealShare } from '../src/records/stats/sealing.js';
import { signTx } from '../src/records/tx/codec.js';
import type { Tx, TxBody } from '../src/records/tx/types.js';
import { finishReports, prepareReports } from '../src/node/stats/jobWork.js';
import { encodePrepResponse, readPrepResponse } from '../src/node/stats/prepProtocol.js';

const { values } = parseArgs({ options: { reports: { type: 'string', default: '1000,10000' } } });
const sizes = values.reports.split(',').map(Number);
const instance: StatsInstance = 'histogram';
const N = 4;
const genesisHash = sha256(utf8('bench-stats genesis'));
const aggregators = Array.from({ length: N }, () => generateEncryptionKeyPair());
const patient = generateSigningKeyPair();
const signer = createSigner(patient.secretKey);
const batch = '2026-12';
const m = measures.systolic;

/** A statsReport transaction whose report is real and sealed to the four aggregators. */
async function report(i: number, value: number): Promise<Tx<'statsReport'>> {
  const vdaf = vdafFor('systolic', instance, N);
  const sharded = await shard(vdaf, histogramMeasurement(m, value));
  const place = { patient: 'pat-bench', record: `rec-${String(i).padStart(16, '0')}`, version: 1, measure: 'systolic' as const, batch };
  const part = {
    nonce: sharded.nonce,
    publicShare: sharded.publicShare,
    shares: sharded.inputShares.map((s, h) => sealShare(aggregators[h]!.publicKey, shareContext(genesisHash, place, instance, sharded.nonce, h), s)),
  };
  const body: TxBody<'statsReport'> = { version: 1, measure: 'systolic', batch, reports: { histogram: part } };
  return signTx(
    {
      v: 1,
      type: 'statsReport',
      actor: 'pat-bench',
      key: signer.publicKey,
      via: 'hosp-a',
      nonce: i + 1,
      time: 0,
      patient: 'pat-bench',
      record: place.record,
      body,
    },
    signer,
    genesisHash,
  ) as Tx<'statsReport'>;
}

const ms = (t: number) => Math.round(performance.now() - t);
for (const n of sizes) {
  const values = Array.from({ length: n }, (_, i) => 90 + ((i * 37) % 91));
  let t = performance.now();
  const txs: Tx<'statsReport'>[] = [];
  for (let i = 0; i < n; i++) txs.push(await report(i, values[i]!));
  const clientMs = ms(t);
  const vdaf = vdafFor('systolic', instance, N);
  const verifyKey = sha256(utf8('bench verify key')).subarray(0, vdaf.verifyKeySize);
  const prepared = [];
  const prepareMs: number[] = [];
  for (let h = 0; h < N; h++) {
    t = performance.now();
    prepared.push(await prepareReports(txs, { vdaf, genesisHash, aggregator: aggregators[h]!, selfIndex: h, instance, verifyKey }));
    prepareMs.push(ms(t));
  }
  // The wire: aggregator 0 reads the three peers' lists as frames.
  t = performance.now();
  let wireBytes = 0;
  const lists = [];
  for (let h = 0; h < N; h++) {
    const frames = [...encodePrepResponse(prepared[h]!.shares)];
    wireBytes += frames.reduce((a, f) => a + f.length, 0);
    lists.push(
      (await readPrepResponse(
        (async function* () {
          yield* frames;
        })(),
        { count: n, shareLength: prepShareLength(vdaf) },
      ))!,
    );
  }
  const wireMs = ms(t);
  const finishMs: number[] = [];
  const outcomes = [];
  for (let h = 0; h < N; h++) {
    t = performance.now();
    outcomes.push(await finishReports(vdaf, prepared[h]!, lists));
    finishMs.push(ms(t));
  }
  t = performance.now();
  const stat = computeStat(
    'systolic',
    'mean',
    outcomes.map((o) => o.share),
    outcomes[0]!.used,
  );
  const unshardMs = ms(t);
  const expectedMean = values.reduce((a, v) => a + v, 0) / n;
  const ok = stat.stat === 'mean' && Math.abs(stat.mean - expectedMean) < 1e-9; // lo + Σx/n vs Σv/n: rounding only
  const perNode = Math.max(...prepareMs) + Math.round((wireMs * (N - 1)) / N) + Math.max(...finishMs);
  console.log(
    JSON.stringify({
      reports: n,
      instance,
      clientShardAndSealMs: clientMs,
      prepareMsPerAggregator: prepareMs,
      wireMsForFourLists: wireMs,
      wireBytesPerList: Math.round(wireBytes / N),
      finishMsPerAggregator: finishMs,
      unshardMs,
      perNodeMs: perNode,
      used: outcomes[0]!.used,
      dropped: outcomes[0]!.dropped,
      exact: ok,
      rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
    }),
  );
}
