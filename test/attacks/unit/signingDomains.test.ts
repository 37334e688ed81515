import { describe, expect, it } from 'vitest';
import { headerHash, signHeader, verifyHeaderSignature } from '../../../src/consensus/block.js';
import { buildBlock, validateBlock } from '../../../src/consensus/blockExecution.js';
import { checkProposal, signProposal } from '../../../src/consensus/proposal.js';
import { proposerIndex } from '../../../src/consensus/tendermint.js';
import { signVote, verifyCertificate, verifyVote, type UnsignedVote } from '../../../src/consensus/votes.js';
import { concatBytes, toHex, utf8 } from '../../../src/records/crypto/bytes.js';
import { verifySignature } from '../../../src/records/crypto/signature.js';
import { SIGNING_TAGS } from '../../../src/records/crypto/signingDomain.js';
import { encodeCanonical } from '../../../src/records/encoding.js';
import { isMedLedgerError, MedLedgerError } from '../../../src/records/errors.js';
import { newRequestNonce, REQUEST_MAX_SKEW_MS, requestSigningMessage, type SignedRequestFields } from '../../../src/records/requestAuth.js';
import { decodeTx, signTx, txSigningMessage } from '../../../src/records/tx/codec.js';
import { MAX_REQUEST_NONCES, RequestNonces } from '../../../src/node/api/requestNonces.js';
import { Mempool } from '../../../src/node/mempool.js';
import { BoundedTxCache } from '../../../src/node/txCache.js';
import { admitTx } from '../../../src/node/txAdmission.js';
import { ChainBuilder } from '../../support/chainBuilder.js';

/**
 * Issue 9, item 2: every signature is bound to one network (its genesis hash), and signed view requests to one
 * node and one use. Two networks here share every key — validators and users — and even the network name:
 * "test" is a twin of "production" whose genesis differs only in its time. Whatever is signed for one must not
 * verify on the other. On the code before this change every check below passed on both networks.
 */

function networks() {
  const prod = ChainBuilder.create();
  const test = prod.twin();
  expect(test.genesis.file.network).toBe(prod.genesis.file.network);
  expect(toHex(test.genesis.hash)).not.toBe(toHex(prod.genesis.hash));
  expect(test.genesis.validators.map((v) => toHex(v.key))).toEqual(prod.genesis.validators.map((v) => toHex(v.key)));
  return { prod, test };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof MedLedgerError) return err.code;
    throw err;
  }
  return 'ok';
}

describe('transactions are signed for one network', () => {
  const { prod, test } = networks();
  // The same patient, with the same key, registered on both networks.
  prod.finalize([prod.registerPatient('pat-1', 'hosp-a')]);
  test.finalize([test.registerPatient('pat-1', 'hosp-a')]);
  expect(toHex(test.state.get('users', 'pat-1')!.signKey)).toBe(toHex(prod.state.get('users', 'pat-1')!.signKey));
  // Signed on the test network, with a nonce production has not seen yet either.
  test.finalize([test.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} })]);
  const fromTest = test.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} });

  it('decodes with its own genesis hash and fails with the other one', () => {
    expect(decodeTx(fromTest.bytes, { genesisHash: test.genesis.hash }).idHex).toBe(fromTest.idHex);
    expect(codeOf(() => decodeTx(fromTest.bytes, { genesisHash: prod.genesis.hash }))).toBe('BAD_SIGNATURE');
  });

  it("is refused by the other network's admission (the node's API and gossip path)", () => {
    const admit = (chain: ChainBuilder) =>
      codeOf(() =>
        admitTx(
          {
            ledger: { state: chain.state, height: chain.height, txCache: new BoundedTxCache(), genesis: chain.genesis },
            mempool: new Mempool({ maxTxs: 100, maxBytes: 1 << 20 }),
          },
          fromTest.bytes,
          undefined,
          { now: fromTest.tx.time },
        ),
      );
    expect(admit(prod)).toBe('BAD_SIGNATURE');
    expect(admit(test)).toBe('ok');
  });

  it("makes a block of the other network invalid (every validator's re-execution)", () => {
    const proposer = proposerIndex(4, prod.height + 1, 0);
    const { executed } = buildBlock({
      genesis: prod.genesis,
      parent: prod.head,
      lastCommit: prod.blocks.at(-1)!.cert,
      state: prod.state,
      candidates: [fromTest],
      round: 0,
      time: prod.clock,
      signer: prod.validators[proposer]!.signer,
    });
    expect(executed.txs).toHaveLength(1); // execution alone does not look at signatures: the state accepts it
    expect(() => validateBlock(executed.block, prod.head, prod.state, { genesis: prod.genesis })).toThrow(
      /transaction 0: transaction [0-9a-f]{12} has an invalid signature/,
    );
  });

  it('a signature without the genesis hash (the v1 message: tag and id only) verifies nowhere', () => {
    const v1 = prod.keys('pat-1').signer.sign(concatBytes(utf8('medledger/tx/v1\0'), fromTest.id));
    const bytes = encodeCanonical({ tx: fromTest.tx, sig: v1 });
    expect(codeOf(() => decodeTx(bytes, { genesisHash: prod.genesis.hash }))).toBe('BAD_SIGNATURE');
    expect(codeOf(() => decodeTx(bytes, { genesisHash: test.genesis.hash }))).toBe('BAD_SIGNATURE');
  });

  it('the message is tag ‖ genesis hash ‖ id', () => {
    const message = txSigningMessage(test.genesis.hash, fromTest.id);
    expect(toHex(message)).toBe(toHex(concatBytes(SIGNING_TAGS.tx, test.genesis.hash, fromTest.id)));
    expect(verifySignature(fromTest.tx.key, message, fromTest.sig)).toBe(true);
    expect(() => signTx(fromTest.tx, prod.keys('pat-1').signer, new Uint8Array(31))).toThrow(/32 bytes/);
  });
});

