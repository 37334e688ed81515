import { describe, expect, it } from 'vitest';
import { encodeBlock, genesisBlock, headerHash, signHeader, type Block } from '../../src/consensus/block.js';
import { buildBlock } from '../../src/consensus/blockExecution.js';
import { ChainChecker, ChainFault } from '../../src/consensus/chainCheck.js';
import { ReplicaComparison, type ReplicaBlock } from '../../src/consensus/replicaCheck.js';
import { certificateFromVotes, signVote, type Certificate } from '../../src/consensus/votes.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { ChainBuilder } from '../support/chainBuilder.js';

/**
 * The lockstep re-verification behind `medledger verify`, fed with blocks of a real certified chain as
 * replicas would serve them: identical replicas agree; an altered byte is named with its node and height;
 * a missing certificate is named; two validly signed, certified blocks at one height are equivocation,
 * with the validators who signed both.
 */
const chain = ChainBuilder.create();
chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-b', 'doc-1', 'doctor')]);
const rec = chain.createRecord('pat-1', 'pat-1', 'temperature 37.0');
chain.finalize([rec.tx]);
chain.finalize([chain.readRecord('pat-1', 'pat-1', rec.record), chain.readRecord('doc-1', 'pat-1', rec.record), chain.registerPatient('pat-2', 'hosp-c')]);
chain.finalize([]);
chain.finalize([chain.registerPatient('pat-3', 'hosp-d')]);

type Served = ReplicaBlock[];
const honest = (): Served => [
  { block: encodeBlock(genesisBlock(chain.genesis)) },
  ...chain.blocks.map((b) => ({ block: encodeBlock(b.executed.block), cert: encodeCanonical(b.cert) })),
];

function compare(replicas: Record<string, Served>): ReturnType<ReplicaComparison['result']> {
  const names = Object.keys(replicas);
  const c = new ReplicaComparison(chain.genesis, names);
  const top = Math.max(...Object.values(replicas).map((r) => r.length));
  for (let h = 0; h < top; h++) {
    const entries = new Map<string, ReplicaBlock>();
    for (const n of names) if (replicas[n]![h]) entries.set(n, replicas[n]![h]!);
    c.feed(entries);
  }
  return c.result();
}

/** A second block at `height` (same parent, one ms later), signed by the round's proposer and certified by `voters`. */
function forgedAt(height: number, voters: number[]): { block: Block; cert: Certificate } {
  const real = chain.blocks[height - 1]!.executed.block;
  const header = { ...real.header, time: real.header.time + 1 };
  const block: Block = { ...real, header, sig: signHeader(header, chain.validators[header.proposer]!.signer, chain.genesis.hash) };
  const hash = headerHash(header);
  const votes = voters.map((v) =>
    signVote(
      { type: 'precommit', network: chain.genesis.file.network, height, round: header.round, validator: v, block: hash },
      chain.validators[v]!.signer,
      chain.genesis.hash,
    ),
  );
  return { block, cert: certificateFromVotes(votes) };
}

