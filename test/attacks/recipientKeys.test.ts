import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unlockKeystore } from '../../src/client/keystoreFiles.js';
import { pinnedGenesis, type GenesisAnchor } from '../../src/client/recipientKeys.js';
import { Session } from '../../src/client/session.js';
import { decodeBlock } from '../../src/consensus/block.js';
import type { KeyProofResponse, PublicUser } from '../../src/api/contract.js';
import { fromBase64, toBase64 } from '../../src/records/crypto/bytes.js';
import { decodeTx } from '../../src/records/tx/codec.js';
import type { UnsignedTx } from '../../src/records/tx/types.js';
import { cli } from '../support/cliRunner.js';
import { TEST_PASSWORD, TestNetwork } from '../support/testNetwork.js';

/**
 * A hospital node that lies about one grantee's public encryption key (issue 9, item 4): a small HTTP proxy
 * on 127.0.0.1 in front of a real node process rewrites that key in what the node serves — the recipients
 * of a patient's new content, or the user a patient is about to grant — and, in the stronger variants, the
 * key proof as well (the proof of the attacker's own registration), or adds its own account to the
 * recipients. A doctor's write and a patient's grant through the liar are refused on the client and
 * nothing is submitted: the node's chain holds no such transaction. Through the real node they work.
 */
type Lie = 'none' | 'swap-key' | 'swap-key-and-proof' | 'extra-recipient';

interface Proxy {
  url: string;
  lie: Lie;
  /** Every request that reached the proxy, as "METHOD path". */
  seen: string[];
  close(): Promise<void>;
}

async function startProxy(target: { port: number }, rewrite: (path: string, body: unknown, lie: Lie) => unknown): Promise<Proxy> {
  const proxy: Proxy = { url: '', lie: 'none', seen: [], close: async () => {} };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      proxy.seen.push(`${req.method} ${req.url}`);
      // Forwarded as received (signed view requests stay valid), but to the node's own Host name.
      const headers = { ...req.headers, host: `127.0.0.1:${target.port}` };
      const up = request({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
        const body: Buffer[] = [];
        upRes.on('data', (c: Buffer) => body.push(c));
        upRes.on('end', () => {
          let out = Buffer.concat(body);
          if (upRes.statusCode === 200 && req.method === 'GET')
            out = Buffer.from(JSON.stringify(rewrite(req.url!, JSON.parse(out.toString('utf8')), proxy.lie)));
          const h = { ...upRes.headers, 'content-length': String(out.length) };
          res.writeHead(upRes.statusCode!, h);
          res.end(out);
        });
      });
      up.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'NETWORK', message: err.message } }));
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return proxy;
}