describe('votes, certificates, proposals and block headers are signed for one genesis', () => {
  const { prod, test } = networks();
  const b1 = test.finalize([]);
  const network = test.genesis.file.network;
  const hash = b1.executed.hash;

  it('a vote of the test network does not verify against the same validators of production', () => {
    const vote: UnsignedVote = { type: 'prevote', network, height: 1, round: 0, validator: 2, block: hash };
    const signed = signVote(vote, test.validators[2]!.signer, test.genesis.hash);
    expect(verifyVote(signed, test.genesis.validators)).toBe(true);
    expect(verifyVote(signed, prod.genesis.validators)).toBe(false);
  });

  it('a commit certificate of the test network does not certify anything on production', () => {
    const expected = { height: 1, block: hash };
    expect(() => verifyCertificate(b1.cert, test.genesis.validators, network, expected)).not.toThrow();
    expect(() => verifyCertificate(b1.cert, prod.genesis.validators, network, expected)).toThrow(/forged signature of validator/);
  });

  it("a proposal of the test network is not its proposer's on production", () => {
    const round = 1;
    const signer = test.validators[proposerIndex(4, 1, round)]!.signer;
    const p = signProposal(network, { height: 1, round, validRound: -1, block: b1.executed.block, payloads: [] }, signer, test.genesis.hash);
    expect(checkProposal(p, test.genesis.validators, network)).toBeNull();
    expect(checkProposal(p, prod.genesis.validators, network)).toBe('not signed by the proposer of its round');
  });

  it("a block header signed on the test network is not signed by production's proposer", () => {
    const { header, sig } = b1.executed.block;
    expect(verifyHeaderSignature(header, sig, test.genesis.validators[header.proposer]!)).toBe(true);
    expect(verifyHeaderSignature(header, sig, prod.genesis.validators[header.proposer]!)).toBe(false);
    // Re-signed under production's genesis by the same key, the same header verifies there and not here.
    const resigned = signHeader(header, test.validators[header.proposer]!.signer, prod.genesis.hash);
    expect(verifyHeaderSignature(header, resigned, prod.genesis.validators[header.proposer]!)).toBe(true);
    expect(verifyHeaderSignature(header, resigned, test.genesis.validators[header.proposer]!)).toBe(false);
    expect(toHex(headerHash(header))).toBe(toHex(hash));
  });
});

