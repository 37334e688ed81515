import { readFileSync } from 'node:fs';
import { Prio3Histogram, Prio3SumVec } from '@divviup/prio3';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../../src/records/crypto/bytes.js';
import {
  aggregate,
  combinePrepShares,
  decodeAggregateShare,
  decodeInputShare,
  decodePrepShare,
  decodePublicShare,
  prepareInit,
  prepareNext,
  shard,
  unshardSums,
  type Prio3Vdaf,
} from '../../../src/records/stats/prio3.js';

/**
 * The draft-irtf-cfrg-vdaf-08 test vectors shipped with divviup-ts (test/vectors/prio3/README.md): our
 * byte-level flow and decoders must reproduce every intermediate value with the vectors' fixed nonce and rand.
 */
interface Vector {
  shares: number;
  verify_key: string;
  length: number;
  chunk_length: number;
  bits?: number;
  agg_result: number[];
  agg_shares: string[];
  prep: {
    measurement: unknown;
    nonce: string;
    rand: string;
    public_share: string;
    input_shares: string[];
    prep_shares: string[][];
    prep_messages: string[];
    out_shares: string[][];
  }[];
}

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../vectors/prio3/${name}.json`, import.meta.url), 'utf8')) as Vector;

const cases: [string, (v: Vector) => Prio3Vdaf][] = [
  ['Prio3SumVec_0', (v) => new Prio3SumVec({ shares: v.shares, length: v.length, bits: v.bits!, chunkLength: v.chunk_length }) as unknown as Prio3Vdaf],
  ['Prio3SumVec_1', (v) => new Prio3SumVec({ shares: v.shares, length: v.length, bits: v.bits!, chunkLength: v.chunk_length }) as unknown as Prio3Vdaf],
  ['Prio3Histogram_0', (v) => new Prio3Histogram({ shares: v.shares, length: v.length, chunkLength: v.chunk_length }) as unknown as Prio3Vdaf],
  ['Prio3Histogram_1', (v) => new Prio3Histogram({ shares: v.shares, length: v.length, chunkLength: v.chunk_length }) as unknown as Prio3Vdaf],
];

describe('Prio3 vdaf-08 test vectors through our byte-level wrappers', () => {
  for (const [name, make] of cases) {
    it(name, async () => {
      const v = load(name);
      const vdaf = make(v);
      const verifyKey = fromHex(v.verify_key);
      const outputs: Uint8Array[][] = Array.from({ length: v.shares }, () => []);
      for (const p of v.prep) {
        const report = await shard(vdaf, p.measurement, { nonce: fromHex(p.nonce), rand: fromHex(p.rand) });
        expect(toHex(report.publicShare)).toBe(p.public_share);
        expect(report.inputShares.map(toHex)).toEqual(p.input_shares);

        // Decoders: public share and every input share round-trip through the package's encoders.
        expect(toHex(vdaf.encodePublicShare(decodePublicShare(vdaf, fromHex(p.public_share))))).toBe(p.public_share);
        for (let i = 0; i < v.shares; i++) {
          const decoded = await decodeInputShare(vdaf, i, fromHex(p.input_shares[i]!));
          expect(toHex(vdaf.encodeInputShare(decoded))).toBe(p.input_shares[i]);
        }

        const prepped = [];
        for (let i = 0; i < v.shares; i++)
          prepped.push(await prepareInit(vdaf, verifyKey, i, report.nonce, fromHex(p.public_share), fromHex(p.input_shares[i]!)));
        expect(prepped.map((x) => toHex(x.prepShare))).toEqual(p.prep_shares[0]);
        for (const s of p.prep_shares[0]!) expect(toHex(vdaf.encodePreparationShare(decodePrepShare(vdaf, fromHex(s))))).toBe(s);

        const message = await combinePrepShares(
          vdaf,
          prepped.map((x) => x.prepShare),
        );
        expect(toHex(message)).toBe(p.prep_messages[0]);
        for (let i = 0; i < v.shares; i++) {
          const out = prepareNext(vdaf, prepped[i]!.prepState, message);
          expect(toHex(out)).toBe(p.out_shares[i]!.join(''));
          outputs[i]!.push(out);
        }
      }
      const aggShares = outputs.map((outs) => aggregate(vdaf, outs));
      expect(aggShares.map(toHex)).toEqual(v.agg_shares);
      for (const s of v.agg_shares) expect(toHex(vdaf.encodeAggregatorShare(decodeAggregateShare(vdaf, fromHex(s))))).toBe(s);
      expect(unshardSums(vdaf, aggShares).map(Number)).toEqual(v.agg_result);
    });
  }
});
