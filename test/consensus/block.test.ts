import { activationCodeKey, newActivationCode, signActivation } from '../../src/records/activation.js';
import { describe, expect, it } from 'vitest';
import {
  certificateHash,
  decodeBlock,
  encodeBlock,
  genesisBlock,
  headerHash,
  signHeader,
  ZERO_HASH,
  EMPTY_ROOT,
  type Block,
  type BlockHeader,
} from '../../src/consensus/block.js';
import { buildBlock, encodeEvents, MAX_CLOCK_DRIFT_MS, validateBlock, type ExecutedBlock, type ParentRef } from '../../src/consensus/blockExecution.js';
import { genesisState, parseGenesis, type Genesis } from '../../src/consensus/genesis.js';
import { merkleRoot } from '../../src/consensus/merkle.js';
import { certificateFromVotes, signVote, type Certificate } from '../../src/consensus/votes.js';
import { toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { createSigner, generateSigningKeyPair, type Signer } from '../../src/records/crypto/signature.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { isMedLedgerError } from '../../src/records/errors.js';
import { apply } from '../../src/records/state/apply.js';
import { MemoryState, OverlayState } from '../../src/records/state/memoryState.js';
import { tableNames, type StateView } from '../../src/records/state/types.js';
import type { Tx } from '../../src/records/tx/types.js';
import { createLedger, type HospitalSeed } from '../support/ledgerFixture.js';

/**
 * validateBlock (PROTOCOL.md §5.3): every node re-validates every block — proposer for the round and its signature,
 * the parent's commit certificate, the Merkle root, and every transaction against the state at its parent.
 * A 4-validator genesis (f = 1, quorum 3), real keys, real signed transactions.
 */

const NETWORK = 'medtest';
const T0 = Date.UTC(2025, 0, 1);
const HOSPITALS: HospitalSeed[] = ['a', 'b', 'c', 'd'].map((x) => ({ id: `hosp-${x}`, name: `Hospital ${x.toUpperCase()}`, admin: `admin-${x}` }));

// Users' keys and signed transactions come from the fixture; its own state is not used.
const ledger = createLedger({ hospitals: HOSPITALS, startTime: T0 });
const validatorKeys = HOSPITALS.map(() => generateSigningKeyPair());
const V: Signer[] = validatorKeys.map((k) => createSigner(k.secretKey));

function makeGenesis(consensus?: Record<string, number>): Genesis {
  return parseGenesis({
    network: NETWORK,
    time: T0,
    hospitals: HOSPITALS.map((h, i) => ({
      id: h.id,
      name: h.name,
      validatorKey: toHex(validatorKeys[i]!.publicKey),
      peerId: `12D3KooWtestpeer${i}`,
      admin: { id: h.admin, signKey: toHex(ledger.keys(h.admin).signing.publicKey) },
    })),
    ...(consensus ? { consensus } : {}),
  });
}
const genesis = makeGenesis();
ledger.genesisHash = genesis.hash;

const ref = (b: { block: Block } | Block): ParentRef => {
  const block = 'header' in b ? b : b.block;
  return { header: block.header, hash: headerHash(block.header) };
};
const block0 = genesisBlock(genesis);
const parent0 = ref(block0);
const state0 = genesisState(genesis);

// --- block 1: a patient registers, an admin enrols a doctor ---------------------------------------------
const T1 = T0 + 1_000;
const regPatient = ledger.sign('pat-1', { type: 'registerPatient', via: 'hosp-a', time: T1 - 100, body: { encKey: ledger.keys('pat-1').encKey } });
const doc = ledger.keys('doc-1');
// Issue 10: the admin invites, the doctor activates with their own keys and the code.
const code = newActivationCode();
const inviteDoctor = ledger.sign('admin-a', {
  type: 'inviteUser',
  time: T1 - 60,
  body: { user: 'doc-1', role: 'doctor', expiresAt: T1 + 86_400_000, codeKey: activationCodeKey(code, 'doc-1') },
});
const enrolDoctor = ledger.sign('doc-1', {
  type: 'activateUser',
  via: 'hosp-a',
  time: T1 - 50,
  body: { encKey: doc.encKey, codeSig: signActivation(code, 'doc-1', doc.signing.publicKey, doc.encKey, genesis.hash) },
});
const built1 = buildBlock({
  genesis,
  parent: parent0,
  lastCommit: null,
  state: state0,
  candidates: [regPatient, inviteDoctor, enrolDoctor],
  round: 0,
  time: T1,
  signer: V[1]!,
});
const b1 = built1.executed;
const parent1 = ref(b1);
const state1 = genesisState(genesis);
state1.write(b1.changes);

function precommits(height: number, block: Uint8Array, who: number[], opts: { round?: number; network?: string; type?: 'prevote' | 'precommit' } = {}) {
  return who.map((i) =>
    signVote({ type: opts.type ?? 'precommit', network: opts.network ?? NETWORK, height, round: opts.round ?? 0, validator: i, block }, V[i]!, genesis.hash),
  );
}
const cert1 = certificateFromVotes(precommits(1, b1.hash, [0, 1, 2]));

// --- block 2: a doctor without a grant lists records (denied), the patient grants, the doctor lists again
const T2 = T0 + 2_000;
const listDenied = ledger.sign('doc-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2 - 300, body: {} });
const grant = ledger.sign('pat-1', { type: 'grantAccess', patient: 'pat-1', via: 'hosp-a', time: T2 - 200, body: { grantee: 'doc-1' } });
const listAllowed = ledger.sign('doc-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2 - 100, body: {} });
const block2Txs = [listDenied, grant, listAllowed];

/** Proposer of height 2 in round 0 is validators[(2 + 0) mod 4] = V[2]. */
function build2(
  over: { candidates?: Tx[]; lastCommit?: Certificate | null; round?: number; signer?: Signer; state?: StateView; time?: number } = {},
): ExecutedBlock {
  const round = over.round ?? 0;
  const built = buildBlock({
    genesis,
    parent: parent1,
    lastCommit: over.lastCommit === undefined ? cert1 : over.lastCommit,
    state: over.state ?? state1,
    candidates: over.candidates ?? block2Txs,
    round,
    time: over.time ?? T2,
    signer: over.signer ?? V[(2 + round) % 4]!,
  });
  return built.executed;
}
const b2 = build2();

/** A copy of a block with header fields changed and the header signed again (by the right proposer by default). */
function resign(block: Block, changes: Partial<BlockHeader>, signer?: Signer, g: Genesis = genesis): Block {
  const header = { ...block.header, ...changes };
  return { ...block, header, sig: signHeader(header, signer ?? V[header.proposer]!, g.hash) };
}

/** A copy of a block carrying other transaction bytes, with a consistent txRoot and txCount, signed again. */
function withTxs(block: Block, txs: Uint8Array[], g: Genesis = genesis): Block {
  return { ...resign(block, { txRoot: merkleRoot(txs), txCount: txs.length }, undefined, g), txs };
}

function snapshot(state: MemoryState): unknown {
  return Object.fromEntries(tableNames.map((t) => [t, structuredClone(Object.fromEntries(state.entries(t)))]));
}

function expectInvalid(block: Block, parent: ParentRef, state: MemoryState, substring: string, now?: number): void {
  const before = snapshot(state);
  let thrown: unknown;
  try {
    validateBlock(block, parent, state, { genesis, ...(now !== undefined ? { now } : {}) });
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected the block to be rejected with "${substring}"`).toBeDefined();
  if (!isMedLedgerError(thrown)) throw thrown;
  expect(thrown.code).toBe('INVALID_BLOCK');
  expect(thrown.message).toContain(`block ${block.header.height}: `);
  expect(thrown.message).toContain(substring);
  // A rejected block leaves no trace in the state.
  expect(snapshot(state)).toEqual(before);
}

/** Independent execution: apply each transaction in order on an overlay, as the spec describes it. */
function executeByHand(state: StateView, txs: Tx[], height: number, blockTime: number) {
  const overlay = new OverlayState(state);
  const events = txs.map((tx, index) => {
    const r = apply(overlay, tx, { height, index, blockTime, genesisHash: genesis.hash });
    if (!r.valid) throw new Error(`transaction ${index} invalid: ${r.error.message}`);
    overlay.write(r.changes);
    return r.event;
  });
  return { events, changes: overlay.changes() };
}

describe('fixture sanity', () => {
  it('a 4-validator genesis; buildBlock kept every candidate', () => {
    expect(genesis.validators.map((v) => v.hospital)).toEqual(['hosp-a', 'hosp-b', 'hosp-c', 'hosp-d']);
    expect(built1.dropped).toEqual([]);
    expect(b1.block.header).toMatchObject({ height: 1, round: 0, proposer: 1, txCount: 3, time: T1 });
    expect(b2.block.header).toMatchObject({ height: 2, round: 0, proposer: 2, txCount: 3, time: T2 });
    expect(b2.txs.map((t) => t.idHex)).toEqual(block2Txs.map((t) => t.idHex));
  });
});

describe('a valid chain 0 → 1 → 2 validates', () => {
  it('block 1 validates against genesis; events and changes match apply', () => {
    const exec = validateBlock(b1.block, parent0, state0, { genesis });
    expect(exec.hashHex).toBe(toHex(headerHash(b1.block.header)));
    expect(exec.hashHex).toBe(b1.hashHex);
    expect(exec.txs.map((t) => t.idHex)).toEqual([regPatient.idHex, inviteDoctor.idHex, enrolDoctor.idHex]);
    const byHand = executeByHand(state0, [regPatient, inviteDoctor, enrolDoctor], 1, T1);
    expect(exec.events).toEqual(byHand.events);
    expect(exec.changes).toEqual(byHand.changes);
    expect(exec.events.map((e) => [e.type, e.outcome, e.agent.user, e.height, e.index])).toEqual([
      ['registerPatient', 'success', 'pat-1', 1, 0],
      ['inviteUser', 'success', 'admin-a', 1, 1],
      ['activateUser', 'success', 'doc-1', 1, 2],
    ]);
    expect(toHex(b1.block.header.eventsRoot)).toBe(toHex(merkleRoot(encodeEvents(exec.events))));
    expect(toHex(b1.block.header.txRoot)).toBe(toHex(merkleRoot([regPatient.bytes, inviteDoctor.bytes, enrolDoctor.bytes])));
    expect(b1.block.lastCommit).toBeNull();
    expect(toHex(b1.block.header.lastCommit)).toBe(toHex(ZERO_HASH));
  });

  it('block 2 validates on top of block 1 with its certificate; events and changes match apply', () => {
    const exec = validateBlock(b2.block, parent1, state1, { genesis });
    expect(exec.hashHex).toBe(b2.hashHex);
    const byHand = executeByHand(state1, block2Txs, 2, T2);
    expect(exec.events).toEqual(byHand.events);
    expect(exec.changes).toEqual(byHand.changes);
    expect(exec.events).toEqual(b2.events);
    expect(exec.changes).toEqual(b2.changes);
    // Order inside the block matters: denied before the grant, allowed after it.
    expect(exec.events.map((e) => [e.type, e.outcome, e.index])).toEqual([
      ['listRecords', 'denied', 0],
      ['grantAccess', 'success', 1],
      ['listRecords', 'success', 2],
    ]);
    expect(toHex(b2.block.header.lastCommit)).toBe(toHex(certificateHash(cert1)));
  });

  it('validation is read-only: the parent state is unchanged after validating', () => {
    const before = snapshot(state1);
    validateBlock(b2.block, parent1, state1, { genesis });
    expect(snapshot(state1)).toEqual(before);
  });

  it('a block survives encode/decode and still validates to the same hash', () => {
    const decoded = decodeBlock(encodeBlock(b2.block), 1 << 20);
    expect(validateBlock(decoded, parent1, state1, { genesis }).hashHex).toBe(b2.hashHex);
  });

  it('an empty block validates', () => {
    const empty = build2({ candidates: [] });
    expect(toHex(empty.block.header.txRoot)).toBe(toHex(EMPTY_ROOT));
    const exec = validateBlock(empty.block, parent1, state1, { genesis });
    expect(exec.events).toEqual([]);
    expect(exec.changes).toEqual([]);
  });

  it('a block of round 1 by the round-1 proposer (V[3]) validates', () => {
    const r1 = build2({ round: 1 });
    expect(r1.block.header.proposer).toBe(3);
    expect(validateBlock(r1.block, parent1, state1, { genesis }).hashHex).toBe(r1.hashHex);
  });

  it('a 4-of-4 certificate is as good as 3-of-4', () => {
    const b = build2({ lastCommit: certificateFromVotes(precommits(1, b1.hash, [3, 0, 1, 2])) });
    expect(validateBlock(b.block, parent1, state1, { genesis }).hashHex).toBe(b.hashHex);
  });

  it('the time may be at most MAX_CLOCK_DRIFT_MS ahead of `now`', () => {
    expect(() => validateBlock(b2.block, parent1, state1, { genesis, now: T2 - MAX_CLOCK_DRIFT_MS })).not.toThrow();
    expect(() => validateBlock(b2.block, parent1, state1, { genesis, now: T2 })).not.toThrow();
  });
});

describe('header checks', () => {
  it('wrong network', () => {
    expectInvalid(resign(b2.block, { network: 'othernet' }), parent1, state1, `network othernet is not ${NETWORK}`);
  });

  it('wrong height', () => {
    expectInvalid(resign(b2.block, { height: 3 }), parent1, state1, 'does not follow height 1');
    expectInvalid(b2.block, parent0, state0, 'does not follow height 0');
    expectInvalid(b1.block, parent1, state1, 'does not follow height 1');
  });

  it('wrong parent hash', () => {
    expectInvalid(resign(b2.block, { parent: parent0.hash }), parent1, state1, 'parent hash does not match');
    expectInvalid(resign(b2.block, { parent: sha256(utf8('another block 1')) }), parent1, state1, 'parent hash does not match');
    expectInvalid(resign(b1.block, { parent: genesis.hash }), parent0, state0, 'parent hash does not match');
  });

  it('time not advancing past the parent', () => {
    expectInvalid(resign(b2.block, { time: T1 }), parent1, state1, 'time does not advance');
    expectInvalid(resign(b2.block, { time: T1 - 1 }), parent1, state1, 'time does not advance');
    expectInvalid(resign(b1.block, { time: T0 }), parent0, state0, 'time does not advance');
  });

  it('time too far in the future of the validator’s clock', () => {
    expectInvalid(b2.block, parent1, state1, 'time is in the future', T2 - MAX_CLOCK_DRIFT_MS - 1);
    expectInvalid(b2.block, parent1, state1, 'time is in the future', T2 - 60_000);
  });

  it('signed by a key that is not a validator', () => {
    const outsider = createSigner(generateSigningKeyPair().secretKey);
    expectInvalid(resign(b2.block, {}, outsider), parent1, state1, 'proposer signature is invalid');
  });

  it('signed by a validator that is not the proposer of header.round', () => {
    for (const i of [0, 1, 3]) expectInvalid(resign(b2.block, {}, V[i]), parent1, state1, 'proposer signature is invalid');
    // round 1's proposer is V[3]: V[2] (round 0's proposer) may not sign a round-1 block
    expectInvalid(resign(b2.block, { round: 1, proposer: 3 }, V[2]), parent1, state1, 'proposer signature is invalid');
  });

  it('header.proposer lying about who proposes the round', () => {
    expectInvalid(resign(b2.block, { proposer: 3 }, V[3]), parent1, state1, 'proposer 3 is not the proposer of round 0 (2)');
    expectInvalid(resign(b2.block, { proposer: 3 }, V[2]), parent1, state1, 'proposer 3 is not the proposer of round 0 (2)');
    // claiming round 1 while keeping round 0's proposer
    expectInvalid(resign(b2.block, { round: 1 }, V[2]), parent1, state1, 'proposer 2 is not the proposer of round 1 (3)');
    expectInvalid(resign(b2.block, { proposer: 9 }, V[2]), parent1, state1, 'proposer 9 is not the proposer of round 0 (2)');
  });

  it('a signature of another header, or a tampered signature', () => {
    expectInvalid({ ...b2.block, sig: b1.block.sig }, parent1, state1, 'proposer signature is invalid');
    const sig = Uint8Array.from(b2.block.sig);
    sig[10]! ^= 0x04;
    expectInvalid({ ...b2.block, sig }, parent1, state1, 'proposer signature is invalid');
    // a header field changed after signing
    expectInvalid({ ...b2.block, header: { ...b2.block.header, time: T2 + 1 } }, parent1, state1, 'proposer signature is invalid');
  });
});

describe('the parent’s commit certificate', () => {
  const sigs = cert1.sigs;

  it('block 1 carries none, and a header hash of none', () => {
    expectInvalid({ ...b1.block, lastCommit: cert1 }, parent0, state0, 'block 1 carries no parent certificate');
    expectInvalid(resign(b1.block, { lastCommit: certificateHash(cert1) }), parent0, state0, 'block 1 carries no parent certificate');
  });

  it('missing at height 2', () => {
    const b = build2({ lastCommit: null });
    expect(toHex(b.block.header.lastCommit)).toBe(toHex(ZERO_HASH));
    expectInvalid(b.block, parent1, state1, "missing the parent's commit certificate");
    // header still committing to the real certificate, block dropping it
    expectInvalid({ ...b2.block, lastCommit: null }, parent1, state1, "missing the parent's commit certificate");
  });

  it('with a forged signature', () => {
    const forged = { ...cert1, sigs: sigs.map((s, i) => (i === 1 ? { ...s, sig: Uint8Array.from(s.sig, (x, j) => (j === 0 ? x ^ 1 : x)) } : s)) };
    expectInvalid(build2({ lastCommit: forged }).block, parent1, state1, 'parent certificate: certificate for height 1: forged signature of validator 1');
    // a valid signature moved to another validator's slot
    const swapped = { ...cert1, sigs: [sigs[0]!, { validator: 3, sig: sigs[2]!.sig }, sigs[1]!].sort((a, b) => a.validator - b.validator) };
    expectInvalid(build2({ lastCommit: swapped }).block, parent1, state1, 'forged signature of validator');
  });

  it('with a duplicate signature (the same validator twice)', () => {
    const dup = { ...cert1, sigs: [sigs[0]!, sigs[0]!, sigs[1]!] };
    expectInvalid(build2({ lastCommit: dup }).block, parent1, state1, 'parent certificate: certificate for height 1: duplicate signature of validator 0');
  });

  it('with too few signatures', () => {
    const two = { ...cert1, sigs: sigs.slice(0, 2) };
    expectInvalid(build2({ lastCommit: two }).block, parent1, state1, 'parent certificate: certificate for height 1: 2 signatures, quorum is 3');
    expectInvalid(build2({ lastCommit: { ...cert1, sigs: [] } }).block, parent1, state1, '0 signatures, quorum is 3');
  });

  it('certifying another block, or another height', () => {
    const other = certificateFromVotes(precommits(1, sha256(utf8('a conflicting block 1')), [0, 1, 2]));
    expectInvalid(build2({ lastCommit: other }).block, parent1, state1, 'parent certificate: certificate for height 1: certifies a different block');
    const wrongHeight = certificateFromVotes(precommits(2, b1.hash, [0, 1, 2]));
    expectInvalid(build2({ lastCommit: wrongHeight }).block, parent1, state1, 'certifies height 2, expected 1');
  });

  it('signatures of prevotes, of another network or another round do not make a certificate', () => {
    const prevotes = certificateFromVotes(precommits(1, b1.hash, [0, 1, 2], { type: 'prevote' }));
    expectInvalid(build2({ lastCommit: prevotes }).block, parent1, state1, 'forged signature of validator 0');
    const otherNet = certificateFromVotes(precommits(1, b1.hash, [0, 1, 2], { network: 'othernet' }));
    expectInvalid(build2({ lastCommit: otherNet }).block, parent1, state1, 'forged signature of validator 0');
    expectInvalid(build2({ lastCommit: { ...cert1, round: 1 } }).block, parent1, state1, 'forged signature of validator 0');
  });

  it('lastCommit hash in the header not matching the certificate carried', () => {
    // Both certificates are valid; the header commits to one, the block carries the other.
    const cert4 = certificateFromVotes(precommits(1, b1.hash, [0, 1, 2, 3]));
    expectInvalid(
      { ...resign(b2.block, { lastCommit: certificateHash(cert4) }), lastCommit: cert1 },
      parent1,
      state1,
      'parent certificate hash does not match the header',
    );
    expectInvalid({ ...b2.block, lastCommit: cert4 }, parent1, state1, 'parent certificate hash does not match the header');
    expectInvalid(resign(b2.block, { lastCommit: ZERO_HASH }), parent1, state1, 'parent certificate hash does not match the header');
  });
});

describe('transactions', () => {
  it('txCount not matching the transactions', () => {
    expectInvalid(resign(b2.block, { txCount: 4 }), parent1, state1, 'transaction count does not match');
    expectInvalid(resign(b2.block, { txCount: 2 }), parent1, state1, 'transaction count does not match');
    expectInvalid({ ...b2.block, txs: b2.block.txs.slice(0, 2) }, parent1, state1, 'transaction count does not match');
  });

  it('txRoot not matching the transactions', () => {
    const swapped = [b2.block.txs[1]!, b2.block.txs[0]!, b2.block.txs[2]!];
    expectInvalid({ ...b2.block, txs: swapped }, parent1, state1, 'transaction root does not match');
    expectInvalid(resign(b2.block, { txRoot: EMPTY_ROOT }), parent1, state1, 'transaction root does not match');
    const other = ledger.sign('doc-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2, body: {} });
    expectInvalid({ ...b2.block, txs: [b2.block.txs[0]!, b2.block.txs[1]!, other.bytes] }, parent1, state1, 'transaction root does not match');
  });

  it('more transactions than the genesis allows', () => {
    const g1 = makeGenesis({ maxBlockTxs: 1 });
    const p0 = ref(genesisBlock(g1));
    const built = buildBlock({
      genesis: g1,
      parent: p0,
      lastCommit: null,
      state: genesisState(g1),
      candidates: [regPatient, inviteDoctor, enrolDoctor],
      round: 0,
      time: T1,
      signer: V[1]!,
    });
    expect(built.executed.txs).toHaveLength(1); // the proposer stops at the limit
    let thrown: unknown;
    try {
      validateBlock(withTxs(built.executed.block, [regPatient.bytes, inviteDoctor.bytes, enrolDoctor.bytes], g1), p0, genesisState(g1), { genesis: g1 });
    } catch (err) {
      thrown = err;
    }
    expect(isMedLedgerError(thrown, 'INVALID_BLOCK') && thrown.message).toBe('block 1: too many transactions');
  });

  describe('one invalid transaction makes the block invalid', () => {
    it('a replayed transaction (already in block 1)', () => {
      expectInvalid(
        withTxs(b2.block, [regPatient.bytes]),
        parent1,
        state1,
        `transaction 0 (${regPatient.idHex.slice(0, 12)}) is invalid: registration of pat-1 was already applied`,
      );
      expectInvalid(
        withTxs(b2.block, [...b2.block.txs, enrolDoctor.bytes]),
        parent1,
        state1,
        `transaction 3 (${enrolDoctor.idHex.slice(0, 12)}) is invalid: stale nonce`,
      );
    });

    it('a stale nonce inside the same block', () => {
      const stale = ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2, nonce: grant.tx.nonce, body: {} });
      expectInvalid(withTxs(b2.block, [grant.bytes, stale.bytes]), parent1, state1, 'transaction 1');
      expectInvalid(withTxs(b2.block, [grant.bytes, stale.bytes]), parent1, state1, `stale nonce ${grant.tx.nonce} for pat-1`);
    });

    it('a transaction with a bad signature', () => {
      const sig = Uint8Array.from(grant.sig);
      sig[0]! ^= 0x01;
      const forged = encodeCanonical({ tx: grant.tx, sig });
      expectInvalid(
        withTxs(b2.block, [listDenied.bytes, forged]),
        parent1,
        state1,
        `transaction 1: transaction ${grant.idHex.slice(0, 12)} has an invalid signature`,
      );
    });

    it('a transaction by an unknown actor', () => {
      const ghost = ledger.sign('ghost-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2, body: {} });
      expectInvalid(withTxs(b2.block, [ghost.bytes]), parent1, state1, `transaction 0 (${ghost.idHex.slice(0, 12)}) is invalid: unknown user ghost-1`);
    });

    it('a transaction signed with another user’s key', () => {
      const impostor = ledger.sign('doc-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2, body: {} }, { signWith: 'pat-1' });
      expectInvalid(withTxs(b2.block, [impostor.bytes]), parent1, state1, "is invalid: transaction is not signed with doc-1's key");
    });

    it('a transaction whose time lies outside the window of the block time', () => {
      const old = ledger.sign('doc-1', { type: 'listRecords', patient: 'pat-1', via: 'hosp-a', time: T2 - 11 * 60_000, body: {} });
      expectInvalid(withTxs(b2.block, [old.bytes]), parent1, state1, 'is outside the window of block time');
    });

    it('bytes that are not a transaction', () => {
      expectInvalid(withTxs(b2.block, [utf8('not a transaction')]), parent1, state1, 'transaction 0: transaction is not valid CBOR');
      expectInvalid(withTxs(b2.block, [encodeCanonical({ tx: {}, sig: new Uint8Array(64) })]), parent1, state1, 'transaction 0: malformed transaction');
    });

    it('a valid transaction the nodes verified before, carried with a forged signature (the transaction cache must not vouch for it)', () => {
      const txCache = new Map<string, Tx>();
      // This node saw and verified the genuine transaction (e.g. in gossip)...
      validateBlock(b2.block, parent1, state1, { genesis, txCache });
      expect(txCache.size).toBe(b2.block.txs.length);
      // ...then a block carries the same unsigned transaction with another, invalid signature.
      const sig = Uint8Array.from(grant.sig);
      sig[5]! ^= 0x10;
      const forged = encodeCanonical({ tx: grant.tx, sig });
      let thrown: unknown;
      try {
        validateBlock(withTxs(b2.block, [listDenied.bytes, forged, listAllowed.bytes]), parent1, state1, { genesis, txCache });
      } catch (err) {
        thrown = err;
      }
      expect(isMedLedgerError(thrown, 'INVALID_BLOCK') && thrown.message).toBe(
        `block 2: transaction 1: transaction ${grant.idHex.slice(0, 12)} has an invalid signature`,
      );
    });
  });

  it('a duplicated transaction', () => {
    expectInvalid(withTxs(b2.block, [grant.bytes, grant.bytes]), parent1, state1, `transaction ${grant.idHex.slice(0, 12)} appears twice`);
    expectInvalid(withTxs(b2.block, [...b2.block.txs, listDenied.bytes]), parent1, state1, `transaction ${listDenied.idHex.slice(0, 12)} appears twice`);
  });

  describe('eventsRoot not matching the execution', () => {
    it('a header claiming other events', () => {
      expectInvalid(resign(b2.block, { eventsRoot: EMPTY_ROOT }), parent1, state1, 'audit events root does not match the execution');
      expectInvalid(resign(b2.block, { eventsRoot: b1.block.header.eventsRoot }), parent1, state1, 'audit events root does not match the execution');
    });

    it('a proposer that executed against another state (a grant not in the chain): the outcome differs', () => {
      // The proposer's state includes the grant, so it records the doctor's listing as a success...
      const proposerView = new OverlayState(state1);
      const r = apply(proposerView, grant, { height: 2, index: 0, blockTime: T2, genesisHash: genesis.hash });
      expect(r.valid).toBe(true);
      if (r.valid) proposerView.write(r.changes);
      const lying = build2({ candidates: [listDenied], state: proposerView });
      expect(lying.events[0]!.outcome).toBe('success');
      // ...every other node, executing against the real state, sees a denial.
      expectInvalid(lying.block, parent1, state1, 'audit events root does not match the execution');
    });

    it('events with another block time are the same events: only the header time changes, and the block still validates', () => {
      // The block time is the window reference only; events record the signed time. A re-signed header with
      // a later time therefore keeps the same eventsRoot — and stays valid.
      const later = resign(b2.block, { time: T2 + 500 });
      expect(validateBlock(later, parent1, state1, { genesis }).events).toEqual(b2.events);
    });
  });
});
