import { beforeEach, describe, expect, it } from 'vitest';
import { concatBytes, utf8 } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import { isMedLedgerError, MedLedgerError, type ErrorCode } from '../../src/records/errors.js';
import { TX_MAX_AGE_MS, TX_MAX_FUTURE_MS, type ApplyResult } from '../../src/records/state/apply.js';
import { decodeTx, parseUnsignedTx, signTx, txId, txSigningMessage } from '../../src/records/tx/codec.js';
import { MAX_TX_BYTES, type Tx, type UnsignedTx } from '../../src/records/tx/types.js';
import { createLedger, randomPayloadHash, TEST_GENESIS_HASH, type Ledger } from '../support/ledgerFixture.js';

/**
 * Validity: which transactions may be in a block at all. An invalid transaction is not a denial — it leaves
 * no audit event and no trace in the state — and the codec rejects bytes that are not one canonical,
 * well-formed, correctly signed transaction.
 */

function expectInvalid(ledger: Ledger, result: ApplyResult, code: ErrorCode, before = ledger.snapshot()): void {
  expect(result.valid, result.valid ? `expected ${code}, got a valid transaction (${result.event.outcome} ${result.event.reason ?? ''})` : '').toBe(false);
  if (!result.valid) {
    expect(result.error).toBeInstanceOf(MedLedgerError);
    expect(result.error.code).toBe(code);
  }
  expect(ledger.snapshot()).toEqual(before);
}

function expectCode(fn: () => unknown, codes: ErrorCode | ErrorCode[]): MedLedgerError {
  const allowed = Array.isArray(codes) ? codes : [codes];
  try {
    fn();
  } catch (err) {
    if (!isMedLedgerError(err)) throw err;
    expect(allowed).toContain(err.code);
    return err;
  }
  throw new Error(`expected a MedLedgerError ${allowed.join(' or ')}, nothing was thrown`);
}

/** Signs any object as a transaction, bypassing signTx's shape check (what a hostile client could send). */
function signRaw(ledger: Ledger, signerName: string, unsigned: Record<string, unknown>): Uint8Array {
  const id = sha256(encodeCanonical(unsigned));
  const sig = ledger.keys(signerName).signer.sign(txSigningMessage(TEST_GENESIS_HASH, id));
  return encodeCanonical({ tx: unsigned, sig });
}

const P = 'pat-1';
const D1 = 'doc-1';

