import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { fromBase64 } from '../../records/crypto/bytes.js';
import { verifySignature } from '../../records/crypto/signature.js';
import { MedLedgerError } from '../../records/errors.js';
import { userIdSchema } from '../../records/ids.js';
import { BACKUP_MAX_BYTES, checkBackup, type Backup } from '../../records/recovery.js';
import { AUTH_HEADERS, REQUEST_MAX_SKEW_MS, REQUEST_NONCE_PATTERN, requestSigningMessage } from '../../records/requestAuth.js';
import type { User } from '../../records/state/types.js';
import type { ApiBackend } from './backend.js';
import type { RequestContext, Route } from './http.js';
import type { RequestNonces } from './requestNonces.js';

/**
 * Key backups (issue 10, recovery): one file per user, `<dataDir>/backups/<user>.json`, at most
 * BACKUP_MAX_BYTES. The node holds only ciphertext sealed to a key derived from the user's recovery code, the
 * code's public keys and the owner's signature (records/recovery.ts): nothing it can open or guess against.
 *
 * - `POST /v1/backup` {backup}: a view request signed by the user; the backup must name the signer and carry
 *   their signature under the ledger's key of the user. It replaces the user's previous backup.
 * - `GET /v1/backup/:id`: only to a request signed (same fields as a view request: method, path, time, nonce,
 *   this node, this network) by the recovery code's auth key the stored backup names — proof that the
 *   requester knows the code — or by the owner's own key. Anyone else gets 403 (or 404 without a backup).
 */
function backupDir(node: ApiBackend): string {
  return join(node.dataDir, 'backups');
}

function backupFile(node: ApiBackend, userId: string): string {
  if (!userIdSchema.safeParse(userId).success) throw new MedLedgerError('MALFORMED', 'invalid user id');
  return join(backupDir(node), `${userId}.json`);
}

function readBackup(node: ApiBackend, userId: string): Backup | undefined {
  const path = backupFile(node, userId);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as Backup;
}

function writeBackup(node: ApiBackend, userId: string, text: string): void {
  mkdirSync(backupDir(node), { recursive: true, mode: 0o700 });
  const path = backupFile(node, userId);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** Checks the signed-request headers of `ctx` against any of `keys` (for user `who`); the nonce is used once. */
function checkSignedBy(node: ApiBackend, nonces: RequestNonces, ctx: RequestContext, who: string, keys: Uint8Array[]): boolean {
  const header = (name: string) => {
    const v = ctx.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const timeText = header(AUTH_HEADERS.time);
  const time = Number(timeText);
  const nonce = header(AUTH_HEADERS.nonce);
  const target = header(AUTH_HEADERS.node);
  const sig = header(AUTH_HEADERS.sig);
  if (header(AUTH_HEADERS.user) !== who || !sig || !nonce || !target || !timeText || !Number.isSafeInteger(time)) return false;
  if (!REQUEST_NONCE_PATTERN.test(nonce) || target !== node.peerId) return false;
  const now = Date.now();
  if (Math.abs(now - time) > REQUEST_MAX_SKEW_MS) throw new MedLedgerError('BAD_TIME', 'request time is too far from the node clock');
  let sigBytes: Uint8Array;
  try {
    sigBytes = fromBase64(sig);
  } catch {
    return false;
  }
  const message = requestSigningMessage(node.genesis.hash, { method: ctx.method, path: ctx.url, time, nonce, node: target });
  if (!keys.some((k) => verifySignature(k, message, sigBytes))) return false;
  nonces.use(`backup:${who}`, nonce, time, now);
  return true;
}

export function backupRoutes(node: ApiBackend, nonces: RequestNonces, authenticate: (n: ApiBackend, ctx: RequestContext) => User): Route[] {
  return [
    {
      method: 'POST',
      pattern: '/v1/backup',
      handler: async (ctx) => {
        const user = authenticate(node, ctx);
        const body = z.strictObject({ backup: z.unknown() }).safeParse(ctx.body ?? {});
        if (!body.success) throw new MedLedgerError('MALFORMED', 'invalid request: expected {backup}');
        const text = JSON.stringify(body.data.backup);
        if (text.length > BACKUP_MAX_BYTES) throw new MedLedgerError('TOO_LARGE', `a backup is at most ${BACKUP_MAX_BYTES} bytes`);
        const backup = checkBackup(body.data.backup, user.signKey);
        if (backup.userId !== user.id) throw new MedLedgerError('FORBIDDEN', 'a user may store only their own backup');
        writeBackup(node, user.id, text);
        return { body: { stored: true, bytes: text.length } };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/backup/:id',
      handler: async (ctx) => {
        const id = ctx.params.id!;
        const backup = readBackup(node, id);
        if (!backup) throw new MedLedgerError('NOT_FOUND', `no backup for ${id}`);
        const user = node.user(id);
        const keys = [fromBase64(backup.authKey), ...(user?.active ? [user.signKey] : [])];
        if (!checkSignedBy(node, nonces, ctx, id, keys))
          throw new MedLedgerError('FORBIDDEN', `the backup of ${id} is served only to a request signed with its recovery code`);
        return { body: { backup } };
      },
    },
  ];
}
