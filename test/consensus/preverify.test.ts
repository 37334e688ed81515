import { afterAll, describe, expect, it } from 'vitest';
import { preverifyTransactions, type TxCache } from '../../src/consensus/blockExecution.js';
import { leafHash } from '../../src/consensus/merkle.js';
import { toHex } from '../../src/records/crypto/bytes.js';
import { createSigner, generateSigningKeyPair } from '../../src/records/crypto/signature.js';
import { SignatureWorkerPool } from '../../src/records/crypto/signatureWorkers.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import type { Tx } from '../../src/records/tx/types.js';
import { createLedger } from '../support/ledgerFixture.js';

/** Bulk signature checks on worker threads (sync, full-chain verification) agree with the main thread. */
describe('signature worker pool', () => {
  const pool = new SignatureWorkerPool(2);
  afterAll(() => pool.close());

  it('accepts good signatures and refuses forged ones, malformed keys and wrong lengths, in order', async () => {
    const key = generateSigningKeyPair();
    const signer = createSigner(key.secretKey);
    const messages = Array.from({ length: 600 }, (_, i) => Uint8Array.of(i & 255, i >> 8));
    const checks = messages.map((message) => ({ key: key.publicKey, message, sig: signer.sign(message) }));
    checks[7] = { ...checks[7]!, sig: checks[8]!.sig };
    checks[300] = { ...checks[300]!, key: new Uint8Array(31) };
    checks[599] = { ...checks[599]!, sig: new Uint8Array(64) };
    const ok = await pool.verify(checks);
    expect(ok).toHaveLength(600);
    expect(ok.map((v, i) => (v ? -1 : i)).filter((i) => i >= 0)).toEqual([7, 300, 599]);
  });

  it('caches only the transactions whose signatures hold, keyed by their exact bytes', async () => {
    const ledger = createLedger();
    ledger.registerPatient('pat-1', 'hosp-a');
    const good = ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} });
    const other = ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} });
    // The same unsigned transaction under another transaction's signature: the id is the same, the bytes are not.
    const forged = encodeCanonical({ tx: good.tx, sig: other.sig });
    const cache = new Map<string, Tx>() satisfies TxCache;
    await preverifyTransactions([good.bytes, forged, new Uint8Array([1, 2, 3])], pool, cache, ledger.genesisHash);
    expect([...cache.keys()]).toEqual([toHex(leafHash(good.bytes))]);
    expect(cache.get(toHex(leafHash(good.bytes)))!.idHex).toBe(good.idHex);
  });

  it('caches nothing signed for another network', async () => {
    const ledger = createLedger();
    ledger.registerPatient('pat-1', 'hosp-a');
    const tx = ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} });
    const cache = new Map<string, Tx>() satisfies TxCache;
    await preverifyTransactions([tx.bytes], pool, cache, new Uint8Array(32).fill(0x42));
    expect(cache.size).toBe(0);
    await preverifyTransactions([tx.bytes], pool, cache, ledger.genesisHash);
    expect(cache.size).toBe(1);
  });
});