describe('apply: invalid transactions are not includable', () => {
  let ledger: Ledger;
  let record: string;
  beforeEach(() => {
    ledger = createLedger();
    ledger.registerPatient(P, 'hosp-a');
    ledger.enrol('admin-a', D1, 'doctor');
    ledger.grant(P, D1);
    record = ledger.createRecord(P, P);
  });
  const read = () => ({ type: 'readRecord', patient: P, record, body: {} }) as const;

  describe('REPLAY', () => {
    it('the same transaction applied twice', () => {
      const tx = ledger.sign(D1, read());
      const first = ledger.apply(tx);
      expect(first.valid && first.event.outcome).toBe('success');
      const before = ledger.snapshot();
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY', before);
    });

    it('the same transaction applied twice, a state-changing one', () => {
      const tx = ledger.sign(P, { type: 'revokeAccess', patient: P, body: { grantee: D1 } });
      expect(ledger.apply(tx).valid).toBe(true);
      ledger.grant(P, D1);
      // Replaying the old revoke must not revoke the new grant.
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY');
      expect(ledger.user(P).grants?.[D1]).toBeDefined();
    });

    it('a lower nonce, and an equal nonce with different content', () => {
      expect(ledger.submit(D1, { ...read(), nonce: 10 }).valid).toBe(true);
      expect(ledger.user(D1).lastNonce).toBe(10);
      expectInvalid(ledger, ledger.submit(D1, { ...read(), nonce: 9 }), 'REPLAY');
      expectInvalid(ledger, ledger.submit(D1, { ...read(), nonce: 3 }), 'REPLAY');
      expectInvalid(ledger, ledger.submit(D1, { type: 'listRecords', patient: P, body: {}, nonce: 10 }), 'REPLAY');
      // Gaps are fine: the nonce must only grow.
      const next = ledger.submit(D1, { ...read(), nonce: 11 });
      expect(next.valid).toBe(true);
    });

    it('transactions signed in one order and applied in another: the later nonce wins, the earlier is stale', () => {
      const a = ledger.sign(D1, read());
      const b = ledger.sign(D1, read());
      expect(b.tx.nonce).toBeGreaterThan(a.tx.nonce);
      expect(ledger.apply(b).valid).toBe(true);
      expectInvalid(ledger, ledger.apply(a), 'REPLAY');
    });

    it('a denied transaction consumed its nonce: replayed, it is REPLAY too', () => {
      ledger.enrol('admin-b', 'doc-2', 'doctor');
      const tx = ledger.sign('doc-2', read());
      const first = ledger.apply(tx);
      expect(first.valid && first.event.reason).toBe('no-grant');
      expect(ledger.user('doc-2').lastNonce).toBe(tx.tx.nonce);
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY');
      // Even once the doctor is granted, the old denied attempt cannot be replayed into a success.
      ledger.grant(P, 'doc-2');
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY');
    });

    it('a registration replayed', () => {
      const tx = ledger.sign('pat-2', { type: 'registerPatient', via: 'hosp-b', body: { encKey: ledger.keys('pat-2').encKey } });
      expect(ledger.apply(tx).valid).toBe(true);
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY');
      // Also after the patient moved on to higher nonces.
      ledger.must('pat-2', { type: 'listRecords', patient: 'pat-2', body: {} });
      expectInvalid(ledger, ledger.apply(tx), 'REPLAY');
    });
  });

  it('KEY_MISMATCH: signed by another key than the actor’s', () => {
    // A validly signed transaction whose `key` is not the one the state holds for the actor.
    const tx = ledger.sign(D1, read(), { signWith: 'mallory' });
    expect(decodeTx(tx.bytes, { genesisHash: TEST_GENESIS_HASH }).idHex).toBe(tx.idHex); // the signature itself verifies
    expectInvalid(ledger, ledger.apply(tx), 'KEY_MISMATCH');
    // Another existing user's key does not do either.
    expectInvalid(ledger, ledger.submit(D1, read(), { signWith: P }), 'KEY_MISMATCH');
    expectInvalid(ledger, ledger.submit('admin-a', { type: 'deactivateUser', body: { user: D1 } }, { signWith: 'admin-b' }), 'KEY_MISMATCH');
    expect(ledger.user(D1).active).toBe(true);
  });

  it('UNKNOWN_ACTOR: a user the state does not know', () => {
    expectInvalid(ledger, ledger.submit('nobody', read()), 'UNKNOWN_ACTOR');
    expectInvalid(ledger, ledger.submit('nobody', { type: 'queryAudit', via: 'hosp-a', body: { filter: { hospital: 'hosp-a' } } }), 'UNKNOWN_ACTOR');
  });

  it('USER_EXISTS: registering an id that is taken', () => {
    // Another key claiming an existing patient's, doctor's or admin's id.
    for (const id of [P, D1, 'admin-a']) {
      const keys = ledger.keys(`${id}-impostor`);
      expectInvalid(ledger, ledger.submit(id, { type: 'registerPatient', via: 'hosp-a', body: { encKey: keys.encKey } }, { signWith: keys }), 'USER_EXISTS');
    }
    // The owner's own key with a fresh nonce is not a replay, but the id is still taken.
    expectInvalid(ledger, ledger.submit(P, { type: 'registerPatient', via: 'hosp-a', body: { encKey: ledger.keys(P).encKey } }), 'USER_EXISTS');
    expect(ledger.user(P).hospital).toBe('hosp-a');
  });

  describe('BAD_TIME: the signed time must lie in the window of the block time', () => {
    it('too old', () => {
      const blockTime = ledger.clock;
      expectInvalid(ledger, ledger.submit(D1, { ...read(), time: blockTime - TX_MAX_AGE_MS - 1 }, { ctx: { blockTime } }), 'BAD_TIME');
      expectInvalid(ledger, ledger.submit(D1, { ...read(), time: 0 }, { ctx: { blockTime } }), 'BAD_TIME');
    });

    it('too far in the future', () => {
      const blockTime = ledger.clock;
      expectInvalid(ledger, ledger.submit(D1, { ...read(), time: blockTime + TX_MAX_FUTURE_MS + 1 }, { ctx: { blockTime } }), 'BAD_TIME');
      expectInvalid(
        ledger,
        ledger.submit(
          P,
          { type: 'registerPatient', via: 'hosp-a', time: blockTime + 3_600_000, body: { encKey: ledger.keys(P).encKey } },
          { ctx: { blockTime } },
        ),
        'BAD_TIME',
      );
    });

    it('the edges of the window are valid', () => {
      const blockTime = ledger.clock;
      expect(ledger.submit(D1, { ...read(), time: blockTime - TX_MAX_AGE_MS }, { ctx: { blockTime } }).valid).toBe(true);
      expect(ledger.submit(D1, { ...read(), time: blockTime + TX_MAX_FUTURE_MS }, { ctx: { blockTime } }).valid).toBe(true);
    });

    it('the same transaction is valid or not depending only on the block time', () => {
      const tx = ledger.sign(D1, read());
      expectInvalid(ledger, ledger.apply(tx, { blockTime: tx.tx.time + TX_MAX_AGE_MS + 1 }), 'BAD_TIME');
      expectInvalid(ledger, ledger.apply(tx, { blockTime: tx.tx.time - TX_MAX_FUTURE_MS - 1 }), 'BAD_TIME');
      expect(ledger.apply(tx, { blockTime: tx.tx.time + 1 }).valid).toBe(true);
    });
  });

  it('an unknown hospital in `via` is MALFORMED', () => {
    expectInvalid(ledger, ledger.submit(D1, { ...read(), via: 'hosp-z' }), 'MALFORMED');
    expectInvalid(ledger, ledger.submit('pat-9', { type: 'registerPatient', via: 'hosp-z', body: { encKey: ledger.keys('pat-9').encKey } }), 'MALFORMED');
    expect(ledger.state.get('users', 'pat-9')).toBeUndefined();
  });

  it('an invalid transaction consumes no nonce: the same nonce is usable afterwards', () => {
    const nonce = ledger.nextNonce(D1);
    expectInvalid(ledger, ledger.submit(D1, { ...read(), nonce, via: 'hosp-z' }), 'MALFORMED');
    expect(ledger.user(D1).lastNonce).toBe(nonce - 1);
    const ok = ledger.submit(D1, { ...read(), nonce });
    expect(ok.valid && ok.event.outcome).toBe('success');
  });
});