describe('a node that lies about one grantee key', () => {
  let net: TestNetwork;
  let proxy: Proxy;
  let patient: Session;
  let evil: Session;
  let genesis: GenesisAnchor | undefined;
  /** The attacker's own patient account: its key is the one the lying node passes off as dr-2's. */
  let evilKey: string;
  let evilProof: KeyProofResponse;

  /** Every transaction on the node's chain, decoded (signatures were checked when it was committed). */
  async function chainTxs(): Promise<UnsignedTx[]> {
    const height = (await net.api(0).status()).height;
    const out: UnsignedTx[] = [];
    for (let from = 1; from <= height; from += 100) {
      const { blocks } = await net.api(0).get<{ blocks: { block: string }[] }>(`/v1/chain/raw?from=${from}&to=${Math.min(height, from + 99)}`);
      for (const b of blocks) for (const tx of decodeBlock(fromBase64(b.block), 64 * 1024 * 1024).txs) out.push(decodeTx(tx, { verify: false }).tx);
    }
    return out;
  }

  const countOf = (txs: UnsignedTx[], type: string, actor: string) => txs.filter((t) => t.type === type && t.actor === actor).length;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    patient = await net.patient(0, 'pat-1');
    await net.staff(0, 'dr-1', 'doctor');
    await net.staff(0, 'dr-2', 'doctor');
    await net.staff(0, 'dr-3', 'doctor');
    evil = await net.patient(0, 'pat-evil');
    evilKey = toBase64(evil.keys.encPublic!);
    for (const g of ['dr-1', 'dr-2']) expect((await patient.grant(g)).denied).toBeUndefined();
    evilProof = await net.api(0).get<KeyProofResponse>('/v1/users/pat-evil/key-proof');

    proxy = await startProxy({ port: net.node(0).apiPort }, (path, body, lie) => {
      if (lie === 'none') return body;
      if (/^\/v1\/patients\/[^/]+\/recipients$/.test(path)) {
        const r = body as { recipients: PublicUser[] };
        if (lie === 'extra-recipient')
          return {
            recipients: [
              ...r.recipients,
              { id: 'pat-evil', role: 'patient', hospital: net.node(0).hospital, active: true, signKey: toBase64(evil.keys.signPublic), encKey: evilKey },
            ],
          };
        return { recipients: r.recipients.map((u) => (u.id === 'dr-2' ? { ...u, encKey: evilKey } : u)) };
      }
      if (path === '/v1/users/dr-3') return { ...(body as PublicUser), encKey: evilKey };
      if (lie === 'swap-key-and-proof' && (path === '/v1/users/dr-2/key-proof' || path === '/v1/users/dr-3/key-proof'))
        return { ...evilProof, user: path.split('/')[3] };
      return body;
    });
    // Clients check keys against the genesis pinned beside the hospital's keystores (written by `init`/`cluster`).
    genesis = pinnedGenesis({ keystoreDir: net.node(0).keystoreDir });
    expect(genesis?.pinned).toBe(true);
  }, 90_000);

  afterAll(async () => {
    await proxy?.close();
    await net?.destroy();
  });

  it("serves each user's key proof: a transaction for a patient and a doctor, the genesis file for an admin", async () => {
    const pat = await net.api(0).get<KeyProofResponse>('/v1/users/pat-1/key-proof');
    expect(pat).toMatchObject({ user: 'pat-1', source: 'transaction', proof: { claim: { type: 'registerPatient', actor: 'pat-1', outcome: 'success' } } });
    const doc = await net.api(0).get<KeyProofResponse>('/v1/users/dr-2/key-proof');
    expect(doc).toMatchObject({ user: 'dr-2', source: 'transaction', proof: { claim: { type: 'activateUser', actor: 'dr-2', outcome: 'success' } } });
    expect(await net.api(0).get<KeyProofResponse>(`/v1/users/${net.node(0).admin.id}/key-proof`)).toEqual({ user: net.node(0).admin.id, source: 'genesis' });
    await expect(net.api(0).get('/v1/users/nobody-here/key-proof')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("refuses a doctor's write when the node swaps a grantee's key, with or without a proof of the attacker's own key; nothing is submitted", async () => {
    const dr1 = await Session.connect(proxy.url, keysOf('dr-1'), { genesis });
    const before = await chainTxs();
    for (const lie of ['swap-key', 'swap-key-and-proof', 'extra-recipient'] as const) {
      proxy.lie = lie;
      proxy.seen.length = 0;
      const refused = dr1.createRecord('pat-1', { title: `written under ${lie}`, vitals: { temperature: 38.5 }, notes: 'must not reach the node' });
      await expect(refused, lie).rejects.toMatchObject({
        code: 'KEY_MISMATCH',
        message: expect.stringMatching(lie === 'extra-recipient' ? /pat-evil \(patient\)/ : /dr-2/),
      });
      expect(
        proxy.seen.filter((r) => r.startsWith('POST')),
        lie,
      ).toEqual([]);
    }
    // The proxy saw the key proofs asked for, and no transaction; the chain has no write of dr-1's.
    const after = await chainTxs();
    expect(countOf(after, 'createRecord', 'dr-1')).toBe(countOf(before, 'createRecord', 'dr-1'));
    expect(countOf(after, 'createRecord', 'dr-1')).toBe(0);

    // Through the honest node (and through the proxy once it stops lying) the same write works, and
    // every recipient can open it.
    proxy.lie = 'none';
    const ok = await dr1.createRecord('pat-1', { title: 'honest', vitals: { temperature: 37.1 }, notes: 'for pat-1, dr-1 and dr-2' });
    expect(ok.denied).toBeUndefined();
    const dr2 = await Session.connect(net.node(0).apiUrl, keysOf('dr-2'));
    const read = await dr2.readRecord('pat-1', ok.value!);
    expect(read.value?.content?.notes).toBe('for pat-1, dr-1 and dr-2');
    expect(countOf(await chainTxs(), 'createRecord', 'dr-1')).toBe(1);
  });

  it("refuses a patient's grant when the node swaps the grantee's key (the re-wrapped data keys would be the node's)", async () => {
    const viaProxy = await Session.connect(proxy.url, patient.keys, { genesis });
    const before = countOf(await chainTxs(), 'grantAccess', 'pat-1');
    for (const lie of ['swap-key', 'swap-key-and-proof'] as const) {
      proxy.lie = lie;
      proxy.seen.length = 0;
      await expect(viaProxy.grant('dr-3'), lie).rejects.toMatchObject({ code: 'KEY_MISMATCH', message: expect.stringMatching(/dr-3/) });
      expect(
        proxy.seen.filter((r) => r.startsWith('POST')),
        lie,
      ).toEqual([]);
    }
    expect(countOf(await chainTxs(), 'grantAccess', 'pat-1')).toBe(before);
    proxy.lie = 'none';
    expect((await viaProxy.grant('dr-3')).denied).toBeUndefined();
    expect(countOf(await chainTxs(), 'grantAccess', 'pat-1')).toBe(before + 1);
  });

  it('the CLI refuses the same write (exit 2, the reason on stderr), with the genesis beside the keystores or given by --genesis', async () => {
    proxy.lie = 'swap-key';
    const before = countOf(await chainTxs(), 'createRecord', 'dr-1');
    const write = (extra: string[]) =>
      cli(['record', 'create', '--api', proxy.url, '--user', 'dr-1', '--patient', 'pat-1', '--title', 'via the CLI', '--temperature', '38.2', ...extra]);
    const pinnedBeside = await write([]);
    expect(pinnedBeside.code).toBe(2);
    expect(pinnedBeside.stderr).toMatch(/encryption key for dr-2 that is not the one the ledger registered/);
    expect(pinnedBeside.stderr).not.toMatch(/warning/);
    // A keystore directory of its own, without genesis.json: --genesis pins it; without it, the genesis beside the
    // node's own keystores (the local cluster's directory) is used, and the lie is still refused.
    const dir = mkdtempSync(join(tmpdir(), 'medledger-keys-'));
    try {
      copyFileSync(join(net.node(0).keystoreDir, 'dr-1.keystore.json'), join(dir, 'dr-1.keystore.json'));
      const flagged = await write(['--keystores', dir, '--genesis', net.layout.genesisFile]);
      expect(flagged.code).toBe(2);
      expect(flagged.stderr).toMatch(/not the one the ledger registered/);
      expect(flagged.stderr).not.toMatch(/warning/);
      const unpinned = await write(['--keystores', dir]);
      expect(unpinned.code).toBe(2);
      expect(unpinned.stderr).toMatch(/not the one the ledger registered/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(countOf(await chainTxs(), 'createRecord', 'dr-1')).toBe(before);
    proxy.lie = 'none';
  });

  const keysOf = (id: string) => unlockKeystore(net.node(0).keystoreDir, id, TEST_PASSWORD);
});
