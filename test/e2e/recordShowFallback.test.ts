import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cliRunner.js';
import { TestNetwork } from '../support/testNetwork.js';

/**
 * `medledger record show` when the content cannot be read (issue 9, "self-healing"): a proxy on 127.0.0.1 in
 * front of a real node flips one byte of the ciphertext in the answers to record reads (the content, or the
 * attached files), as a replica with a damaged payload would serve it. Read through the proxy alone, `record
 * show` prints what it could not read and exits 2 (text and JSON); given `--api PROXY,NODE`, it reads again
 * through the second node — a second audited read — and shows the record, naming the first attempt.
 */
type Damage = 'content' | 'files';

interface Proxy {
  url: string;
  damage: Damage;
  /** Record reads whose answer was damaged. */
  damaged: number;
  close(): Promise<void>;
}

function flipLastByte(b64: string): string {
  const bytes = Buffer.from(b64, 'base64');
  bytes[bytes.length - 1]! ^= 0x01;
  return bytes.toString('base64');
}

async function startProxy(port: number): Promise<Proxy> {
  const proxy: Proxy = { url: '', damage: 'content', damaged: 0, close: async () => {} };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${port}` } }, (upRes) => {
        const body: Buffer[] = [];
        upRes.on('data', (c: Buffer) => body.push(c));
        upRes.on('end', () => {
          let out = Buffer.concat(body);
          if (req.method === 'POST' && req.url === '/v1/tx' && upRes.statusCode === 200) {
            const answer = JSON.parse(out.toString('utf8')) as { result?: { kind: string; content?: { c: string }; files: { c: string }[] } };
            const r = answer.result;
            if (r?.kind === 'record') {
              if (proxy.damage === 'content' && r.content) r.content.c = flipLastByte(r.content.c);
              if (proxy.damage === 'files') for (const f of r.files) f.c = flipLastByte(f.c);
              proxy.damaged++;
              out = Buffer.from(JSON.stringify(answer));
            }
          }
          res.writeHead(upRes.statusCode!, { ...upRes.headers, 'content-length': String(out.length) });
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

describe('record show when the content cannot be read through a node', () => {
  let net: TestNetwork;
  let proxy: Proxy;
  let dir: string;
  let record: string;
  let node: string;

  beforeAll(async () => {
    net = await TestNetwork.create(1);
    await net.start();
    node = net.node(0).apiUrl;
    await net.patient(0, 'pat-show');
    dir = mkdtempSync(join(tmpdir(), 'medledger-show-'));
    const attachment = join(dir, 'ecg.txt');
    writeFileSync(attachment, 'sinus rhythm\n');
    const created = await cli(['record', 'create', '--api', node, '--user', 'pat-show', '--title', 'ECG', '--notes', 'normal', '--file', attachment, '--json']);
    expect(created.code).toBe(0);
    record = (JSON.parse(created.stdout) as { record: string }).record;
    proxy = await startProxy(net.node(0).apiPort);
  }, 90_000);

  afterAll(async () => {
    await proxy?.close();
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const show = (api: string, extra: string[] = []) => cli(['record', 'show', record, '--api', api, '--user', 'pat-show', ...extra]);

  it('through the damaging node alone: says what could not be read and exits 2 (text and JSON, content or a file)', async () => {
    proxy.damage = 'content';
    const text = await show(proxy.url);
    expect(text.stdout).toMatch(/content\s+not readable: decryption failed/);
    expect(text.stderr).toContain(`the content of ${record} could not be read`);
    expect(text.code).toBe(2);

    const json = await show(proxy.url, ['--json']);
    expect(json.code).toBe(2);
    expect((JSON.parse(json.stdout) as { error?: string }).error).toContain('decryption failed');

    proxy.damage = 'files';
    const file = await show(proxy.url, ['--json']);
    const rec = JSON.parse(file.stdout) as { content?: { notes?: string }; error?: string; files: { error?: string }[] };
    expect(rec.content?.notes).toBe('normal');
    expect(rec.error).toBeUndefined();
    expect(rec.files[0]!.error).toContain('decryption failed');
    expect(file.code).toBe(2);
  }, 60_000);

  it('with --api PROXY,NODE: reads again through the second node and shows the record (exit 0)', async () => {
    proxy.damage = 'content';
    const before = proxy.damaged;
    const json = await show(`${proxy.url},${node}`, ['--json']);
    expect(json.stderr).not.toContain('error');
    expect(json.code).toBe(0);
    const rec = JSON.parse(json.stdout) as {
      content?: { title?: string; notes?: string };
      files: { name?: string; error?: string }[];
      via?: string;
      attempts?: { api: string; tx?: string; error: string }[];
    };
    expect(rec.content).toMatchObject({ title: 'ECG', notes: 'normal' });
    expect(rec.files).toEqual([expect.objectContaining({ name: 'ecg.txt' })]);
    expect(rec.via).toBe(node);
    expect(rec.attempts).toEqual([
      { api: proxy.url, tx: expect.stringMatching(/^[0-9a-f]{64}$/), error: expect.stringContaining('content: decryption failed') },
    ]);
    expect(proxy.damaged).toBe(before + 1);

    const text = await show(`${proxy.url},${node}`);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/notes\s+normal/);
    expect(text.stdout).toContain(`not read via   ${proxy.url}: content: decryption failed`);
    expect(text.stdout).toContain(`read via       ${node}`);

    // Both nodes unreadable: every attempt is named, exit 2.
    const twice = await show(`${proxy.url},${proxy.url}`, ['--json']);
    expect(twice.code).toBe(2);
    expect((JSON.parse(twice.stdout) as { attempts?: unknown[] }).attempts).toHaveLength(1);
  }, 60_000);
});
