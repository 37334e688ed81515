import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { isMedLedgerError, type ErrorCode } from '../../records/errors.js';

/**
 * Minimal JSON-over-HTTP plumbing: routing by method and path pattern, a hard request size limit,
 * and one mapping from typed errors to HTTP statuses. Handlers never see raw sockets.
 *
 * The API listens on loopback only, but loopback is not a trust boundary: any local process, and any web
 * page in a local browser, can reach it. So before a route runs, every request passes, in this order:
 * a per-connection rate limit (503 + Retry-After), a Host allow-list (421, against DNS rebinding), a
 * refusal of browser cross-origin requests (403 on any Origin, or Sec-Fetch-Site other than none /
 * same-origin), a strict request-target parse (400), and for POST a JSON content type (415, so a
 * cross-site "simple" text/plain form post never reaches a handler). No CORS header is ever sent.
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
  /** A JSON body, or with `contentType` a text body sent as it is (GET /metrics). */
  handler(ctx: RequestContext): Promise<{ status?: number; body: unknown; contentType?: string }>;
}

// ---- server limits (each overridable through createApiServer's options) ----

/**
 * Time a client has to send its complete request head. Slow-loris defence: a socket that trickles (or
 * never sends) its headers is answered 408 and closed after this long. Our clients send their headers in
 * one write, so 10 s is generous.
 */
export const API_HEADERS_TIMEOUT_MS = 10_000;
/**
 * Time a client has to send the whole request, head and body. The largest body (limits.maxRequestBytes,
 * 4 MiB by default) crosses loopback in milliseconds. Node stops this clock once the body is complete, so
 * a handler that waits for finality (POST /v1/tx, up to 120 s) is not cut short by it.
 */
export const API_REQUEST_TIMEOUT_MS = 30_000;
/** An idle keep-alive socket is closed after this long; Node announces it (`Keep-Alive: timeout=5`) so clients close first. */
export const API_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Headers beyond this count are ignored (our clients send about ten, browsers about twenty). */
export const API_MAX_HEADERS_COUNT = 64;
/** Request head size limit in bytes (Node's default, stated here so it is not changed by a runtime flag). */
export const API_MAX_HEADER_BYTES = 16 * 1024;
/**
 * Open sockets at most; further connections are dropped on accept. A user's CLI or TUI needs a handful,
 * a benchmark a few dozen; the cap keeps a local process from exhausting the node's file descriptors.
 */
export const API_MAX_CONNECTIONS = 256;
/**
 * Per-connection token bucket: requests per second refilled, and the burst a connection may spend at
 * once. A TUI polls a few times a second and a batch import sends far fewer, larger requests; a local
 * process looping on one socket faster than this gets 503 + Retry-After instead of the node's CPU.
 */
export const API_RATE_PER_SECOND = 200;
export const API_RATE_BURST = 400;
/** Retry-After (seconds) of a 503 raised by a handler (busy mempool, data missing for a proof). */
export const API_RETRY_AFTER_S = 1;

export interface ApiServerOptions {
  maxBodyBytes: number;
  logger: Logger;
  /** The address the API listens on (config api.host); served as a Host name besides 127.0.0.1 and localhost. */
  listenHost?: string;
  /**
   * More Host header values to serve (config api.allowedHosts): `name` is served with the API's port
   * (and without a port only when that port is 80), `name:port` exactly as written.
   */
  allowedHosts?: readonly string[];
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxHeadersCount?: number;
  maxConnections?: number;
  rateLimit?: { perSecond: number; burst: number };
}

/** Counters of refused requests, for the node to report. */
export interface ApiStats {
  rateLimited: number;
  wrongHost: number;
  crossOrigin: number;
  badContentType: number;
  malformedTarget: number;
}

export type ApiServer = Server & { readonly stats: ApiStats };

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
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function compile(pattern: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const re = new RegExp(`^${pattern.replace(/:([a-zA-Z]+)/g, (_, name: string) => (names.push(name), '([^/]+)'))}$`);
  return { re, names };
}

/** `application/json`, optionally with a UTF-8 charset parameter; anything else is refused with 415. */
const JSON_CONTENT_TYPE = /^application\/json[ \t]*(?:;[ \t]*charset[ \t]*=[ \t]*(?:utf-8|"utf-8")[ \t]*)?$/i;

/**
 * Reads a JSON body up to `limit` bytes. Over the limit it rejects at once but keeps draining (and
 * discarding) the rest, so the 413 reaches the client and the connection stays usable; the request
 * timeout bounds the drain. (Leaving the stream mid-body would destroy the socket before the answer.)
 */