describe('re-verifying replicas in lockstep', () => {
  it('identical replicas verify and agree, each with its certified head', () => {
    const r = compare({ a: honest(), b: honest(), c: honest(), d: honest().slice(0, 4) });
    expect(r.divergence).toBeUndefined();
    expect(r.equivocations).toEqual([]);
    expect(r.replicas.map((x) => [x.name, x.verifiedHeight, x.fault])).toEqual([
      ['a', 5, undefined],
      ['b', 5, undefined],
      ['c', 5, undefined],
      ['d', 3, undefined],
    ]);
    expect(r.replicas[0]!.head).toMatchObject({
      height: 5,
      hash: chain.blocks[4]!.executed.hashHex,
      signers: expect.arrayContaining([expect.stringMatching(/^hosp-/)]),
    });
  });

  it('names the node and height of one altered byte, and the transaction it touched', () => {
    const d = honest();
    const bytes = Uint8Array.from(d[3]!.block!);
    const tx = chain.blocks[2]!.executed.block.txs[1]!;
    const at = Buffer.from(bytes).indexOf(Buffer.from(tx)) + tx.length - 10; // inside that transaction's signature
    bytes[at]! ^= 0x01;
    d[3] = { ...d[3], block: bytes };
    const r = compare({ a: honest(), b: honest(), c: honest(), d });
    expect(r.replicas.find((x) => x.name === 'd')).toMatchObject({
      verifiedHeight: 2,
      fault: { height: 3, problem: expect.stringMatching(/transaction root|signature/) },
    });
    expect(r.divergence).toMatchObject({ height: 3, nodes: ['d'] });
    expect(r.divergence!.detail).toMatch(/transaction 1 \([0-9a-f]{12}…\) has different bytes/);
    expect(r.equivocations).toEqual([]);
    for (const n of ['a', 'b', 'c']) expect(r.replicas.find((x) => x.name === n)).toMatchObject({ verifiedHeight: 5 });
  });

  it('names a replica that serves a block without its certificate, or a certificate of another block', () => {
    const b = honest();
    delete b[2]!.cert;
    const c = honest();
    c[4] = { ...c[4], cert: c[3]!.cert! };
    const r = compare({ a: honest(), b, c });
    expect(r.replicas.find((x) => x.name === 'b')).toMatchObject({
      verifiedHeight: 1,
      fault: { height: 2, problem: expect.stringMatching(/no commit certificate/) },
    });
    expect(r.replicas.find((x) => x.name === 'c')).toMatchObject({ verifiedHeight: 3, fault: { height: 4, problem: expect.stringMatching(/certif/) } });
    expect(r.divergence).toBeUndefined();
  });

  it('two validly signed, certified blocks at one height are equivocation naming who signed both', () => {
    const forged = forgedAt(4, [0, 1, 2]);
    const d = honest().slice(0, 4);
    d.push({ block: encodeBlock(forged.block), cert: encodeCanonical(forged.cert) });
    const r = compare({ a: honest(), b: honest(), d });
    expect(r.divergence).toMatchObject({ height: 4, nodes: ['d'] });
    expect(r.divergence!.detail).toMatch(/header differs in time/);
    expect(r.equivocations).toHaveLength(1);
    const e = r.equivocations[0]!;
    const realSigners = chain.blocks[3]!.cert.sigs.map((s) => chain.validators[s.validator]!.hospital);
    const both = ['hosp-a', 'hosp-b', 'hosp-c'].filter((h) => realSigners.includes(h));
    expect(e).toMatchObject({ height: 4, kind: 'certificates', source: 'chains', verified: true, validators: both });
    expect(e.blocks.map((b) => b.nodes)).toEqual([['a', 'b'], ['d']]);
    expect(e.detail).toMatch(/proposer hosp-[a-d] signed 2 different blocks/);
    expect(r.replicas.find((x) => x.name === 'd')).toMatchObject({ verifiedHeight: 4 });
    expect(r.replicas.find((x) => x.name === 'd')!.fault).toBeUndefined();
  });

  it('a fork that goes on is reported once, at the fork, with the rest counted', () => {
    const forged = forgedAt(4, [0, 1, 3]);
    const parent = { header: forged.block.header, hash: headerHash(forged.block.header) };
    const h5 = chain.blocks[4]!.executed.block.header;
    const next = buildBlock({
      genesis: chain.genesis,
      parent,
      lastCommit: forged.cert,
      state: chain.state,
      candidates: [],
      round: 0,
      time: h5.time,
      signer: chain.validators[h5.proposer]!.signer,
    }).executed;
    const votes = [1, 2, 3].map((v) =>
      signVote(
        { type: 'precommit', network: chain.genesis.file.network, height: 5, round: 0, validator: v, block: next.hash },
        chain.validators[v]!.signer,
        chain.genesis.hash,
      ),
    );
    const d = honest().slice(0, 4);
    d.push(
      { block: encodeBlock(forged.block), cert: encodeCanonical(forged.cert) },
      { block: encodeBlock(next.block), cert: encodeCanonical(certificateFromVotes(votes)) },
    );
    const r = compare({ a: honest(), b: honest(), d });
    expect(r.equivocations.map((e) => e.height)).toEqual([4]);
    expect(r.moreEquivocations).toBe(1);
    expect(r.replicas.map((x) => x.verifiedHeight)).toEqual([5, 5, 5]);
    expect(r.divergence).toMatchObject({ height: 4, nodes: ['d'] });
  });

  it('a block 0 of another genesis is named at height 0', () => {
    const other = ChainBuilder.create();
    const x = honest();
    x[0] = { block: encodeBlock(genesisBlock(other.genesis)) };
    const r = compare({ a: honest(), x });
    expect(r.replicas.find((s) => s.name === 'x')).toMatchObject({ verifiedHeight: -1, fault: { height: 0 } });
    expect(r.divergence).toMatchObject({ height: 0, nodes: ['x'] });
  });

  it('ChainChecker forks carry independent state', () => {
    const checker = new ChainChecker(chain.genesis);
    checker.next(chain.blocks[0]!.executed.block, chain.blocks[0]!.cert);
    const fork = checker.fork();
    checker.next(chain.blocks[1]!.executed.block, chain.blocks[1]!.cert);
    expect(checker.height).toBe(2);
    expect(fork.height).toBe(1);
    expect(fork.state.get('records', rec.record)).toBeUndefined();
    expect(checker.state.get('records', rec.record)).toBeDefined();
    expect(() => fork.next(chain.blocks[2]!.executed.block, chain.blocks[2]!.cert)).toThrow(ChainFault);
  });
});
