import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isMedLedgerError, type ErrorCode } from '../../records/errors.js';

/**
 * Minimal JSON-over-HTTP plumbing: routing by method and path pattern, a hard request size limit,
 * and one mapping from typed errors to HTTP statuses. Handlers never see raw sockets.
 */
export interface RequestContext {
  method: string;
  /** Path with query string, as signed by clients. */
  url: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
}

export interface Route {
  method: 'GET' | 'POST';
  pattern: string; // e.g. /v1/users/:id
  handler(ctx: RequestContext): Promise<{ status?: number; body: unknown }>;
}

const STATUS: Record<ErrorCode, number> = {
  MALFORMED: 400,
  TOO_LARGE: 413,
  BAD_SIGNATURE: 401,
  UNKNOWN_ACTOR: 404,
  KEY_MISMATCH: 401,
  REPLAY: 409,
  BAD_TIME: 400,
  USER_EXISTS: 409,
  WRONG_PASSWORD: 401,
  TAMPERED: 400,
  WEAK_PASSWORD: 400,
  NOT_FOUND: 404,
  FORBIDDEN: 403,
  INVALID_BLOCK: 400,
  INVALID_CERTIFICATE: 400,
  UNAVAILABLE: 503,
  CONFLICT: 409,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function compile(pattern: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const re = new RegExp(`^${pattern.replace(/:([a-zA-Z]+)/g, (_, name: string) => (names.push(name), '([^/]+)'))}$`);
  return { re, names };
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, 'TOO_LARGE', `request body over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, 'TOO_LARGE', `request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'MALFORMED', 'request body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function createApiServer(routes: Route[], opts: { maxBodyBytes: number; logger: Logger }): Server {
  const compiled = routes.map((r) => ({ ...r, ...compile(r.pattern) }));
  return createServer(async (req, res) => {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      const candidates = compiled.filter((r) => r.re.test(url.pathname));
      if (candidates.length === 0) throw new HttpError(404, 'NOT_FOUND', `no such endpoint ${url.pathname}`);
      const route = candidates.find((r) => r.method === req.method);
      if (!route) throw new HttpError(405, 'MALFORMED', `method ${req.method} not allowed on ${url.pathname}`);
      const match = route.re.exec(url.pathname)!;
      const params = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
      const body = req.method === 'POST' ? await readBody(req, opts.maxBodyBytes) : undefined;
      const result = await route.handler({ method: req.method!, url: req.url ?? '/', params, query: url.searchParams, headers: req.headers, body });
      send(res, result.status ?? 200, result.body);
    } catch (err) {
      if (err instanceof HttpError) send(res, err.status, { error: { code: err.code, message: err.message } });
      else if (isMedLedgerError(err)) send(res, STATUS[err.code], { error: { code: err.code, message: err.message } });
      else {
        opts.logger.error({ err }, 'API handler failed');
        send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      }
    } finally {
      // Paths carry ids only; bodies (ciphertext, signatures) are never logged.
      opts.logger.debug({ method: req.method, path: url.pathname, status: res.statusCode, ms: Date.now() - started }, 'api');
    }
  });
}

export { HttpError };