function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new HttpError(413, 'TOO_LARGE', `request body over ${limit} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, 'TOO_LARGE', `request body over ${limit} bytes`));
      } else chunks.push(chunk);
    });
    req.once('end', () => {
      if (over) return;
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'MALFORMED', 'request body is not valid JSON'));
      }
    });
    // The client went away mid-body: nothing to answer, and nothing worth an error log.
    req.once('error', () => reject(new HttpError(400, 'MALFORMED', 'request body aborted')));
    req.once('close', () => {
      if (!req.complete) reject(new HttpError(400, 'MALFORMED', 'request body aborted'));
    });
  });
}

/**
 * Seconds a busy node asks the client to wait: the error's `retryAfterS` when it has one, else the
 * "retry in N s" its message states (admission limits, load shedding), else API_RETRY_AFTER_S.
 */
function retryAfterOf(err: Error): number {
  const given = (err as { retryAfterS?: unknown }).retryAfterS;
  if (typeof given === 'number' && Number.isFinite(given)) return Math.max(1, Math.ceil(given));
  const stated = /retry (?:in|after) (\d{1,5}) s\b/.exec(err.message);
  return stated ? Math.max(1, Number(stated[1])) : API_RETRY_AFTER_S;
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}, contentType?: string): void {
  if (res.headersSent || res.destroyed) return;
  const text = contentType !== undefined ? String(body) : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(status === 503 ? { 'retry-after': String(API_RETRY_AFTER_S) } : {}),
    ...extra,
  });
  res.end(text);
}

/** Splits `name[:port]` (or `[v6]:port`) into a lower-case name and an optional port. */
function splitHost(value: string): { name: string; port?: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(value.trim().toLowerCase());
  if (!m) return { name: value.toLowerCase() };
  return m[2] !== undefined ? { name: m[1]!, port: m[2] } : { name: m[1]! };
}

/** The Host check: a fixed list of names served with the port the connection came in on, plus exact `name:port` entries. */
function hostChecker(listenHost: string | undefined, extra: readonly string[]): (host: string, localPort: number) => boolean {
  const names = new Set(['127.0.0.1', 'localhost', ...(listenHost ? [listenHost.toLowerCase()] : [])]);
  const exact = new Set<string>();
  for (const entry of extra) {
    const { name, port } = splitHost(entry);
    if (port !== undefined) exact.add(`${name}:${Number(port)}`);
    else names.add(name);
  }
  return (host, localPort) => {
    const { name, port } = splitHost(host);
    if (port === undefined) return localPort === 80 && names.has(name);
    const key = `${name}:${Number(port)}`;
    return exact.has(key) || (Number(port) === localPort && names.has(name));
  };
}

/** Per-socket token bucket; `take` answers 0 when a request may go ahead, else the seconds to wait. */
class TokenBucket {
  private tokens: number;
  private last: number;
  limited = false;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond));
  }
}

/** The request target in origin form (`/path?query`); absolute-form, `*` and bad escapes are refused. */
function parseTarget(raw: string | undefined): URL {
  if (!raw || !raw.startsWith('/')) throw new HttpError(400, 'MALFORMED', 'the request target must be a path');
  try {
    // A fixed origin in front: `//x/y` stays the path `//x/y` instead of naming a host.
    return new URL(`http://api${raw}`);
  } catch {
    throw new HttpError(400, 'MALFORMED', 'malformed request target');
  }
}

function decodeParam(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new HttpError(400, 'MALFORMED', 'malformed percent-escape in the path');
  }
}

