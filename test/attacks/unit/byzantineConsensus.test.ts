import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONFLICTING_PER_SLOT, MAX_ROUNDS_AHEAD } from '../../../src/consensus/voteBook.js';
import { verifyCertificate } from '../../../src/consensus/votes.js';
import { LedgerStore } from '../../../src/node/store/ledgerStore.js';
import { toHex } from '../../../src/records/crypto/bytes.js';
import { EngineRig } from '../../support/engineRig.js';

/**
 * A byzantine validator (index 1, the proposer of height 1 round 0, or index 3) against one honest
 * validator's real engine and LevelDB ledger (index 0). Each case is an attack that worked before.
 */
describe('consensus engine against a byzantine validator', () => {
  let rig: EngineRig;
  afterEach(async () => {
    await rig?.destroy();
  });

  /** A patient of the byzantine hospital and a record whose payload matches its hash but is garbage. */
  function poisonedRecord(r: EngineRig, payload: Uint8Array) {
    const reg = r.chain.registerPatient('pat-evil', 'hosp-b');
    const create = r.chain.sign(
      'pat-evil',
      { type: 'createRecord', patient: 'pat-evil', record: r.chain.recordId(), via: 'hosp-b', body: { recipients: ['pat-evil'] } },
      payload,
    );
    return [reg, create];
  }

  it('a block whose payload matches its hash but cannot be stored is invalid: no prevote, no commit, no halt', async () => {
    rig = await EngineRig.create();
    const garbage = new TextEncoder().encode('not a record payload at all');
    const txs = poisonedRecord(rig, garbage);
    const block = rig.block(1, txs);
    const proposal = rig.proposal(1, block, [null, garbage]);
    expect(rig.engine.assess(proposal)).toBe('invalid');

    // Even when the byzantine proposer and a colluder claim a quorum, this node neither prevotes the block
    // nor commits it: it prevotes nil, and the height stays open for an honest proposer.
    rig.engine.onProposal(proposal);
    await rig.settle();
    const ownPrevote = rig.published.votes.find((v) => v.type === 'prevote' && v.validator === 0);
    expect(ownPrevote?.block).toBeNull();
    for (const v of [1, 3]) rig.engine.onVote(rig.vote(v, 'precommit', block.hash));
    await rig.settle();
    expect(rig.ledger.height).toBe(0);
    expect(rig.engine.halted).toBeNull();
  });

  it('the same block with a well-formed payload is valid and commits with a verified certificate', async () => {
    rig = await EngineRig.create();
    const created = (() => {
      const reg = rig.chain.registerPatient('pat-good', 'hosp-b');
      rig.chain.finalize([reg]); // moves the builder's state so that recipientsFor works
      return reg;
    })();
    // The builder finalized its own copy; build the honest block from the same two transactions here.
    const rec = rig.chain.createRecord('pat-good', 'pat-good', 'BP 120/80');
    const block = rig.block(1, [created, rec.tx]);
    const proposal = rig.proposal(1, block, [null, rec.payload]);
    expect(rig.engine.assess(proposal)).toBe('valid');
    rig.engine.onProposal(proposal);
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'prevote', block.hash));
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'precommit', block.hash));
    await rig.until(() => rig.ledger.height === 1);
    const cert = (await rig.store.getCertificate(1))!;
    expect(cert.sigs.map((s) => s.validator)).toEqual([0, 1, 2]);
    expect(toHex((await rig.store.getPayload(rec.tx.idHex))!.payload)).toBe(toHex(rec.payload));
  });

  it('after a crash, the certificate holds the signatures the tally counted (never a sub-quorum one)', async () => {
    rig = await EngineRig.create();
    const block = rig.block(1, []);
    // Precommits of 1 and 2 arrive before the proposal (this node is slow); then the proposal: it prevotes,
    // which persists its round state with those precommits in the tally.
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'precommit', block.hash));
    rig.engine.onProposal(rig.proposal(1, block, []));
    await rig.until(() => rig.published.votes.some((v) => v.validator === 0 && v.type === 'prevote'));
    await rig.settle();
    await rig.crash();

    await rig.open();
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'prevote', block.hash));
    await rig.until(() => rig.ledger.height === 1);
    const cert = (await rig.store.getCertificate(1))!;
    expect(cert.sigs.length).toBeGreaterThanOrEqual(3);
    expect(() => verifyCertificate(cert, rig.chain.genesis.validators, rig.chain.genesis.file.network, { height: 1, block: block.hash })).not.toThrow();
  });

  it('a decision without a quorum of signatures in hand is not committed: the node fetches the block instead', async () => {
    rig = await EngineRig.create();
    const block = rig.block(1, []);
    rig.engine.onProposal(rig.proposal(1, block, []));
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'prevote', block.hash));
    await rig.until(() => rig.published.votes.some((v) => v.validator === 0 && v.type === 'precommit'));
    // Simulate signatures lost from the write-ahead state: the tally says 1 and 2 precommitted, the book has none.
    await rig.settle();
    const saved = (await rig.store.loadRoundState())!;
    saved.rs.rounds['0']!.votes.precommit['1'] = toHex(block.hash);
    saved.rs.rounds['0']!.votes.precommit['2'] = toHex(block.hash);
    await rig.crash();
    const store = await LedgerStore.open(`${rig.dir}/ledger`);
    await store.saveRoundState(saved);
    await store.close();
    await rig.open();
    // Any message makes the machine re-run its rules: the restored tally already decides.
    rig.engine.onVote(rig.vote(3, 'prevote', null));
    await rig.settle();
    expect(rig.ledger.height).toBe(0);
    expect(await rig.store.getCertificate(1)).toBeUndefined();
  });

  it('a flood of 8,000 distinct signed votes keeps one evidence record and a bounded write-ahead state', async () => {
    rig = await EngineRig.create();
    // From validator 3: 2,000 conflicting prevotes in round 0, then two conflicting precommits in each of
    // 3,000 rounds.
    const value = (i: number) => new Uint8Array(32).map((_, j) => (j < 4 ? (i >> (8 * j)) & 0xff : 9));
    for (let i = 0; i < 2_000; i++) rig.engine.onVote(rig.vote(3, 'prevote', value(i)));
    for (let r = 0; r < 3_000; r++) {
      rig.engine.onVote(rig.vote(3, 'precommit', value(1), r));
      rig.engine.onVote(rig.vote(3, 'precommit', value(2), r));
    }
    await rig.settle();
    // An honest proposal makes this node vote, which persists its round state.
    const block = rig.block(1, []);
    rig.engine.onProposal(rig.proposal(1, block, []));
    await rig.until(() => rig.published.votes.some((v) => v.validator === 0));
    await rig.settle();
    const evidence = await rig.store.evidenceRefs();
    expect(evidence.length).toBe(1);
    const saved = (await rig.store.loadRoundState())!;
    const bound = (MAX_ROUNDS_AHEAD + 1) * 2 * (1 + MAX_CONFLICTING_PER_SLOT) * 4;
    expect(saved.votes.length).toBeLessThanOrEqual(bound);
    expect(saved.votes.length).toBeLessThan(400);
  });

  it('300 different valid proposals of one proposer for one round: one is executed and persisted, one evidence record', async () => {
    rig = await EngineRig.create();
    const first = rig.block(1, []);
    expect(rig.engine.assess(rig.proposal(1, first, []))).toBe('valid');
    rig.engine.onProposal(rig.proposal(1, first, []));
    let ignored = 0;
    for (let i = 0; i < 300; i++) {
      const other = rig.block(1, [], 0);
      if (toHex(other.hash) === toHex(first.hash)) continue;
      const verdict = rig.engine.assess(rig.proposal(1, other, []));
      if (verdict === 'ignore') ignored++;
      await new Promise((r) => setTimeout(r, 1)); // a new block time, so a new block
    }
    expect(ignored).toBeGreaterThan(250);
    // A proposal far beyond the round window is not executed either (validator 1 proposes round 4k).
    const far = rig.block(1, [], 4 * (MAX_ROUNDS_AHEAD + 1));
    expect(rig.engine.assess(rig.proposal(1, far, [], 4 * (MAX_ROUNDS_AHEAD + 1)))).toBe('ignore');
    await rig.settle();
    expect((await rig.store.loadProposals()).length).toBe(1);
    const evidence = await rig.store.evidenceRefs();
    expect(evidence).toEqual([{ height: 1, id: 'proposal-1' }]);
  });

  it('a commit that fails on disk halts consensus with a reason instead of stalling silently', async () => {
    rig = await EngineRig.create();
    const block = rig.block(1, []);
    rig.engine.onProposal(rig.proposal(1, block, []));
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'prevote', block.hash));
    await rig.until(() => rig.published.votes.some((v) => v.validator === 0 && v.type === 'precommit'));
    await rig.settle();
    // The disk goes away between the vote and the commit.
    const store = rig.store as unknown as { commitBlock: () => Promise<void> };
    store.commitBlock = async () => {
      throw new Error('EIO: i/o error');
    };
    for (const v of [1, 2]) rig.engine.onVote(rig.vote(v, 'precommit', block.hash));
    await rig.until(() => rig.engine.halted !== null);
    expect(rig.engine.halted).toMatchObject({ height: 1 });
    expect(rig.engine.halted!.reason).toContain('EIO');
    const before = rig.published.votes.length;
    rig.engine.onVote(rig.vote(3, 'prevote', null, 1));
    await rig.settle();
    expect(rig.published.votes.length).toBe(before);
  });
});
