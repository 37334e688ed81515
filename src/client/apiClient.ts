import { bytesEqual, toBase64, toHex } from '../records/crypto/bytes.js';
import type { Signer } from '../records/crypto/signature.js';
import { MedLedgerError, type ErrorCode } from '../records/errors.js';
import { signedRequestHeaders } from '../records/requestAuth.js';
import type { Tx } from '../records/tx/types.js';
import { parseGenesis, type Genesis } from '../consensus/genesis.js';
import type {
  ErrorResponse,
  GenesisResponse,
  Overview,
  PublicInvitation,
  PublicUser,
  StatusResponse,
  SubmitBatchResponse,
  StatsBatchesResponse,
  StatsJobResponse,
  SubmitTxResponse,
  WireWrappedKey,
} from '../api/contract.js';
import { statsBatchesResponseSchema, statsJobResponseSchema } from '../api/contract.js';
import type { ZodType } from 'zod';

/** Error from a node, with the node's error code (or NETWORK when the node could not be reached). */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode | 'NETWORK' | 'INTERNAL' | string,
    message: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

/** A 503 inside the client: the error to report, and the node's Retry-After. */
class RetryableStatus extends Error {
  constructor(
    readonly error: ApiError,
    readonly retryAfterMs: number | undefined,
  ) {
    super(error.message);
  }
}

/**
 * When the client tries a request again. A 503 (a busy node: rate limit, load shedding, admission
 * limits) is retried after the node's Retry-After, for every request: the node refuses before it acts.
 * A dropped keep-alive socket (the node closed an idle connection just as the request went out, or
 * restarted) is retried only for requests a second attempt cannot make act twice: every GET (all are
 * reads), POST /v1/tx (a signed transaction is identified by its hash; the node answers a duplicate with
 * the pending or final result of the first), and POST /v1/txs once (the node answers a transaction of
 * the batch it already holds, pending or final, as accepted; a second drop reaches the caller, who
 * decides).
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Total time spent waiting between attempts, at most. A Retry-After beyond what is left is not waited for. */
  budgetMs: number;
  /** First backoff after a dropped socket (doubled each time, with jitter), and its cap. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this is not waited for: the error reaches the caller at once. */
  maxRetryAfterMs: number;
  /** Attempts of POST /v1/txs after a dropped socket, beyond the first (within `attempts`). */
  batchDropRetries: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  budgetMs: 10_000,
  baseDelayMs: 100,
  maxDelayMs: 2_000,
  maxRetryAfterMs: 5_000,
  batchDropRetries: 1,
};

const NO_RETRY: RetryPolicy = { ...DEFAULT_RETRY, attempts: 1 };

/** Socket errors that mean "the connection went away under this request", as undici and Node report them. */
const DROPPED_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

export function droppedSocket(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && DROPPED_CODES.has(e.code)) return true;
    if (typeof e.message === 'string' && e.message.includes('other side closed')) return true;
  }
  return false;
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date), in milliseconds; undefined when absent or unreadable. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d{1,6}$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Who a client is talking to: the node (its libp2p peer id, its hospital) and the network (its genesis).
 * Signed transactions and view requests are bound to `genesisHash`; view requests also to `peerId`.
 */
export interface NodeIdentity {
  peerId: string;
  hospital: string;
  network: string;
  genesisHash: Uint8Array;
  /** True when the genesis hash came from a genesis file the user pinned, not from the node. */
  pinned: boolean;
}

/** HTTP client of one node's API. Knows nothing about keys beyond signing requests with a Signer. */
export class ApiClient {
  readonly base: string;
  private readonly retry: RetryPolicy;
  private identity?: Promise<NodeIdentity>;
  private learned?: NodeIdentity;
  private pinned?: Genesis;

  constructor(base: string, opts: { retry?: Partial<RetryPolicy> | false } = {}) {
    this.base = base.replace(/\/+$/, '');
    this.retry = opts.retry === false ? NO_RETRY : { ...DEFAULT_RETRY, ...opts.retry };
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    signer?: { user: string; signer: Signer },
    /** Attempts after a dropped socket, beyond the first: only where a second one cannot act twice (see RetryPolicy). */
    dropRetries = method === 'GET' ? Infinity : 0,
  ): Promise<T> {
    const policy = this.retry;
    let waited = 0;
    let drops = 0;
    for (let attempt = 1; ; attempt++) {
      let delay: number;
      try {
        return await this.once<T>(method, path, body, signer);
      } catch (err) {
        const failure = err instanceof RetryableStatus ? err.error : err;
        if (attempt >= policy.attempts) throw failure;
        if (err instanceof RetryableStatus) {
          const after = err.retryAfterMs;
          if (after !== undefined && after > policy.maxRetryAfterMs) throw failure;
          delay = after ?? this.backoff(attempt);
          if (waited + delay > policy.budgetMs) throw failure;
        } else if (err instanceof ApiError && err.code === 'NETWORK' && drops < dropRetries && droppedSocket(err.cause)) {
          drops++;
          delay = Math.min(this.backoff(attempt), policy.budgetMs - waited);
          if (delay <= 0) throw failure;
        } else throw failure;
      }
      waited += delay;
      await sleep(delay);
    }
  }