describe('signed view requests name their node, network, time and a nonce', () => {
  const { prod, test } = networks();
  const signer = prod.keys('admin-a').signer;
  const base: SignedRequestFields = { method: 'GET', path: '/v1/me', time: Date.UTC(2025, 0, 1), nonce: newRequestNonce(), node: '12D3KooWNodeA' };
  const sig = signer.sign(requestSigningMessage(prod.genesis.hash, base));

  it('the signature verifies for exactly the request it was made for', () => {
    expect(verifySignature(signer.publicKey, requestSigningMessage(prod.genesis.hash, base), sig)).toBe(true);
    const others: [string, Uint8Array, SignedRequestFields][] = [
      ['another node', prod.genesis.hash, { ...base, node: '12D3KooWNodeB' }],
      ['another network', test.genesis.hash, base],
      ['another nonce', prod.genesis.hash, { ...base, nonce: newRequestNonce() }],
      ['another time', prod.genesis.hash, { ...base, time: base.time + 1 }],
      ['another path', prod.genesis.hash, { ...base, path: '/v1/patients/pat-1/keys' }],
      ['another method', prod.genesis.hash, { ...base, method: 'POST' }],
    ];
    for (const [what, genesisHash, fields] of others)
      expect(verifySignature(signer.publicKey, requestSigningMessage(genesisHash, fields), sig), what).toBe(false);
  });

  it('nonces are 16 random bytes of hex, different every time', () => {
    const nonces = new Set(Array.from({ length: 100 }, () => newRequestNonce()));
    expect(nonces.size).toBe(100);
    for (const n of nonces) expect(n).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('the node remembers the nonces of its freshness window (RequestNonces)', () => {
  const T = 1_000_000;

  it('refuses a nonce a second time within the window, for the same user only', () => {
    const nonces = new RequestNonces();
    nonces.use('pat-1', 'aa'.repeat(16), T, T);
    expect(codeOf(() => nonces.use('pat-1', 'aa'.repeat(16), T, T + 1))).toBe('REPLAY');
    expect(codeOf(() => nonces.use('pat-1', 'aa'.repeat(16), T, T + REQUEST_MAX_SKEW_MS))).toBe('REPLAY');
    expect(codeOf(() => nonces.use('pat-2', 'aa'.repeat(16), T, T + 1))).toBe('ok');
  });

  it('keeps a nonce until its request could no longer pass the time check, then drops it', () => {
    const nonces = new RequestNonces();
    // A request dated up to the window ahead of the node's clock stays acceptable that much longer.
    nonces.use('pat-1', 'bb'.repeat(16), T + REQUEST_MAX_SKEW_MS, T);
    expect(codeOf(() => nonces.use('pat-1', 'bb'.repeat(16), T + REQUEST_MAX_SKEW_MS, T + 2 * REQUEST_MAX_SKEW_MS))).toBe('REPLAY');
    nonces.use('pat-1', 'cc'.repeat(16), T, T);
    expect(nonces.size).toBe(2);
    nonces.use('pat-1', 'dd'.repeat(16), T + 3 * REQUEST_MAX_SKEW_MS, T + 3 * REQUEST_MAX_SKEW_MS);
    expect(nonces.size).toBe(1);
  });

  it(`is bounded (${MAX_REQUEST_NONCES} by default): when full of live nonces it refuses new requests with UNAVAILABLE (503), never forgets one`, () => {
    expect(new RequestNonces().max).toBe(100_000);
    const nonces = new RequestNonces(3);
    for (const n of ['01', '02', '03']) nonces.use('pat-1', n.repeat(16), T, T);
    let err: unknown;
    try {
      nonces.use('pat-1', '04'.repeat(16), T, T + 10);
    } catch (e) {
      err = e;
    }
    expect(isMedLedgerError(err, 'UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/retry after 1 s/);
    // Every nonce it held is still refused.
    for (const n of ['01', '02', '03']) expect(codeOf(() => nonces.use('pat-1', n.repeat(16), T, T + 20))).toBe('REPLAY');
    // Once their window has passed, room is made again.
    expect(codeOf(() => nonces.use('pat-1', '04'.repeat(16), T + 2 * REQUEST_MAX_SKEW_MS, T + 2 * REQUEST_MAX_SKEW_MS))).toBe('ok');
    expect(nonces.size).toBe(1);
  });

  it('when full, sweeps the whole map (not only the oldest entries) for expired nonces', () => {
    const nonces = new RequestNonces(3);
    nonces.use('pat-1', '01'.repeat(16), T + REQUEST_MAX_SKEW_MS, T); // first in, last to expire
    nonces.use('pat-1', '02'.repeat(16), T - REQUEST_MAX_SKEW_MS + 5, T);
    nonces.use('pat-1', '03'.repeat(16), T, T);
    // At T + 10 the second one has expired though it is not at the front.
    expect(codeOf(() => nonces.use('pat-1', '04'.repeat(16), T + 10, T + 10))).toBe('ok');
    expect(codeOf(() => nonces.use('pat-1', '01'.repeat(16), T + 10, T + 11))).toBe('REPLAY');
  });
});
