import { describe, expect, it } from 'vitest';
import { genesisBlock, headerHash, signHeader, type Block } from '../../src/consensus/block.js';
import { parseGenesis, type Validator } from '../../src/consensus/genesis.js';
import { checkProposal, signProposal, type Proposal } from '../../src/consensus/proposal.js';
import { proposerIndex, quorum } from '../../src/consensus/tendermint.js';
import {
  certificateFromVotes,
  signVote,
  verifyCertificate,
  verifyVote,
  voteSigningMessage,
  type Certificate,
  type SignedVote,
  type UnsignedVote,
} from '../../src/consensus/votes.js';
import { toHex, utf8 } from '../../src/records/crypto/bytes.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { createSigner, generateSigningKeyPair, verifySignature, type Signer } from '../../src/records/crypto/signature.js';
import { isMedLedgerError } from '../../src/records/errors.js';

/** Votes, commit certificates (2f+1 = 3 of 4 precommits) and proposals (PROTOCOL.md §5.5–5.7), with real Ed25519 keys. */

const NETWORK = 'medtest';
const N = 4;
const keys = Array.from({ length: N }, () => generateSigningKeyPair());
const V: Signer[] = keys.map((k) => createSigner(k.secretKey));
/** The genesis these validators were appointed by (their signatures are bound to it). */
const GENESIS_HASH = sha256(utf8('votes test genesis'));
const validators: Validator[] = keys.map((k, index) => ({
  index,
  hospital: `hosp-${index}`,
  key: k.publicKey,
  peerId: `peer-${index}-xxxxxxxx`,
  genesisHash: GENESIS_HASH,
}));

const H = 7;
const BLOCK = sha256(utf8('block at height 7'));
const OTHER = sha256(utf8('another block at height 7'));

const vote = (validator: number, over: Partial<UnsignedVote> = {}): SignedVote =>
  signVote({ type: 'precommit', network: NETWORK, height: H, round: 0, validator, block: BLOCK, ...over }, V[validator]!, GENESIS_HASH);

function certificateError(cert: Certificate, expected?: { height: number; block: Uint8Array }, vals = validators): string | null {
  try {
    verifyCertificate(cert, vals, NETWORK, expected);
    return null;
  } catch (err) {
    if (!isMedLedgerError(err, 'INVALID_CERTIFICATE')) throw err;
    return err.message;
  }
}

describe('signVote / verifyVote', () => {
  it('a signed vote verifies against its validator', () => {
    for (let i = 0; i < N; i++) expect(verifyVote(vote(i), validators)).toBe(true);
  });

  it('a nil vote (block null) signs and verifies, and differs from a vote for a block', () => {
    const nil = vote(1, { block: null, type: 'prevote' });
    expect(verifyVote(nil, validators)).toBe(true);
    expect(verifyVote({ ...nil, block: BLOCK }, validators)).toBe(false);
    expect(verifyVote({ ...vote(1, { type: 'prevote' }), block: null }, validators)).toBe(false);
  });

  it('the signature is over a domain-separated canonical encoding of every field, under the genesis hash', () => {
    const v = vote(2);
    expect(verifySignature(keys[2]!.publicKey, voteSigningMessage(v, GENESIS_HASH), v.sig)).toBe(true);
    const message = voteSigningMessage(v, GENESIS_HASH);
    const tag = utf8('medledger/vote/v2\0');
    expect(toHex(message.subarray(0, tag.length))).toBe(toHex(tag));
    expect(toHex(message.subarray(tag.length, tag.length + 32))).toBe(toHex(GENESIS_HASH));
    // After the tag and the genesis hash: exactly the six fields of the vote, canonically encoded (the signature aside).
    const { sig: _sig, ...fields } = v;
    const signed = decodeCanonical(message.subarray(tag.length + 32)) as Record<string, unknown>;
    expect(Object.keys(signed).sort()).toEqual(['block', 'height', 'network', 'round', 'type', 'validator']);
    expect(Object.keys(fields).sort()).toEqual(Object.keys(signed).sort());
    expect(toHex(message.subarray(tag.length + 32))).toBe(toHex(encodeCanonical(fields)));
  });

  it('changing any field after signing breaks it', () => {
    const v = vote(2);
    const changed: SignedVote[] = [
      { ...v, type: 'prevote' },
      { ...v, network: 'othernet' },
      { ...v, height: H + 1 },
      { ...v, round: 1 },
      { ...v, block: OTHER },
      { ...v, block: null },
    ];
    for (const c of changed) expect(verifyVote(c, validators), JSON.stringify({ ...c, sig: undefined, block: c.block && toHex(c.block) })).toBe(false);
  });

  it('a vote claiming another validator’s index, or an unknown index, does not verify', () => {
    const v = vote(2);
    expect(verifyVote({ ...v, validator: 1 }, validators)).toBe(false);
    expect(verifyVote({ ...v, validator: 4 }, validators)).toBe(false);
    // signed by V[2] but claiming to be validator 3
    const claim = signVote({ type: 'precommit', network: NETWORK, height: H, round: 0, validator: 3, block: BLOCK }, V[2]!, GENESIS_HASH);
    expect(verifyVote(claim, validators)).toBe(false);
  });

  it('a tampered signature does not verify', () => {
    const v = vote(0);
    for (const at of [0, 31, 32, 63]) {
      const sig = Uint8Array.from(v.sig);
      sig[at]! ^= 0x01;
      expect(verifyVote({ ...v, sig }, validators)).toBe(false);
    }
  });
});