  private backoff(attempt: number): number {
    const exp = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    // Jitter: clients dropped together do not come back together.
    return Math.round(exp / 2 + (Math.random() * exp) / 2);
  }

  /** One attempt; a 503 comes back as RetryableStatus (the caller decides), other failures as ApiError. */
  private async once<T>(method: 'GET' | 'POST', path: string, body?: unknown, signer?: { user: string; signer: Signer }): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (signer) {
      // Signed afresh for every attempt (new time, new nonce), so a retry is never refused as stale or as a
      // replay; and for this node on this network only, so no node that sees it can use it elsewhere.
      const { peerId, genesisHash } = await this.identify();
      Object.assign(headers, signedRequestHeaders(signer.signer, signer.user, genesisHash, { method, path, node: peerId }));
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      text = await res.text();
    } catch (err) {
      throw new ApiError('NETWORK', `cannot reach node at ${this.base}: ${(err as Error).message}`, 0, { cause: err });
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      const error = new ApiError('INTERNAL', `node answered ${res.status} with a non-JSON body`, res.status);
      if (res.status === 503) throw new RetryableStatus(error, retryAfterMs(res.headers.get('retry-after')));
      throw error;
    }
    if (!res.ok) {
      const err = (json as ErrorResponse | undefined)?.error;
      const error = new ApiError(err?.code ?? 'INTERNAL', err?.message ?? `HTTP ${res.status}`, res.status);
      if (res.status === 503) throw new RetryableStatus(error, retryAfterMs(res.headers.get('retry-after')));
      throw error;
    }
    return json as T;
  }

  status(): Promise<StatusResponse> {
    return this.call('GET', '/v1/status');
  }

  /**
   * Pins the network: from now on this client signs only for the network of this genesis file (one the user
   * holds), and refuses a node that serves another genesis or whose peer id the file does not give its hospital.
   */
  pinGenesis(genesis: Genesis): void {
    this.pinned = genesis;
    this.identity = undefined;
    this.learned = undefined;
  }

  /** The identity identify() learned, once it has (undefined before). */
  get knownIdentity(): NodeIdentity | undefined {
    return this.learned;
  }

  /**
   * The node's identity and its network's genesis hash, learned once per client and then fixed. With a
   * pinned genesis (pinGenesis) the node must serve exactly that genesis and its peer id must be the one the
   * file names for its hospital; otherwise the client takes the genesis the node serves, after checking that
   * the file hashes to the hash the node states and names the network of its status.
   *
   * Only the pinned file makes the network binding meaningful against a lying node: a node that wants the
   * user's signature for another network can serve that network's genesis, and an unpinned client would sign
   * under it. Pinning is what ties the user's signatures to the network the user means; without it, the
   * binding still stops every honest node of another network from accepting them.
   */
  identify(): Promise<NodeIdentity> {
    if (this.identity) return this.identity;
    const identity = this.fetchIdentity(this.pinned);
    this.identity = identity;
    // A failure is not remembered: the next signed request asks again.
    identity.then(
      (id) => {
        if (this.identity === identity) this.learned = id;
      },
      () => {
        if (this.identity === identity) this.identity = undefined;
      },
    );
    return identity;
  }

  private async fetchIdentity(pinned?: Genesis): Promise<NodeIdentity> {
    const [status, served] = await Promise.all([this.status(), this.call<GenesisResponse>('GET', '/v1/genesis')]);
    let genesis: Genesis;
    try {
      genesis = parseGenesis(served.genesis);
    } catch (err) {
      throw new ApiError('MALFORMED', `the node at ${this.base} serves an invalid genesis file: ${(err as Error).message}`, 0);
    }
    if (toHex(genesis.hash) !== served.hash || genesis.file.network !== status.network) {
      throw new ApiError('MALFORMED', `the node at ${this.base} serves a genesis file that does not match its own statement of network ${status.network}`, 0);
    }
    if (pinned) {
      if (!bytesEqual(pinned.hash, genesis.hash)) {
        throw new ApiError(
          'FORBIDDEN',
          `the node at ${this.base} is on network ${status.network} (genesis ${served.hash.slice(0, 16)}…), not on the pinned network ${pinned.file.network} (genesis ${toHex(pinned.hash).slice(0, 16)}…)`,
          0,
        );
      }
      const own = pinned.file.hospitals.find((h) => h.id === status.hospital);
      if (!own || own.peerId !== status.peerId) {
        throw new ApiError(
          'FORBIDDEN',
          `the node at ${this.base} says it is ${status.hospital} (${status.peerId}), which the pinned genesis file does not confirm`,
          0,
        );
      }
    }
    return { peerId: status.peerId, hospital: status.hospital, network: status.network, genesisHash: genesis.hash, pinned: pinned !== undefined };
  }

  invitation(id: string): Promise<PublicInvitation> {
    return this.call('GET', `/v1/invitations/${encodeURIComponent(id)}`);
  }

  user(id: string): Promise<PublicUser> {
    return this.call('GET', `/v1/users/${encodeURIComponent(id)}`);
  }

  /** Idempotent, so retried after a dropped socket too: the node answers a duplicate with the first one's result. */
  submit(tx: Tx, payload?: Uint8Array, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<SubmitTxResponse> {
    const body = {
      tx: toBase64(tx.bytes),
      ...(payload ? { payload: toBase64(payload) } : {}),
      wait: opts.wait ?? true,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    };
    return this.call('POST', '/v1/tx', body, undefined, Infinity);
  }

  /**
   * Admits a batch without waiting. Sent again once after a dropped socket: a transaction the first attempt
   * got admitted comes back accepted (pending: a duplicate; final: already known), never as a replay.
   */
  submitBatch(items: { tx: Tx; payload?: Uint8Array }[]): Promise<SubmitBatchResponse> {
    const body = { txs: items.map((i) => ({ tx: toBase64(i.tx.bytes), ...(i.payload ? { payload: toBase64(i.payload) } : {}) })) };
    return this.call('POST', '/v1/txs', body, undefined, this.retry.batchDropRetries);
  }

  me(user: string, signer: Signer): Promise<Overview> {
    return this.call('GET', '/v1/me', undefined, { user, signer });
  }

  recipients(user: string, signer: Signer, patient: string): Promise<{ recipients: PublicUser[] }> {
    return this.call('GET', `/v1/patients/${encodeURIComponent(patient)}/recipients`, undefined, { user, signer });
  }

  patientKeys(user: string, signer: Signer, patient: string): Promise<{ keys: { blob: string; key: WireWrappedKey }[] }> {
    return this.call('GET', `/v1/patients/${encodeURIComponent(patient)}/keys`, undefined, { user, signer });
  }

  /** Stores the signer's key backup (issue 10): a view request signed by the owner. */
  putBackup(user: string, signer: Signer, backup: unknown): Promise<{ stored: boolean }> {
    return this.call('POST', '/v1/backup', { backup }, { user, signer });
  }

  /** A user's key backup: `signer` is the recovery code's auth key (or the owner's own key). */
  getBackup(user: string, signer: Signer): Promise<{ backup: unknown }> {
    return this.call('GET', `/v1/backup/${encodeURIComponent(user)}`, undefined, { user, signer });
  }

  /** An aggregation job of private statistics (issue 13): a view request of an auditor. */
  async statsJob(user: string, signer: Signer, job: string): Promise<StatsJobResponse> {
    return checked(statsJobResponseSchema, await this.call('GET', `/v1/stats/jobs/${encodeURIComponent(job)}`, undefined, { user, signer }), 'statistics job');
  }

  /** The statistics batches of one measure, with report counts and jobs (issue 13): a view request of an auditor. */
  async statsBatches(user: string, signer: Signer, measure: string): Promise<StatsBatchesResponse> {
    const path = `/v1/stats/batches?measure=${encodeURIComponent(measure)}`;
    return checked(statsBatchesResponseSchema, await this.call('GET', path, undefined, { user, signer }), 'statistics batches');
  }

  /** GET on any path, for endpoints added by later features (chain, proofs, integrity). */
  get<T>(path: string): Promise<T> {
    return this.call('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call('POST', path, body);
  }
}

/** A node's answer checked against its wire schema: a malformed answer is the node's fault, never trusted. */
function checked<T>(schema: ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new ApiError(
      'MALFORMED',
      `the node sent a malformed ${what}: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`.trim(),
      0,
    );
  return r.data;
}

export { MedLedgerError };
