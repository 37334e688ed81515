import { describe, expect, it } from 'vitest';
import { buildProof, verifyProof, type InclusionProof } from '../../src/consensus/proof.js';
import { parseGenesis } from '../../src/consensus/genesis.js';
import { fromBase64, fromHex, toBase64, toHex } from '../../src/records/crypto/bytes.js';
import { ChainBuilder, type FinalBlock } from '../support/chainBuilder.js';

/**
 * Inclusion proofs (issue #5) built from a real certified chain (real keys, real signed transactions, real
 * precommit certificates) and checked offline against the genesis only. A proof with any single byte
 * changed — in the transaction, an audit path, the event, the header, the proposer signature or the
 * certificate — fails, and says why.
 */
const chain = ChainBuilder.create();
chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), chain.registerPatient('pat-2', 'hosp-b'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
const rec = chain.createRecord('pat-1', 'pat-1', 'BP 120/80, 37.2 C');
chain.finalize([rec.tx]);
// A block of several transactions, among them an allowed read and a denied one (doc-1 has no grant).
const read = chain.readRecord('pat-1', 'pat-1', rec.record);
const denied = chain.readRecord('doc-1', 'pat-1', rec.record);
const fillers = [chain.registerPatient('pat-3', 'hosp-c'), chain.registerPatient('pat-4', 'hosp-d'), chain.registerPatient('pat-5', 'hosp-a')];
const block: FinalBlock = chain.finalize([fillers[0]!, read, fillers[1]!, denied, fillers[2]!]);

function proofOf(b: FinalBlock, index: number): InclusionProof {
  return buildProof({ genesis: chain.genesis, block: b.executed.block, index, eventBytes: b.executed.eventBytes, cert: b.cert });
}

/** The proof as a stranger receives it: JSON text, parsed again. */
const roundTrip = (p: InclusionProof): InclusionProof => JSON.parse(JSON.stringify(p)) as InclusionProof;

function flipBase64(value: string, at: number): string {
  const bytes = fromBase64(value);
  bytes[at % bytes.length]! ^= 0x01;
  return toBase64(bytes);
}

function flipHex(value: string, at: number): string {
  const bytes = fromHex(value);
  bytes[at % bytes.length]! ^= 0x80;
  return toHex(bytes);
}

describe('inclusion proofs', () => {
  it('proves an allowed read and a denied attempt, with what a third party needs to read them', () => {
    const ok = verifyProof(roundTrip(proofOf(block, 1)), chain.genesis);
    expect(ok.ok).toBe(true);
    if (!ok.ok) return;
    expect(ok.claim).toMatchObject({
      tx: read.idHex,
      type: 'readRecord',
      action: 'R',
      outcome: 'success',
      actor: 'pat-1',
      patient: 'pat-1',
      record: rec.record,
      height: block.executed.block.header.height,
      index: 1,
    });
    expect(ok.claim.certifiedBy).toHaveLength(3);
    expect(ok.checks.join('\n')).toMatch(/is final: 3 of 4 validator signatures/);

    const no = verifyProof(roundTrip(proofOf(block, 3)), chain.genesis);
    expect(no.ok).toBe(true);
    if (no.ok) expect(no.claim).toMatchObject({ tx: denied.idHex, actor: 'doc-1', role: 'doctor', outcome: 'denied', reason: expect.any(String) });
  });

  it('proves every position of a block (odd-sized tree), and a block with one transaction', () => {
    expect(block.executed.txs).toHaveLength(5);
    for (let i = 0; i < block.executed.txs.length; i++) expect(verifyProof(roundTrip(proofOf(block, i)), chain.genesis).ok, `position ${i}`).toBe(true);
    const single = chain.blocks[1]!;
    const p = proofOf(single, 0);
    expect(p.txPath).toEqual([]);
    expect(verifyProof(p, chain.genesis).ok).toBe(true);
  });

  it('fails with a reason when any single byte of the transaction, the paths, the event, the header or a signature changes', () => {
    const good = proofOf(block, 3);
    const cases: [string, (p: InclusionProof, at: number) => void, RegExp][] = [
      ['tx', (p, at) => (p.tx = flipBase64(p.tx, at)), /transaction/],
      ['txPath', (p, at) => (p.txPath[Math.floor(at / 32)] = flipHex(p.txPath[Math.floor(at / 32)]!, at % 32)), /transaction is not in the block/],
      ['event', (p, at) => (p.event = flipBase64(p.event, at)), /audit event/],
      ['eventPath', (p, at) => (p.eventPath[Math.floor(at / 32)] = flipHex(p.eventPath[Math.floor(at / 32)]!, at % 32)), /audit event is not in the block/],
      ['header', (p, at) => (p.header = flipBase64(p.header, at)), /header|certificate/],
      ['proposerSig', (p, at) => (p.proposerSig = flipBase64(p.proposerSig, at)), /proposer signature/],
      ['certificate', (p, at) => (p.certificate = flipBase64(p.certificate, at)), /certificate/],
    ];
    for (const [field, mutate, reason] of cases) {
      // Every byte: of each 32-byte hash of the paths, of the base64 fields once decoded.
      const length = field.endsWith('Path') ? good[field as 'txPath'].length * 32 : fromBase64(good[field as 'tx']).length;
      expect(length, field).toBeGreaterThan(0);
      for (let at = 0; at < length; at++) {
        const bad = roundTrip(good);
        mutate(bad, at);
        const verdict = verifyProof(bad, chain.genesis);
        expect(verdict.ok, `${field} byte ${at}`).toBe(false);
        if (!verdict.ok) expect(verdict.reason, `${field} byte ${at}`).toMatch(reason);
      }
    }
  });

  it('rejects a readable claim that says something the signed bytes do not', () => {
    const bad = roundTrip(proofOf(block, 3));
    bad.claim.outcome = 'success';
    const verdict = verifyProof(bad, chain.genesis);
    expect(verdict).toMatchObject({ ok: false, reason: expect.stringContaining('"outcome"') });
    const moved = roundTrip(proofOf(block, 1));
    moved.index = 2;
    expect(verifyProof(moved, chain.genesis).ok).toBe(false);
  });

  it("rejects a proof against another network's genesis, and a proof whose certificate lacks a quorum", () => {
    const other = ChainBuilder.create({ network: 'medledger-other' });
    expect(verifyProof(proofOf(block, 1), other.genesis)).toMatchObject({ ok: false, reason: expect.stringMatching(/network/) });
    // Same network name, other validators: the certificate's signatures are not theirs.
    const impostor = parseGenesis({ ...other.genesis.file, network: chain.genesis.file.network });
    const v = verifyProof({ ...proofOf(block, 1), genesis: toHex(impostor.hash) }, impostor);
    expect(v).toMatchObject({ ok: false, reason: expect.stringMatching(/certificate/) });
    const thin = { ...block, cert: { ...block.cert, sigs: block.cert.sigs.slice(0, 2) } };
    expect(verifyProof(proofOf(thin, 1), chain.genesis)).toMatchObject({ ok: false, reason: expect.stringMatching(/quorum/) });
    expect(verifyProof({ nonsense: true }, chain.genesis)).toMatchObject({ ok: false, reason: expect.stringMatching(/not a MedLedger inclusion proof/) });
  });
});
