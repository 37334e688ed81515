import { concatBytes, utf8 } from './crypto/bytes.js';
import { sha256 } from './crypto/hash.js';

/**
 * Signed API requests for views that are not audited actions (a user's own grants, appointments, the
 * recipients to encrypt for). The user signs method, path and time; the node checks the key on the
 * ledger and a short freshness window.
 */
const REQUEST_DOMAIN = utf8('medledger/request/v1\0');
export const REQUEST_MAX_SKEW_MS = 60_000;

export function requestSigningMessage(method: string, path: string, time: number): Uint8Array {
  return concatBytes(REQUEST_DOMAIN, sha256(utf8(`${method.toUpperCase()} ${path}\n${time}`)));
}

export const AUTH_HEADERS = { user: 'x-medledger-user', time: 'x-medledger-time', sig: 'x-medledger-signature' } as const;