describe('codec', () => {
  let ledger: Ledger;
  let tx: Tx;
  beforeEach(() => {
    ledger = createLedger();
    ledger.registerPatient(P, 'hosp-a');
    tx = ledger.sign(P, { type: 'createRecord', patient: P, record: 'rec-0123456789abcdef', body: { recipients: [P] } });
  });

  it('decodes its own encoding to the same transaction', () => {
    const back = decodeTx(tx.bytes, { genesisHash: TEST_GENESIS_HASH });
    expect(back.idHex).toBe(tx.idHex);
    expect(back.tx).toEqual(tx.tx);
    expect(back.sig).toEqual(tx.sig);
    expect(back.bytes).toEqual(tx.bytes);
  });

  it('is deterministic: the same transaction encodes to the same bytes and id twice', () => {
    const again = signTx(tx.tx, ledger.keys(P).signer, TEST_GENESIS_HASH);
    expect(again.bytes).toEqual(tx.bytes);
    expect(again.idHex).toBe(tx.idHex);
    // Key insertion order does not matter, nor does an explicit undefined optional field.
    const reordered = Object.fromEntries(Object.entries(tx.tx).reverse()) as UnsignedTx;
    expect(encodeCanonical(reordered)).toEqual(encodeCanonical(tx.tx));
    expect(txId(reordered)).toEqual(tx.id);
    const read = { ...tx.tx, type: 'readRecord', payload: undefined, body: { version: undefined } } as unknown as UnsignedTx;
    const readTx = signTx(read, ledger.keys(P).signer, TEST_GENESIS_HASH);
    expect(readTx.bytes).toEqual(signTx({ ...read, body: {} } as unknown as UnsignedTx, ledger.keys(P).signer, TEST_GENESIS_HASH).bytes);
    // The id is SHA-256 of the canonical unsigned transaction.
    expect(tx.id).toEqual(sha256(encodeCanonical(tx.tx)));
  });

  it('different content gives a different id', () => {
    const other = signTx({ ...tx.tx, nonce: tx.tx.nonce + 1 }, ledger.keys(P).signer, TEST_GENESIS_HASH);
    expect(other.idHex).not.toBe(tx.idHex);
  });

  it('a tampered signature is BAD_SIGNATURE', () => {
    const sigAt = indexOf(tx.bytes, tx.sig);
    const bytes = tx.bytes.slice();
    bytes[sigAt + 10]! ^= 0x01;
    expectCode(() => decodeTx(bytes, { genesisHash: TEST_GENESIS_HASH }), 'BAD_SIGNATURE');
  });

  it('a tampered field that still parses is BAD_SIGNATURE', () => {
    // Rename the patient in place: "pat-1" → "pat-7"; the structure stays valid, the signature does not.
    const at = indexOf(tx.bytes, utf8('pat-1'));
    const bytes = tx.bytes.slice();
    bytes[at + 4] = '7'.charCodeAt(0);
    const err = expectCode(() => decodeTx(bytes, { genesisHash: TEST_GENESIS_HASH }), 'BAD_SIGNATURE');
    expect(err.message).toMatch(/invalid signature/);
  });

  it('a single flipped bit anywhere is rejected as BAD_SIGNATURE or MALFORMED', () => {
    let badSignature = 0;
    for (let i = 0; i < tx.bytes.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bytes = tx.bytes.slice();
        bytes[i]! ^= bit;
        const err = expectCode(() => decodeTx(bytes, { genesisHash: TEST_GENESIS_HASH }), ['BAD_SIGNATURE', 'MALFORMED']);
        if (err.code === 'BAD_SIGNATURE') badSignature++;
      }
    }
    expect(badSignature).toBeGreaterThan(0);
  });

  it('decodes to the id signTx computed, and a tampered field breaks the signature', () => {
    expect(decodeTx(tx.bytes, { genesisHash: TEST_GENESIS_HASH }).idHex).toBe(tx.idHex);
    const at = indexOf(tx.bytes, utf8('pat-1'));
    const bytes = tx.bytes.slice();
    bytes[at + 4] = '7'.charCodeAt(0);
    expect(decodeTx(bytes, { verify: false }).idHex).not.toBe(tx.idHex);
    expectCode(() => decodeTx(bytes, { genesisHash: TEST_GENESIS_HASH }), 'BAD_SIGNATURE');
  });

  it('truncated or extended bytes are MALFORMED', () => {
    expectCode(() => decodeTx(tx.bytes.subarray(0, tx.bytes.length - 1), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    expectCode(() => decodeTx(concatBytes(tx.bytes, Uint8Array.of(0x00)), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    expectCode(() => decodeTx(new Uint8Array(0), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    expectCode(() => decodeTx(utf8('{"tx":{},"sig":""}'), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
  });

  it('non-canonical CBOR is MALFORMED, even when it means the same value', () => {
    expect(tx.bytes[0]).toBe(0xa2); // map(2), minimal form
    // The same map with a non-minimal length header.
    expectCode(() => decodeTx(concatBytes(Uint8Array.of(0xb8, 0x02), tx.bytes.subarray(1)), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    // The same entries, keys out of canonical order (sig before tx).
    const swapped = concatBytes(Uint8Array.of(0xa2), encodeCanonical('sig'), encodeCanonical(tx.sig), encodeCanonical('tx'), encodeCanonical(tx.tx));
    const err = expectCode(() => decodeTx(swapped, { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    expect(err.message).toMatch(/canonical/);
    // An indefinite-length map.
    const indefinite = concatBytes(Uint8Array.of(0xbf), tx.bytes.subarray(1), Uint8Array.of(0xff));
    expectCode(() => decodeTx(indefinite, { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    // Duplicate keys.
    const dup = concatBytes(
      Uint8Array.of(0xa3),
      encodeCanonical('tx'),
      encodeCanonical(tx.tx),
      encodeCanonical('sig'),
      encodeCanonical(tx.sig),
      encodeCanonical('sig'),
      encodeCanonical(tx.sig),
    );
    expectCode(() => decodeTx(dup, { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
  });

  it('oversized input is TOO_LARGE before it is parsed', () => {
    expectCode(() => decodeTx(new Uint8Array(MAX_TX_BYTES + 1), { genesisHash: TEST_GENESIS_HASH }), 'TOO_LARGE');
    const padded = encodeCanonical({ tx: tx.tx, sig: tx.sig, pad: 'x'.repeat(MAX_TX_BYTES) });
    expect(padded.length).toBeGreaterThan(MAX_TX_BYTES);
    expectCode(() => decodeTx(padded, { genesisHash: TEST_GENESIS_HASH }), 'TOO_LARGE');
    // At the limit it is parsed (and here rejected for what it is, not for its size).
    const atLimit = encodeCanonical({ tx: tx.tx, sig: tx.sig, pad: 'x'.repeat(MAX_TX_BYTES - tx.bytes.length - 10) });
    expect(atLimit.length).toBeLessThanOrEqual(MAX_TX_BYTES);
    expectCode(() => decodeTx(atLimit, { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
  });

  describe('wrong fields are MALFORMED, whether signed by signTx or sent raw', () => {
    const base = (): Record<string, unknown> => ({ ...tx.tx });
    const cases: [string, (t: Record<string, unknown>) => Record<string, unknown>][] = [
      ['an unknown body field', (t) => ({ ...t, body: { recipients: [P], extra: 1 } })],
      ['a missing body field', (t) => ({ ...t, body: {} })],
      ['a body field of the wrong type', (t) => ({ ...t, body: { recipients: P } })],
      ['an empty recipient list', (t) => ({ ...t, body: { recipients: [] } })],
      ['a bad record id', (t) => ({ ...t, record: 'rec-xyz' })],
      ['a missing record id', (t) => ({ ...t, record: undefined })],
      ['a missing patient', (t) => ({ ...t, patient: undefined })],
      ['a missing payload hash', (t) => ({ ...t, payload: undefined })],
      ['a payload hash of the wrong length', (t) => ({ ...t, payload: new Uint8Array(31) })],
      ['a patient on a type that has none', (t) => ({ ...t, type: 'queryAudit', record: undefined, payload: undefined, body: { filter: {} } })],
      ['an unknown type', (t) => ({ ...t, type: 'dropTable' })],
      ['an unknown top-level field', (t) => ({ ...t, admin: true })],
      ['a wrong version', (t) => ({ ...t, v: 2 })],
      ['a negative nonce', (t) => ({ ...t, nonce: -1 })],
      ['a fractional time', (t) => ({ ...t, time: 1.5 })],
      ['a bad actor id', (t) => ({ ...t, actor: 'Pat 1' })],
      ['a short key', (t) => ({ ...t, key: new Uint8Array(31) })],
      ['a bad hospital id', (t) => ({ ...t, via: 'H' })],
      [
        'an unknown audit filter field',
        (t) => ({ ...t, type: 'queryAudit', patient: undefined, record: undefined, payload: undefined, body: { filter: { everything: true } } }),
      ],
    ];
    it.each(cases)('%s', (_what, mutate) => {
      const bad = mutate(base());
      for (const k of Object.keys(bad)) if (bad[k] === undefined) delete bad[k];
      expectCode(() => signTx(bad as unknown as UnsignedTx, ledger.keys(P).signer, TEST_GENESIS_HASH), 'MALFORMED');
      expectCode(() => parseUnsignedTx(bad), 'MALFORMED');
      expectCode(() => decodeTx(signRaw(ledger, P, bad), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    });

    it('the unmutated base is well-formed (so the cases above fail for their own reason)', () => {
      expect(decodeTx(signRaw(ledger, P, base()), { genesisHash: TEST_GENESIS_HASH }).idHex).toBe(tx.idHex);
    });

    it('a malformed outer envelope', () => {
      expectCode(() => decodeTx(encodeCanonical({ tx: tx.tx }), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
      expectCode(() => decodeTx(encodeCanonical({ tx: tx.tx, sig: tx.sig.subarray(0, 63) }), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
      expectCode(() => decodeTx(encodeCanonical({ tx: tx.tx, sig: tx.sig, more: 1 }), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
      expectCode(() => decodeTx(encodeCanonical([tx.tx, tx.sig]), { genesisHash: TEST_GENESIS_HASH }), 'MALFORMED');
    });
  });

  it('a transaction signed with a key other than its `key` field is BAD_SIGNATURE', () => {
    const forged = signRaw(ledger, 'mallory', { ...tx.tx });
    expectCode(() => decodeTx(forged, { genesisHash: TEST_GENESIS_HASH }), 'BAD_SIGNATURE');
  });

  it('a payload hash is any 32 bytes', () => {
    const t = signTx({ ...tx.tx, payload: randomPayloadHash() }, ledger.keys(P).signer, TEST_GENESIS_HASH);
    expect(decodeTx(t.bytes, { genesisHash: TEST_GENESIS_HASH }).tx.payload).toEqual(t.tx.payload);
  });
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error('needle not found');
}