describe('verifyCertificate', () => {
  const cert3 = certificateFromVotes([vote(0), vote(1), vote(3)]);
  const expected = { height: H, block: BLOCK };

  it('quorum of 4 validators is 3', () => {
    expect(quorum(4)).toBe(3);
  });

  it('accepts 3 of 4 and 4 of 4, with or without an expected height and block', () => {
    expect(certificateError(cert3)).toBeNull();
    expect(certificateError(cert3, expected)).toBeNull();
    for (const who of [
      [0, 1, 2],
      [0, 2, 3],
      [1, 2, 3],
      [0, 1, 2, 3],
    ]) {
      expect(certificateError(certificateFromVotes(who.map((i) => vote(i))), expected), who.join()).toBeNull();
    }
  });

  it('accepts precommits of a later round (the round the block was decided in)', () => {
    expect(certificateError(certificateFromVotes([0, 1, 2].map((i) => vote(i, { round: 5 }))), expected)).toBeNull();
  });

  it('rejects a forged signature', () => {
    const sigs = cert3.sigs.map((s, i) => (i === 2 ? { ...s, sig: Uint8Array.from(s.sig, (x, j) => (j === 40 ? x ^ 0x02 : x)) } : s));
    expect(certificateError({ ...cert3, sigs }, expected)).toBe(`certificate for height ${H}: forged signature of validator 3`);
    // a signature by a key outside the set, in a validator's slot
    const outsider = createSigner(generateSigningKeyPair().secretKey);
    const alien = signVote({ type: 'precommit', network: NETWORK, height: H, round: 0, validator: 1, block: BLOCK }, outsider, GENESIS_HASH);
    expect(certificateError({ ...cert3, sigs: [cert3.sigs[0]!, { validator: 1, sig: alien.sig }, cert3.sigs[2]!] })).toBe(
      `certificate for height ${H}: forged signature of validator 1`,
    );
  });

  it('rejects signatures of prevotes, of another network, or for another round than the certificate says', () => {
    const prevotes = certificateFromVotes([0, 1, 2].map((i) => vote(i, { type: 'prevote' })));
    expect(certificateError(prevotes)).toBe(`certificate for height ${H}: forged signature of validator 0`);
    const otherNet = certificateFromVotes([0, 1, 2].map((i) => vote(i, { network: 'othernet' })));
    expect(certificateError(otherNet)).toBe(`certificate for height ${H}: forged signature of validator 0`);
    expect(certificateError({ ...cert3, round: 1 })).toBe(`certificate for height ${H}: forged signature of validator 0`);
    expect(certificateError({ ...cert3, height: H + 1 })).toBe(`certificate for height ${H + 1}: forged signature of validator 0`);
  });

  it('rejects a duplicate validator, even with 3 signatures in all', () => {
    const dup = { ...cert3, sigs: [cert3.sigs[0]!, cert3.sigs[0]!, cert3.sigs[1]!] };
    expect(certificateError(dup)).toBe(`certificate for height ${H}: duplicate signature of validator 0`);
    const dupLast = { ...cert3, sigs: [...cert3.sigs, cert3.sigs[2]!] };
    expect(certificateError(dupLast)).toBe(`certificate for height ${H}: duplicate signature of validator 3`);
  });

  it('rejects signatures out of ascending validator order', () => {
    const unsorted = { ...cert3, sigs: [cert3.sigs[1]!, cert3.sigs[0]!, cert3.sigs[2]!] };
    expect(certificateError(unsorted)).toBe(`certificate for height ${H}: signatures out of order`);
  });

  it('rejects an unknown validator index', () => {
    const v4 = signVote({ type: 'precommit', network: NETWORK, height: H, round: 0, validator: 4, block: BLOCK }, V[0]!, GENESIS_HASH);
    expect(certificateError({ ...cert3, sigs: [...cert3.sigs, { validator: 4, sig: v4.sig }] })).toBe(`certificate for height ${H}: unknown validator 4`);
    // the same certificate is fine for a set that has a fifth validator with that key... (5 validators: quorum 4)
    const five = [...validators, { index: 4, hospital: 'hosp-4', key: keys[0]!.publicKey, peerId: 'peer-4-xxxxxxxx', genesisHash: GENESIS_HASH }];
    expect(certificateError({ ...cert3, sigs: [...cert3.sigs, { validator: 4, sig: v4.sig }] }, undefined, five)).toBeNull();
  });

  it('rejects 2 of 4, 1 and 0 signatures', () => {
    expect(certificateError(certificateFromVotes([vote(0), vote(2)]))).toBe(`certificate for height ${H}: 2 signatures, quorum is 3`);
    expect(certificateError(certificateFromVotes([vote(3)]))).toBe(`certificate for height ${H}: 1 signatures, quorum is 3`);
    expect(certificateError({ ...cert3, sigs: [] })).toBe(`certificate for height ${H}: 0 signatures, quorum is 3`);
  });

  it('rejects a certificate for another height or another block than expected', () => {
    expect(certificateError(cert3, { height: H + 1, block: BLOCK })).toBe(`certificate for height ${H}: certifies height ${H}, expected ${H + 1}`);
    expect(certificateError(cert3, { height: H, block: OTHER })).toBe(`certificate for height ${H}: certifies a different block`);
    // a genuine certificate for another block is still not one for this block
    const forOther = certificateFromVotes([0, 1, 2].map((i) => vote(i, { block: OTHER })));
    expect(certificateError(forOther)).toBeNull();
    expect(certificateError(forOther, expected)).toBe(`certificate for height ${H}: certifies a different block`);
  });

  it('rejects a certificate whose block field was swapped after signing', () => {
    expect(certificateError({ ...cert3, block: OTHER })).toBe(`certificate for height ${H}: forged signature of validator 0`);
  });
});

