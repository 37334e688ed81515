import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from '../../src/client/apiClient.js';
import { Session } from '../../src/client/session.js';
import { parseGenesis, type Genesis } from '../../src/consensus/genesis.js';
import { AUTH_HEADERS, REQUEST_MAX_SKEW_MS, signedRequestHeaders } from '../../src/records/requestAuth.js';
import { auditedRead } from '../support/load.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * Issue 9, item 2, with real node processes: a "production" network of two nodes and a "test" network of
 * one, both named medledger-local, where the same patient is registered with the same key. A transaction
 * signed for one network is refused by the other; a signed view request is good for one use on the node it
 * names, and is refused when replayed to that node, to its peer, or to the other network, or when stale.
 */
describe('signatures bound to one network, view requests to one node and one use', () => {
  let prod: TestNetwork;
  let test: TestNetwork;
  let onProd: Session;
  let onTest: Session;
  let prodGenesis: Genesis;
  let testGenesis: Genesis;

  beforeAll(async () => {
    [prod, test] = await Promise.all([TestNetwork.create(2), TestNetwork.create(1)]);
    await Promise.all([prod.start(), test.start()]);
    prodGenesis = parseGenesis(JSON.parse(readFileSync(prod.layout.genesisFile, 'utf8')));
    testGenesis = parseGenesis(JSON.parse(readFileSync(test.layout.genesisFile, 'utf8')));
    expect(testGenesis.file.network).toBe(prodGenesis.file.network);
    onProd = await prod.patient(0, 'pat-twin');
    // The same user id and keys, registered on the test network through its node of the same hospital name.
    onTest = new Session(new ApiClient(test.node(0).apiUrl), onProd.keys, test.node(0).hospital);
    expect(onTest.hospital).toBe(onProd.hospital);
    expect((await onTest.registerPatient()).denied).toBeUndefined();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([prod?.destroy(), test?.destroy()]);
  });

  it('a transaction signed for the test network is refused by production, where the same key is registered', async () => {
    const fromTest = auditedRead(onTest);
    await expect(prod.api(0).submit(fromTest)).rejects.toMatchObject({ code: 'BAD_SIGNATURE', status: 401 });
    await expect(prod.api(1).submit(fromTest)).rejects.toMatchObject({ code: 'BAD_SIGNATURE', status: 401 });
    // …and the other way round; each is final on its own network.
    const fromProd = auditedRead(onProd);
    await expect(test.api(0).submit(fromProd)).rejects.toMatchObject({ code: 'BAD_SIGNATURE' });
    expect((await test.api(0).submit(fromTest)).event?.outcome).toBe('success');
    expect((await prod.api(0).submit(fromProd)).event?.outcome).toBe('success');
  });

  it('a client that pinned one genesis refuses to sign for a node of the other network', async () => {
    const pinned = new ApiClient(test.node(0).apiUrl);
    pinned.pinGenesis(prodGenesis);
    await expect(pinned.identify()).rejects.toThrow(/not on the pinned network/);
    const session = new Session(pinned, onProd.keys, onProd.hospital);
    await expect(session.overview()).rejects.toBeInstanceOf(ApiError);
    await expect(session.act('listRecords', { patient: onProd.userId, body: {} })).rejects.toThrow(/not on the pinned network/);
  });

  /** The headers of the signed request the real client sends while `fn` runs. */
  async function captureSigned(fn: () => Promise<unknown>): Promise<Record<string, string>> {
    const real = globalThis.fetch;
    let captured: Record<string, string> | undefined;
    globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
      const headers = init?.headers as Record<string, string> | undefined;
      if (headers?.[AUTH_HEADERS.sig]) captured ??= { ...headers };
      return real(input, init);
    }) as typeof fetch;
    try {
      await fn();
    } finally {
      globalThis.fetch = real;
    }
    if (!captured) throw new Error('no signed request was sent');
    return captured;
  }

  async function send(apiUrl: string, headers: Record<string, string>): Promise<{ status: number; code?: string; message?: string }> {
    const res = await fetch(`${apiUrl}/v1/me`, { headers });
    const body = (await res.json()) as { error?: { code: string; message: string } };
    return { status: res.status, ...(body.error ? { code: body.error.code, message: body.error.message } : {}) };
  }

  it('a captured view request is refused when replayed to the node it was for, to its peer and to the other network', async () => {
    const headers = await captureSigned(() => onProd.overview());
    const node0 = (await prod.api(0).status()).peerId;
    expect(headers[AUTH_HEADERS.node]).toBe(node0);
    expect(headers[AUTH_HEADERS.nonce]).toMatch(/^[0-9a-f]{32}$/);
    // The same node: the nonce was used.
    expect(await send(prod.node(0).apiUrl, headers)).toMatchObject({ status: 409, code: 'REPLAY' });
    // The other node of the same network, where the user and key are the same: not the node it names.
    expect(await send(prod.node(1).apiUrl, headers)).toMatchObject({
      status: 403,
      code: 'FORBIDDEN',
      message: expect.stringMatching(/signed for node .*not for this node/),
    });
    // A node of the other network.
    expect(await send(test.node(0).apiUrl, headers)).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    // The client itself goes on working: every request has its own nonce.
    expect((await onProd.overview()).user.id).toBe(onProd.userId);
  });

  it('a view request naming the right node under another genesis, or one older than the window, is refused', async () => {
    const testNode = (await test.api(0).status()).peerId;
    const signer = onProd.signer;
    const user = onProd.userId;
    // Names the test network's node, signed under production's genesis (what a production node could ask for).
    const wrongNetwork = signedRequestHeaders(signer, user, prodGenesis.hash, { method: 'GET', path: '/v1/me', node: testNode });
    expect(await send(test.node(0).apiUrl, wrongNetwork)).toMatchObject({ status: 401, code: 'BAD_SIGNATURE' });
    const right = signedRequestHeaders(signer, user, testGenesis.hash, { method: 'GET', path: '/v1/me', node: testNode });
    expect(await send(test.node(0).apiUrl, right)).toMatchObject({ status: 200 });
    // Older than the freshness window: refused whatever its nonce (the node no longer remembers nonces that old).
    const stale = signedRequestHeaders(signer, user, testGenesis.hash, {
      method: 'GET',
      path: '/v1/me',
      node: testNode,
      time: Date.now() - REQUEST_MAX_SKEW_MS - 5_000,
    });
    expect(await send(test.node(0).apiUrl, stale)).toMatchObject({ status: 400, code: 'BAD_TIME' });
    // A request without a nonce or without a node (the v1 form) is not accepted at all.
    const { [AUTH_HEADERS.nonce]: _nonce, ...noNonce } = right;
    const { [AUTH_HEADERS.node]: _node, ...noNode } = signedRequestHeaders(signer, user, testGenesis.hash, { method: 'GET', path: '/v1/me', node: testNode });
    expect(await send(test.node(0).apiUrl, noNonce)).toMatchObject({ status: 401, code: 'BAD_SIGNATURE' });
    expect(await send(test.node(0).apiUrl, noNode)).toMatchObject({ status: 401, code: 'BAD_SIGNATURE' });
  });
});
