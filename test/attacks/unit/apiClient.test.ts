import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, ApiError } from '../../../src/client/apiClient.js';
import type { Tx } from '../../../src/records/tx/types.js';

/**
 * The API client against in-process HTTP servers on 127.0.0.1 that misbehave on purpose: a busy node
 * (503 + Retry-After) and a node that drops the socket under a request. Retries are bounded, honour
 * Retry-After, and after a dropped socket happen only where a second attempt cannot act twice (reads,
 * signed transactions; a batch once, since the node answers what it already holds as accepted).
 */
const servers: Server[] = [];

async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ url: string; requests: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => handler(req, res, n++));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const busy = (res: ServerResponse, headers: Record<string, string> = {}) =>
  json(res, 503, { error: { code: 'UNAVAILABLE', message: 'the node is busy' } }, headers);
const FAST = { baseDelayMs: 10, maxDelayMs: 40 };
const tx = { bytes: new Uint8Array([1, 2, 3]) } as unknown as Tx;

async function closeAll(): Promise<void> {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
}

afterEach(closeAll);

describe('API client retries', () => {
  it('retries a 503 after its Retry-After, then returns the answer', async () => {
    const node = await serve((_req, res, n) => (n === 0 ? busy(res, { 'retry-after': '1' }) : json(res, 200, { node: 'ok' })));
    const started = Date.now();
    await expect(new ApiClient(node.url).status()).resolves.toEqual({ node: 'ok' });
    expect(node.requests()).toBe(2);
    // Retry-After: 1 was honoured (not an immediate retry).
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('does not wait for a Retry-After beyond its cap: the 503 reaches the caller at once', async () => {
    const node = await serve((_req, res) => busy(res, { 'retry-after': '30' }));
    const started = Date.now();
    const err = await new ApiClient(node.url).status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(node.requests()).toBe(1);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('gives up after a bounded number of attempts on a node that stays busy', async () => {
    const node = await serve((_req, res) => busy(res));
    const err = await new ApiClient(node.url, { retry: FAST }).status().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect(node.requests()).toBe(5);
  });

  it('retries a GET whose socket was dropped once', async () => {
    const node = await serve((req, res, n) => (n === 0 ? req.socket.destroy() : json(res, 200, { node: 'ok' })));
    await expect(new ApiClient(node.url, { retry: FAST }).status()).resolves.toEqual({ node: 'ok' });
    expect(node.requests()).toBe(2);
  });

  it('retries a reset connection (ECONNRESET) on a GET', async () => {
    const node = await serve((req, res, n) => (n === 0 ? req.socket.resetAndDestroy() : json(res, 200, { node: 'ok' })));
    await expect(new ApiClient(node.url, { retry: FAST }).status()).resolves.toEqual({ node: 'ok' });
    expect(node.requests()).toBe(2);
  });

  it('retries POST /v1/tx after a dropped socket (a duplicate signed transaction is answered, not applied twice)', async () => {
    const node = await serve((req, res, n) => (n === 0 ? req.socket.destroy() : json(res, 200, { id: 'x', status: 'committed', height: 1 })));
    await expect(new ApiClient(node.url, { retry: FAST }).submit(tx)).resolves.toMatchObject({ status: 'committed' });
    expect(node.requests()).toBe(2);
  });

  it('retries POST /v1/tx and POST /v1/txs when a reused keep-alive socket is dropped under them', async () => {
    for (const path of ['/v1/tx', '/v1/txs']) {
      let first: Socket | undefined;
      let reused = false;
      // Request 0 (GET) opens the keep-alive connection; request 1 (the submission) arrives on it and the
      // node drops it, as a node closing an idle connection does; request 2 is the retry, on a new socket.
      const node = await serve((req, res, n) => {
        if (n === 0) {
          first = req.socket;
          return json(res, 200, { node: 'ok' });
        }
        if (n === 1) {
          reused = req.socket === first;
          return req.socket.destroy();
        }
        return path === '/v1/tx' ? json(res, 200, { id: 'x', status: 'committed', height: 1 }) : json(res, 200, { accepted: ['x'], rejected: [] });
      });
      const api = new ApiClient(node.url, { retry: FAST });
      await api.status();
      // Give undici a moment to put the connection back in its pool as idle, so the submission reuses it.
      await new Promise((r) => setTimeout(r, 50));
      const answer = path === '/v1/tx' ? await api.submit(tx) : await api.submitBatch([{ tx }]);
      expect(answer).toMatchObject(path === '/v1/tx' ? { status: 'committed' } : { accepted: ['x'], rejected: [] });
      expect(reused, `${path} went out on the kept-alive socket`).toBe(true);
      expect(node.requests()).toBe(3);
    }
  });

  it('retries POST /v1/txs after a dropped socket once only: a second drop reaches the caller', async () => {
    const node = await serve((req, res, n) => (n < 2 ? req.socket.destroy() : json(res, 200, { accepted: [], rejected: [] })));
    await expect(new ApiClient(node.url, { retry: FAST }).submitBatch([{ tx }])).rejects.toMatchObject({ code: 'NETWORK' });
    expect(node.requests()).toBe(2);
  });

  it('does not retry a batch after a dropped socket when the policy says so (batchDropRetries 0)', async () => {
    const node = await serve((req, res, n) => (n === 0 ? req.socket.destroy() : json(res, 200, { accepted: [], rejected: [] })));
    await expect(new ApiClient(node.url, { retry: { ...FAST, batchDropRetries: 0 } }).submitBatch([{ tx }])).rejects.toMatchObject({ code: 'NETWORK' });
    expect(node.requests()).toBe(1);
  });

  it('does not retry other POSTs after a dropped socket', async () => {
    const node = await serve((req, res, n) => (n === 0 ? req.socket.destroy() : json(res, 200, {})));
    await expect(new ApiClient(node.url, { retry: FAST }).post('/v1/test/blocked-peers', { peers: [] })).rejects.toMatchObject({ code: 'NETWORK' });
    expect(node.requests()).toBe(1);
  });

  it('stops retrying a dropped socket after five attempts', async () => {
    const node = await serve((req) => req.socket.destroy());
    await expect(new ApiClient(node.url, { retry: FAST }).status()).rejects.toMatchObject({ code: 'NETWORK' });
    expect(node.requests()).toBe(5);
  });

  it('does not retry a refused connection (the node is down): the error is immediate', async () => {
    const node = await serve(() => undefined);
    const url = node.url;
    await closeAll();
    const started = Date.now();
    await expect(new ApiClient(url).status()).rejects.toMatchObject({ code: 'NETWORK' });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('sends POST bodies as application/json', async () => {
    let type: string | undefined;
    const node = await serve((req, res) => {
      type = req.headers['content-type'];
      json(res, 200, { accepted: [], rejected: [] });
    });
    await new ApiClient(node.url).submitBatch([{ tx }]);
    expect(type).toBe('application/json');
  });
});
