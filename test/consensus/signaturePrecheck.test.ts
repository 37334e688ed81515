import { SYNC_AHEAD_CHUNKS } from '../../src/node/sync.js';
import { afterAll, describe, expect, it } from 'vitest';
import type { Block } from '../../src/consensus/block.js';
import { ChainChecker } from '../../src/consensus/chainCheck.js';
import { leafHash } from '../../src/consensus/merkle.js';
import { ALL_SIGNATURES, PRECHECK_LIMITS, PrecheckCache, SignaturePrecheck, type SignedBlock } from '../../src/consensus/signaturePrecheck.js';
import { fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { createSigner, generateSigningKeyPair } from '../../src/records/crypto/signature.js';
import { SignatureWorkerPool } from '../../src/records/crypto/signatureWorkers.js';
import { encodeCanonical } from '../../src/records/encoding.js';
import type { Tx } from '../../src/records/tx/types.js';
import { ChainBuilder } from '../support/chainBuilder.js';
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

  it("runs the main thread's verification module: the same verdict on a signature only the small-order rule decides", async () => {
    // The identity as public key, R = identity and S = 0: node:crypto accepts it for any message, libsodium
    // refuses it; signature.ts gives node:crypto's verdict on either backend, and so must the workers.
    const identity = fromHex('01'.padEnd(64, '0'));
    const sig = fromHex('01'.padEnd(128, '0'));
    expect(await pool.verify([{ key: identity, message: Uint8Array.of(1, 2, 3), sig }])).toEqual([true]);
  });
});

/** Transactions signed by one patient, `n` of them, each valid on the fixture ledger's network. */
function signedTxs(n: number, genesisHash?: Uint8Array) {
  const ledger = createLedger(genesisHash ? { genesisHash } : {});
  ledger.registerPatient('pat-1', 'hosp-a');
  return { ledger, txs: Array.from({ length: n }, () => ledger.sign('pat-1', { type: 'listRecords', patient: 'pat-1', body: {} })) };
}

const blockOf = (txs: Uint8Array[]) => ({ block: { txs } as unknown as Block });

describe('signature pre-check: transactions', () => {
  const chain = ChainBuilder.create();

  it('caches only the transactions whose signatures hold, keyed by their exact bytes', async () => {
    const { ledger, txs } = signedTxs(PRECHECK_LIMITS.minSignatures + 1);
    const precheck = new SignaturePrecheck(
      { ...chain.genesis, hash: ledger.genesisHash },
      { kinds: { txs: true, headers: false, certificates: false }, workers: 1 },
    );
    const [good, other] = txs;
    // The same unsigned transaction under another transaction's signature: the id is the same, the bytes are not.
    const forged = encodeCanonical({ tx: good!.tx, sig: other!.sig });
    const cache = new Map<string, Tx>();
    await precheck.check([blockOf([good!.bytes, forged, new Uint8Array([1, 2, 3]), ...txs.slice(2).map((t) => t.bytes)])], { txCache: cache });
    await precheck.close();
    expect(cache.has(toHex(leafHash(forged)))).toBe(false);
    expect(cache.get(toHex(leafHash(good!.bytes)))!.idHex).toBe(good!.idHex);
    expect(cache.size).toBe(txs.length - 1);
  });

  it('caches nothing signed for another network, and leaves a few signatures to validation', async () => {
    const { ledger, txs } = signedTxs(PRECHECK_LIMITS.minSignatures);
    const kinds = { txs: true, headers: false, certificates: false };
    const elsewhere = new SignaturePrecheck({ ...chain.genesis, hash: new Uint8Array(32).fill(0x42) }, { kinds, workers: 1 });
    const here = new SignaturePrecheck({ ...chain.genesis, hash: ledger.genesisHash }, { kinds, workers: 1 });
    const cache = new Map<string, Tx>();
    await elsewhere.check([blockOf(txs.map((t) => t.bytes))], { txCache: cache });
    expect(cache.size).toBe(0);
    await here.check([blockOf(txs.slice(1).map((t) => t.bytes))], { txCache: cache });
    expect(cache.size).toBe(0);
    await here.check([blockOf(txs.map((t) => t.bytes))], { txCache: cache });
    expect(cache.size).toBe(txs.length);
    await Promise.all([elsewhere.close(), here.close()]);
  });
});

