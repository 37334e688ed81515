import { randomBytes } from 'node:crypto';
import { toBase64 } from './crypto/bytes.js';
import type { Signer } from './crypto/signature.js';
import { domainMessage } from './crypto/signingDomain.js';
import { encodeCanonical } from './encoding.js';

/**
 * Signed API requests for views that are not audited actions (a user's own grants, appointments, the
 * recipients to encrypt for, the wrapped keys of a patient). The user signs, under the network's genesis
 * hash: method, path (with its query), time, a fresh random nonce and the peer id of the node the request
 * is for. The node refuses a request signed for another node or another network, one whose time is more
 * than REQUEST_MAX_SKEW_MS from its clock, and one whose nonce it has already seen within that window —
 * so a node (or anyone on the path) that captures a signed request can neither replay it to itself nor
 * to any other node.
 */
export const REQUEST_MAX_SKEW_MS = 60_000;
/** 16 random bytes, lowercase hex. */
export const REQUEST_NONCE_PATTERN = /^[0-9a-f]{32}$/;

export interface SignedRequestFields {
  method: string;
  /** The request target as sent: path and query. */
  path: string;
  time: number;
  nonce: string;
  /** libp2p peer id of the node the request is for (its `status.peerId`, named in the genesis file). */
  node: string;
}

export function requestSigningMessage(genesisHash: Uint8Array, r: SignedRequestFields): Uint8Array {
  return domainMessage('request', genesisHash, encodeCanonical({ method: r.method.toUpperCase(), path: r.path, time: r.time, nonce: r.nonce, node: r.node }));
}

export const AUTH_HEADERS = {
  user: 'x-medledger-user',
  time: 'x-medledger-time',
  nonce: 'x-medledger-nonce',
  node: 'x-medledger-node',
  sig: 'x-medledger-signature',
} as const;

export function newRequestNonce(): string {
  return randomBytes(16).toString('hex');
}

/** The headers of a view request signed by `user` for node `node` on the network of `genesisHash`. */
export function signedRequestHeaders(
  signer: Signer,
  user: string,
  genesisHash: Uint8Array,
  r: { method: string; path: string; node: string; time?: number; nonce?: string },
): Record<string, string> {
  const fields: SignedRequestFields = { method: r.method, path: r.path, node: r.node, time: r.time ?? Date.now(), nonce: r.nonce ?? newRequestNonce() };
  return {
    [AUTH_HEADERS.user]: user,
    [AUTH_HEADERS.time]: String(fields.time),
    [AUTH_HEADERS.nonce]: fields.nonce,
    [AUTH_HEADERS.node]: fields.node,
    [AUTH_HEADERS.sig]: toBase64(signer.sign(requestSigningMessage(genesisHash, fields))),
  };
}
