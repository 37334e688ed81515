import { toBase64 } from '../records/crypto/bytes.js';
import type { Signer } from '../records/crypto/signature.js';
import { MedLedgerError, type ErrorCode } from '../records/errors.js';
import { AUTH_HEADERS, requestSigningMessage } from '../records/requestAuth.js';
import type { Tx } from '../records/tx/types.js';
import type { ErrorResponse, Overview, PublicUser, StatusResponse, SubmitBatchResponse, SubmitTxResponse, WireWrappedKey } from '../node/api/contract.js';

/** Error from a node, with the node's error code (or NETWORK when the node could not be reached). */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode | 'NETWORK' | 'INTERNAL' | string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** HTTP client of one node's API. Knows nothing about keys beyond signing requests with a Signer. */
export class ApiClient {
  readonly base: string;

  constructor(base: string) {
    this.base = base.replace(/\/+$/, '');
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signer?: { user: string; signer: Signer }): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (signer) {
      const time = Date.now();
      headers[AUTH_HEADERS.user] = signer.user;
      headers[AUTH_HEADERS.time] = String(time);
      headers[AUTH_HEADERS.sig] = toBase64(signer.signer.sign(requestSigningMessage(method, path, time)));
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch (err) {
      throw new ApiError('NETWORK', `cannot reach node at ${this.base}: ${(err as Error).message}`, 0);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError('INTERNAL', `node answered ${res.status} with a non-JSON body`, res.status);
    }
    if (!res.ok) {
      const err = (json as ErrorResponse | undefined)?.error;
      throw new ApiError(err?.code ?? 'INTERNAL', err?.message ?? `HTTP ${res.status}`, res.status);
    }
    return json as T;
  }

  status(): Promise<StatusResponse> {
    return this.call('GET', '/v1/status');
  }

  user(id: string): Promise<PublicUser> {
    return this.call('GET', `/v1/users/${encodeURIComponent(id)}`);
  }

  submit(tx: Tx, payload?: Uint8Array, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<SubmitTxResponse> {
    return this.call('POST', '/v1/tx', {
      tx: toBase64(tx.bytes),
      ...(payload ? { payload: toBase64(payload) } : {}),
      wait: opts.wait ?? true,
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    });
  }

  submitBatch(items: { tx: Tx; payload?: Uint8Array }[]): Promise<SubmitBatchResponse> {
    return this.call('POST', '/v1/txs', { txs: items.map((i) => ({ tx: toBase64(i.tx.bytes), ...(i.payload ? { payload: toBase64(i.payload) } : {}) })) });
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

  /** GET on any path, for endpoints added by later features (chain, proofs, integrity). */
  get<T>(path: string): Promise<T> {
    return this.call('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call('POST', path, body);
  }
}

export { MedLedgerError };
