import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSigner } from '../../src/records/crypto/signature.js';
import { toBase64 } from '../../src/records/crypto/bytes.js';
import { signTx } from '../../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../../src/records/tx/types.js';
import { newUserKeys } from '../../src/client/userKeys.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * The loopback HTTP API of a real node process against hostile local clients and web pages: DNS
 * rebinding (foreign Host), cross-origin browser requests, cross-site "simple" text/plain posts, bad
 * percent-escapes, slow-loris sockets and a connection that floods requests. One node on 127.0.0.1.
 */
const HEADERS_TIMEOUT_MS = 1_000;
const RATE = { perSecond: 50, burst: 100 };
const EXTRA_HOST = 'medledger.internal';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One request on its own connection, with exactly the headers given (no Host unless given). */
function raw(port: number, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers ?? {}, setHost: false, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('the node API against hostile local clients', () => {
  let net: TestNetwork;
  let port: number;
  let host: string;
  let hospital: string;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    const file = net.node(0).configFile;
    const config = JSON.parse(readFileSync(file, 'utf8'));
    config.api = { ...config.api, headersTimeoutMs: HEADERS_TIMEOUT_MS, rateLimit: RATE, allowedHosts: [EXTRA_HOST] };
    writeFileSync(file, JSON.stringify(config, null, 2));
    await net.start();
    port = net.node(0).apiPort;
    host = `127.0.0.1:${port}`;
    hospital = net.node(0).hospital;
  }, 60_000);

  afterAll(async () => {
    await net?.destroy();
  });

  const log = () => readFileSync(net.processes[0]!.logFile, 'utf8');

  it('serves only its own Host names (DNS rebinding): others get 421 FORBIDDEN, no chain data', async () => {
    for (const good of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `${EXTRA_HOST}:${port}`]) {
      const res = await raw(port, { path: '/v1/status', headers: { host: good } });
      expect(res.status, good).toBe(200);
      expect(res.json.hospital).toBe(hospital);
    }
    const foreign = [
      `evil.example:${port}`,
      'evil.example',
      '127.0.0.1',
      'localhost',
      `localhost:${port + 1}`,
      `127.0.0.1.evil.example:${port}`,
      `${EXTRA_HOST}:80`,
    ];
    for (const bad of foreign) {
      for (const path of ['/v1/status', '/v1/chain/raw?from=0&to=5', '/v1/evidence']) {
        const res = await raw(port, { path, headers: { host: bad } });
        expect(res.status, `${bad} ${path}`).toBe(421);
        expect(res.json).toEqual({ error: { code: 'FORBIDDEN', message: expect.any(String) } });
        expect(res.json).not.toHaveProperty('blocks');
      }
    }
    // No Host at all is not served either (Node's parser refuses an HTTP/1.1 request without one).
    expect((await raw(port, { path: '/v1/status' })).status).toBe(400);
  });

  it('refuses browser cross-origin requests with 403 and never sends CORS headers', async () => {
    const cases: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: `http://127.0.0.1:${port}` },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ];
    for (const headers of cases) {
      const res = await raw(port, { path: '/v1/status', headers: { host, ...headers } });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.json.error?.code).toBe('FORBIDDEN');
      expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    }
    // A CORS preflight is refused the same way.
    const preflight = await raw(port, {
      method: 'OPTIONS',
      path: '/v1/tx',
      headers: { host, origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(403);
    expect(Object.keys(preflight.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    // A user typing the URL into the address bar (Sec-Fetch-Site: none) and our own client are served.
    expect((await raw(port, { path: '/v1/status', headers: { host, 'sec-fetch-site': 'none' } })).status).toBe(200);
    expect((await net.api(0).status()).hospital).toBe(hospital);
  });

  it('refuses a POST that is not application/json with 415 and admits nothing from it', async () => {
    const keys = newUserKeys('pat-plain', 'patient', hospital);
    const signer = createSigner(keys.signSecret);
    const unsigned: UnsignedTx<'registerPatient'> = {
      v: 1,
      type: 'registerPatient',
      actor: keys.userId,
      key: signer.publicKey,
      via: hospital,
      nonce: Date.now() * 1000,
      time: Date.now(),
      body: { encKey: keys.encPublic! },
    };
    const tx: Tx = signTx(unsigned, signer, (await net.api(0).identify()).genesisHash);
    const body = JSON.stringify({ tx: toBase64(tx.bytes), wait: false });
    for (const type of [
      'text/plain',
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json-patch+json',
      'application/json; charset=latin1',
    ]) {
      const res = await raw(port, {
        method: 'POST',
        path: '/v1/tx',
        headers: { host, 'content-type': type, 'content-length': String(Buffer.byteLength(body)) },
        body,
      });
      expect(res.status, type).toBe(415);
      expect(res.json.error?.message).toMatch(/application\/json/);
    }
    const none = await raw(port, { method: 'POST', path: '/v1/tx', headers: { host, 'content-length': String(Buffer.byteLength(body)) }, body });
    expect(none.status).toBe(415);
    // Nothing was admitted: the node does not know the transaction, nor the user.
    await expect(net.api(0).get(`/v1/tx/${tx.idHex}`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await net.api(0).status()).mempool).toBe(0);
    await expect(net.api(0).user('pat-plain')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The same bytes as JSON (charset allowed) are admitted: the 415 was the content type, not the transaction.
    const ok = await raw(port, {
      method: 'POST',
      path: '/v1/tx',
      headers: { host, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    expect(ok.status).toBe(202);
    expect(ok.json.id).toBe(tx.idHex);
  });

  it('answers an oversized streamed body with 413 before it ends, and the same connection then serves the next request', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const framed = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    const text = await new Promise<string>((resolve, reject) => {
      let data = '';
      const s = connect(port, '127.0.0.1', async () => {
        s.write(`POST /v1/tx HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
        // 6 MiB, over the 4 MiB limit, with no Content-Length to refuse it up front.
        for (let i = 0; i < 96 && !s.destroyed; i++) {
          if (!s.write(framed)) await new Promise((r) => s.once('drain', r));
        }
        s.write('0\r\n\r\n');
        s.write(`GET /v1/status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      s.setEncoding('utf8');
      s.on('data', (d: string) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
      setTimeout(() => s.destroy(new Error('no answer')), 20_000).unref();
    });
    const statuses = text.split(/(?=HTTP\/1\.1 \d{3} )/).map((r) => Number(r.slice(9, 12)));
    expect(statuses).toEqual([413, 200]);
    expect(text).toMatch(/"code":"TOO_LARGE"/);
  });

  it('answers a malformed percent-escape or request target with 400 MALFORMED, without an error log', async () => {
    for (const path of ['/v1/users/%E0%A4%A', '/v1/users/%ZZ', '/v1/patients/%/recipients', '/v1/proof/%C0']) {
      const res = await raw(port, { path, headers: { host } });
      expect(res.status, path).toBe(400);
      expect(res.json.error?.code).toBe('MALFORMED');
    }
    const absolute = await raw(port, { path: `http://evil.example/v1/status`, headers: { host } });
    expect(absolute.status).toBe(400);
    expect(log()).not.toMatch(/API handler failed|URIError/);
    // The node is fine.
    expect((await net.api(0).status()).hospital).toBe(hospital);
  });

  it('closes 50 slow-loris sockets within the headers timeout and keeps serving meanwhile', async () => {
    const started = Date.now();
    const closedAt: number[] = [];
    const sockets: Socket[] = [];
    const trickles: NodeJS.Timeout[] = [];
    const allClosed = Promise.all(
      Array.from(
        { length: 50 },
        (_, i) =>
          new Promise<void>((resolve) => {
            const s = connect(port, '127.0.0.1', () => {
              // Half trickle a header line every 200 ms and never finish; half send nothing at all.
              if (i % 2 === 0) {
                s.write(`GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n`);
                trickles.push(setInterval(() => s.writable && s.write(`X-Slow-${Date.now()}: 1\r\n`), 200));
              }
            });
            s.on('error', () => undefined);
            s.on('close', () => {
              closedAt.push(Date.now() - started);
              resolve();
            });
            sockets.push(s);
          }),
      ),
    );
    try {
      // While they hang, a normal client is served at once.
      await new Promise((r) => setTimeout(r, 200));
      expect((await net.api(0).status()).hospital).toBe(hospital);
      const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), HEADERS_TIMEOUT_MS + 2_500));
      expect(await Promise.race([allClosed.then(() => 'closed' as const), deadline])).toBe('closed');
      expect(closedAt).toHaveLength(50);
      // Not before the timeout either: the node did not drop them on sight.
      expect(Math.min(...closedAt)).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
      expect(Math.max(...closedAt)).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + 2_000);
    } finally {
      trickles.forEach(clearInterval);
      sockets.forEach((s) => s.destroy());
    }
    expect((await net.api(0).status()).hospital).toBe(hospital);
  });

  it('rate-limits one connection that floods requests: 503 with Retry-After, the connection stays open, others are served', async () => {
    const N = 400;
    const one = `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    const last = `GET /v1/status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const text = await new Promise<string>((resolve, reject) => {
      let data = '';
      const s = connect(port, '127.0.0.1', () => s.write(one.repeat(N - 1) + last));
      s.setEncoding('utf8');
      s.on('data', (d: string) => (data += d));
      s.on('end', () => resolve(data));
      s.on('error', reject);
      setTimeout(() => s.destroy(new Error('flood did not finish')), 20_000).unref();
    });
    // Responses follow each other directly (a JSON body, then the next status line).
    const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    const statuses = responses.map((r) => Number(r.slice(9, 12)));
    // Every request was answered (none dropped mid-way), in order, on the one connection.
    expect(statuses).toHaveLength(N);
    const ok = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 503).length;
    expect(ok + limited).toBe(N);
    expect(ok).toBeGreaterThanOrEqual(RATE.burst);
    expect(limited).toBeGreaterThan(N / 2);
    // Every 503 says when to come back.
    const busy = responses.filter((r) => r.startsWith('HTTP/1.1 503'));
    for (const r of busy) expect(r).toMatch(/^retry-after: [1-9]\d*\r$/im);
    // Another connection has its own budget.
    expect((await raw(port, { path: '/v1/status', headers: { host } })).status).toBe(200);
  });
});