export function createApiServer(routes: Route[], opts: ApiServerOptions): ApiServer {
  const compiled = routes.map((r) => ({ ...r, ...compile(r.pattern) }));
  const headersTimeout = opts.headersTimeoutMs ?? API_HEADERS_TIMEOUT_MS;
  const requestTimeout = Math.max(opts.requestTimeoutMs ?? API_REQUEST_TIMEOUT_MS, headersTimeout);
  const rate = opts.rateLimit ?? { perSecond: API_RATE_PER_SECOND, burst: API_RATE_BURST };
  const hostAllowed = hostChecker(opts.listenHost, opts.allowedHosts ?? []);
  const buckets = new WeakMap<Socket, TokenBucket>();
  const stats: ApiStats = { rateLimited: 0, wrongHost: 0, crossOrigin: 0, badContentType: 0, malformedTarget: 0 };
  let lastLimitWarn = 0;

  const server = createServer(
    {
      headersTimeout,
      requestTimeout,
      maxHeaderSize: API_MAX_HEADER_BYTES,
      // Node checks the two timeouts above only this often (default 30 s): check well within them.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
    async (req, res) => {
      const started = Date.now();
      const socket = req.socket;
      // The socket has begun a request: the pre-request idle timer (below) has done its job.
      socket.setTimeout(0);
      let path = '';
      try {
        let bucket = buckets.get(socket);
        if (!bucket) buckets.set(socket, (bucket = new TokenBucket(rate.perSecond, rate.burst, started)));
        const wait = bucket.take(started);
        if (wait > 0) {
          stats.rateLimited++;
          if (!bucket.limited || started - lastLimitWarn > 10_000) {
            bucket.limited = true;
            lastLimitWarn = started;
            opts.logger.warn({ rateLimited: stats.rateLimited, remote: socket.remotePort }, 'API rate limit: a connection sends requests too fast');
          }
          throw new HttpError(503, 'UNAVAILABLE', `too many requests on this connection: retry after ${wait} s`, { 'retry-after': String(wait) });
        }
        const hosts = req.headersDistinct.host;
        if (!hosts || hosts.length !== 1 || !hostAllowed(hosts[0]!, socket.localPort ?? 0)) {
          stats.wrongHost++;
          throw new HttpError(421, 'FORBIDDEN', 'this node does not serve that Host name (see api.allowedHosts in the node config)');
        }
        const fetchSite = req.headers['sec-fetch-site'];
        if (req.headers.origin !== undefined || (fetchSite !== undefined && fetchSite !== 'none' && fetchSite !== 'same-origin')) {
          stats.crossOrigin++;
          throw new HttpError(403, 'FORBIDDEN', 'cross-origin requests are not served: the node API has no browser clients');
        }
        let url: URL;
        try {
          url = parseTarget(req.url);
        } catch (err) {
          stats.malformedTarget++;
          throw err;
        }
        path = url.pathname;
        const candidates = compiled.filter((r) => r.re.test(url.pathname));
        if (candidates.length === 0) throw new HttpError(404, 'NOT_FOUND', `no such endpoint ${url.pathname}`);
        const route = candidates.find((r) => r.method === req.method);
        if (!route) throw new HttpError(405, 'MALFORMED', `method ${req.method} not allowed on ${url.pathname}`);
        const match = route.re.exec(url.pathname)!;
        let params: Record<string, string>;
        try {
          params = Object.fromEntries(route.names.map((n, i) => [n, decodeParam(match[i + 1]!)]));
        } catch (err) {
          stats.malformedTarget++;
          throw err;
        }
        let body: unknown;
        if (req.method === 'POST') {
          if (!JSON_CONTENT_TYPE.test(req.headers['content-type'] ?? '')) {
            stats.badContentType++;
            throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'POST bodies must be sent with Content-Type: application/json');
          }
          body = await readBody(req, opts.maxBodyBytes);
        }
        const result = await route.handler({ method: req.method!, url: req.url!, params, query: url.searchParams, headers: req.headers, body });
        send(res, result.status ?? 200, result.body, {}, result.contentType);
      } catch (err) {
        if (err instanceof HttpError) send(res, err.status, { error: { code: err.code, message: err.message } }, err.headers);
        else if (isMedLedgerError(err)) {
          const status = STATUS[err.code];
          send(res, status, { error: { code: err.code, message: err.message } }, status === 503 ? { 'retry-after': String(retryAfterOf(err)) } : {});
        } else {
          opts.logger.error({ err }, 'API handler failed');
          send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
        }
      } finally {
        // Paths carry ids only; bodies (ciphertext, signatures) are never logged.
        opts.logger.debug({ method: req.method, path, status: res.statusCode, ms: Date.now() - started }, 'api');
      }
    },
  );
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? API_KEEP_ALIVE_TIMEOUT_MS;
  server.maxHeadersCount = opts.maxHeadersCount ?? API_MAX_HEADERS_COUNT;
  server.maxConnections = opts.maxConnections ?? API_MAX_CONNECTIONS;
  // Node's headers timeout starts with a request's first byte: a socket that never sends one is closed
  // by this idle timer instead (cleared when its first request begins; Node's keep-alive timer takes over).
  server.on('connection', (socket: Socket) => socket.setTimeout(headersTimeout));
  return Object.assign(server, { stats });
}

export { HttpError };