describe('signature pre-check: headers and certificates', () => {
  const chain = ChainBuilder.create();
  chain.registerPatient('pat-1', 'hosp-a');
  for (let i = 0; i < 40; i++) chain.finalize([]);

  it('finds the proposer and certificate signatures valid, and validation then trusts exactly those', async () => {
    const precheck = new SignaturePrecheck(chain.genesis, { kinds: ALL_SIGNATURES, workers: 1 });
    const cache = new PrecheckCache();
    const into = cache.open();
    const forged = chain.blocks[5]!.executed.block;
    const blocks: SignedBlock[] = chain.blocks.map((b) => ({
      block: b === chain.blocks[5] ? { ...forged, sig: chain.blocks[6]!.executed.block.sig } : b.executed.block,
      certificates: [b.cert],
    }));
    await precheck.check(blocks, into);
    await precheck.close();
    // Every header signature but block 5's (replaced by block 6's, valid only for block 6) and every
    // certificate signature, each once though most are carried twice (in the next block, and beside their own).
    const certSigs = new Set(chain.blocks.flatMap((b) => b.cert.sigs.map((s) => toHex(s.sig))));
    expect(into.signatures.size).toBe(chain.blocks.length - 1 + certSigs.size);
    const proposer6 = chain.genesis.validators[chain.blocks[6]!.executed.block.header.proposer]!.key;
    expect(into.signatures.get(toHex(chain.blocks[6]!.executed.block.sig))!.key).toEqual(proposer6);
    // Re-execution with the verdicts: same result as without them; the forged header is still caught.
    const checker = new ChainChecker(chain.genesis, { txCache: cache, verify: cache.verify });
    for (const b of chain.blocks.slice(0, 5)) checker.next(b.executed.block, b.cert);
    expect(() => checker.next(blocks[5]!.block!, chain.blocks[5]!.cert)).toThrow(/proposer signature is invalid/);
    cache.drop(into);
  });

  it('a known signature counts only for its own key and message', () => {
    const cache = new PrecheckCache();
    const into = cache.open();
    const b = chain.blocks[0]!.executed.block;
    into.signatures.set(toHex(b.sig), { key: new Uint8Array(32).fill(1), message: Uint8Array.of(1) });
    expect(cache.verify(new Uint8Array(32).fill(1), Uint8Array.of(1), b.sig)).toBe(true);
    expect(cache.verify(new Uint8Array(32).fill(1), Uint8Array.of(2), b.sig)).toBe(false);
    expect(cache.verify(new Uint8Array(32).fill(2), Uint8Array.of(1), b.sig)).toBe(false);
    cache.drop(into);
    expect(cache.verify(new Uint8Array(32).fill(1), Uint8Array.of(1), b.sig)).toBe(false);
  });
});

describe('signature pre-check: chunks', () => {
  const chain = ChainBuilder.create();
  chain.registerPatient('pat-1', 'hosp-a');
  for (let i = 0; i < 70; i++) chain.finalize([]);
  async function* source(fail?: number) {
    for (const [i, b] of chain.blocks.entries()) {
      if (i === fail) throw new Error('peer went away');
      await Promise.resolve();
      yield b;
    }
  }

  it('yields every block in order, in chunks of at most maxBlocks, each checked', async () => {
    const precheck = new SignaturePrecheck(chain.genesis, { kinds: ALL_SIGNATURES, workers: 1 });
    const cache = new PrecheckCache();
    const sizes: number[] = [];
    const seen: number[] = [];
    for await (const chunk of precheck.chunks(source(), { signed: (b) => ({ block: b.executed.block, certificates: [b.cert] }), into: () => cache.open() })) {
      await chunk.verified;
      sizes.push(chunk.items.length);
      seen.push(...chunk.items.map((b) => b.executed.block.header.height));
      // A full chunk is worth the workers; the last 6 blocks' 24 signatures are left to validation.
      if (chunk.items.length === PRECHECK_LIMITS.maxBlocks) expect(chunk.into.signatures!.size).toBeGreaterThanOrEqual(chunk.items.length * 4);
      else expect(chunk.into.signatures!.size).toBe(0);
      cache.drop(chunk.into);
    }
    await precheck.close();
    expect(sizes).toEqual([PRECHECK_LIMITS.maxBlocks, PRECHECK_LIMITS.maxBlocks, 70 - 2 * PRECHECK_LIMITS.maxBlocks]);
    expect(seen).toEqual(chain.blocks.map((_, i) => i + 1));
  });

  it("delivers the source's error after the chunks read before it, and stops reading when left early", async () => {
    const precheck = new SignaturePrecheck(chain.genesis, { kinds: ALL_SIGNATURES, workers: 1 });
    const got: number[] = [];
    const run = async () => {
      for await (const chunk of precheck.chunks(source(40), { signed: (b) => ({ block: b.executed.block }), into: () => ({ txCache: new Map() }) }))
        got.push(chunk.items.length);
    };
    await expect(run()).rejects.toThrow('peer went away');
    expect(got).toEqual([PRECHECK_LIMITS.maxBlocks]);
    let read = 0;
    async function* counted() {
      for await (const b of source()) {
        read++;
        yield b;
      }
    }
    for await (const chunk of precheck.chunks(counted(), { signed: (b) => ({ block: b.executed.block }), into: () => ({ txCache: new Map() }) })) {
      expect(chunk.items).toHaveLength(PRECHECK_LIMITS.maxBlocks);
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
    // The first chunk, and at most one read ahead (and the item that showed it was full).
    expect(read).toBeLessThanOrEqual(2 * PRECHECK_LIMITS.maxBlocks + 1);
    await precheck.close();
  });

  it('reads at most `ahead` chunks beyond the one the consumer holds (sync: SYNC_AHEAD_CHUNKS)', async () => {
    const precheck = new SignaturePrecheck(chain.genesis, { kinds: ALL_SIGNATURES, workers: 1 });
    let read = 0;
    async function* endless() {
      for (let i = 0; i < 20 * PRECHECK_LIMITS.maxBlocks; i++) {
        read++;
        await Promise.resolve();
        yield chain.blocks[i % chain.blocks.length]!;
      }
    }
    for await (const chunk of precheck.chunks(endless(), {
      signed: (b) => ({ block: b.executed.block }),
      into: () => ({ txCache: new Map() }),
      ahead: SYNC_AHEAD_CHUNKS,
    })) {
      await chunk.verified;
      await new Promise((r) => setTimeout(r, 50));
      // Held: this chunk; checked ahead: SYNC_AHEAD_CHUNKS full ones; read: at most the item that showed the last was full.
      expect(read).toBeGreaterThanOrEqual((1 + SYNC_AHEAD_CHUNKS) * PRECHECK_LIMITS.maxBlocks);
      expect(read).toBeLessThanOrEqual((1 + SYNC_AHEAD_CHUNKS) * PRECHECK_LIMITS.maxBlocks + 1);
      break;
    }
    await precheck.close();
  });
});