describe('certificateFromVotes', () => {
  it('sorts signatures by validator index and takes height, round and block from the votes', () => {
    const votes = [vote(3, { round: 2 }), vote(0, { round: 2 }), vote(2, { round: 2 })];
    const cert = certificateFromVotes(votes);
    expect(cert.sigs.map((s) => s.validator)).toEqual([0, 2, 3]);
    expect(cert.sigs.map((s) => toHex(s.sig))).toEqual([votes[1]!, votes[2]!, votes[0]!].map((v) => toHex(v.sig)));
    expect(cert).toMatchObject({ height: H, round: 2 });
    expect(toHex(cert.block)).toBe(toHex(BLOCK));
    expect(certificateError(cert, { height: H, block: BLOCK })).toBeNull();
    // the input is not reordered in place
    expect(votes.map((v) => v.validator)).toEqual([3, 0, 2]);
  });

  it('refuses no votes, or nil votes', () => {
    expect(() => certificateFromVotes([])).toThrow(/needs precommits for a block/);
    expect(() => certificateFromVotes([vote(0, { block: null })])).toThrow(/needs precommits for a block/);
  });
});

describe('proposals (checkProposal)', () => {
  const genesis = parseGenesis({
    network: NETWORK,
    time: Date.UTC(2025, 0, 1),
    hospitals: keys.map((k, i) => ({
      id: `hosp-${i}`,
      name: `Hospital ${i}`,
      validatorKey: toHex(k.publicKey),
      peerId: `peer-${i}-xxxxxxxx`,
      admin: { id: `admin-${i}`, signKey: toHex(generateSigningKeyPair().publicKey) },
    })),
  });
  const g0 = genesisBlock(genesis);

  /** An empty block at height 1, round `round`, signed by that round's proposer. */
  function block(round: number, time = g0.header.time + 1_000): Block {
    const header = { ...g0.header, height: 1, round, time, parent: headerHash(g0.header), proposer: proposerIndex(N, 1, round) };
    return { header, sig: signHeader(header, V[header.proposer]!, genesis.hash), txs: [], lastCommit: null };
  }
  const propose = (p: Omit<Proposal, 'sig'>, signer: Signer, network = NETWORK) => signProposal(network, p, signer, genesis.hash);

  it('the proposer of height h, round r is validators[(h + r) mod N]', () => {
    expect([0, 1, 2, 3, 4].map((r) => proposerIndex(N, 1, r))).toEqual([1, 2, 3, 0, 1]);
    expect(proposerIndex(N, 6, 3)).toBe(1);
  });

  it('accepts a proposal signed by the proposer of its round', () => {
    for (const round of [0, 1, 2, 3]) {
      const p = propose({ height: 1, round, validRound: -1, block: block(round), payloads: [] }, V[proposerIndex(N, 1, round)]!);
      expect(checkProposal(p, genesis.validators, NETWORK), `round ${round}`).toBeNull();
    }
  });

  it('accepts a re-proposal in round 2 of a block built in round 0 (validRound 0), signed by round 2’s proposer', () => {
    const p = propose({ height: 1, round: 2, validRound: 0, block: block(0), payloads: [] }, V[proposerIndex(N, 1, 2)]!);
    expect(checkProposal(p, genesis.validators, NETWORK)).toBeNull();
  });

  it('rejects a proposal signed by any other validator, or by an outsider', () => {
    for (let i = 0; i < N; i++) {
      if (i === proposerIndex(N, 1, 0)) continue;
      const p = propose({ height: 1, round: 0, validRound: -1, block: block(0), payloads: [] }, V[i]!);
      expect(checkProposal(p, genesis.validators, NETWORK), `validator ${i}`).toBe('not signed by the proposer of its round');
    }
    const outsider = createSigner(generateSigningKeyPair().secretKey);
    expect(checkProposal(propose({ height: 1, round: 0, validRound: -1, block: block(0), payloads: [] }, outsider), genesis.validators, NETWORK)).toBe(
      'not signed by the proposer of its round',
    );
  });

  it('the signature binds network, round, validRound and the block', () => {
    const p = propose({ height: 1, round: 1, validRound: -1, block: block(1), payloads: [] }, V[proposerIndex(N, 1, 1)]!);
    const bad = 'not signed by the proposer of its round';
    expect(checkProposal(p, genesis.validators, 'othernet')).toBe(bad);
    expect(checkProposal({ ...p, round: 2 }, genesis.validators, NETWORK)).toBe(bad);
    expect(checkProposal({ ...p, validRound: 0 }, genesis.validators, NETWORK)).toBe(bad);
    expect(checkProposal({ ...p, block: block(1, g0.header.time + 2_000) }, genesis.validators, NETWORK)).toBe(bad);
    const sig = Uint8Array.from(p.sig);
    sig[7]! ^= 0x01;
    expect(checkProposal({ ...p, sig }, genesis.validators, NETWORK)).toBe(bad);
    // signed for another network by the right proposer
    const foreign = propose({ height: 1, round: 1, validRound: -1, block: block(1), payloads: [] }, V[proposerIndex(N, 1, 1)]!, 'othernet');
    expect(checkProposal(foreign, genesis.validators, NETWORK)).toBe(bad);
  });

  it('rejects payloads that do not align with the block’s transactions', () => {
    const signer = V[proposerIndex(N, 1, 0)]!;
    const extra = propose({ height: 1, round: 0, validRound: -1, block: block(0), payloads: [null] }, signer);
    expect(checkProposal(extra, genesis.validators, NETWORK)).toBe('payloads do not align with transactions');
    const b = block(0);
    const withTx: Block = { ...b, txs: [utf8('tx-a'), utf8('tx-b')] };
    const short = propose({ height: 1, round: 0, validRound: -1, block: withTx, payloads: [null] }, signer);
    expect(checkProposal(short, genesis.validators, NETWORK)).toBe('payloads do not align with transactions');
    const aligned = propose({ height: 1, round: 0, validRound: -1, block: withTx, payloads: [null, utf8('payload')] }, signer);
    expect(checkProposal(aligned, genesis.validators, NETWORK)).toBeNull();
  });

  it('rejects validRound >= round', () => {
    const signer = V[proposerIndex(N, 1, 1)]!;
    for (const validRound of [1, 2]) {
      const p = propose({ height: 1, round: 1, validRound, block: block(1), payloads: [] }, signer);
      expect(checkProposal(p, genesis.validators, NETWORK), `validRound ${validRound}`).toBe('validRound must precede the round');
    }
    const r0 = propose({ height: 1, round: 0, validRound: 0, block: block(0), payloads: [] }, V[proposerIndex(N, 1, 0)]!);
    expect(checkProposal(r0, genesis.validators, NETWORK)).toBe('validRound must precede the round');
  });

  it('rejects a proposal whose height differs from its block', () => {
    const p = propose({ height: 2, round: 0, validRound: -1, block: block(0), payloads: [] }, V[proposerIndex(N, 2, 0)]!);
    expect(checkProposal(p, genesis.validators, NETWORK)).toBe('proposal height differs from its block');
  });
});
