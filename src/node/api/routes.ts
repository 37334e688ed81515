import { z } from 'zod';
import { fromBase64, toBase64, toHex } from '../../records/crypto/bytes.js';
import { verifySignature } from '../../records/crypto/signature.js';
import { MedLedgerError } from '../../records/errors.js';
import { AUTH_HEADERS, REQUEST_MAX_SKEW_MS, REQUEST_NONCE_PATTERN, requestSigningMessage } from '../../records/requestAuth.js';
import type { User } from '../../records/state/types.js';
import { MAX_BLOCKS_PER_PAGE, submitBatchRequestSchema, submitTxRequestSchema, type GenesisResponse } from '../../api/contract.js';
import type { ApiBackend } from './backend.js';
import type { RequestContext, Route } from './http.js';
import { RequestNonces } from './requestNonces.js';
import { backupRoutes } from './backupRoutes.js';
import { measureSchema } from '../../records/stats/measures.js';

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    throw new MedLedgerError('MALFORMED', `invalid request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/**
 * Checks a signed view request (records/requestAuth.ts): signed for this node (its peer id) on this network
 * (the genesis hash), at a time within REQUEST_MAX_SKEW_MS of the node's clock, by a known and active user's
 * key, with a nonce not seen within that window.
 */
function authenticateRequest(node: ApiBackend, nonces: RequestNonces, ctx: RequestContext): User {
  const header = (name: string) => {
    const v = ctx.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const userId = header(AUTH_HEADERS.user);
  const timeText = header(AUTH_HEADERS.time);
  const time = Number(timeText);
  const nonce = header(AUTH_HEADERS.nonce);
  const target = header(AUTH_HEADERS.node);
  const sig = header(AUTH_HEADERS.sig);
  if (!userId || !sig || !nonce || !target || !timeText || !Number.isSafeInteger(time))
    throw new MedLedgerError('BAD_SIGNATURE', 'this request must be signed by a user');
  if (!REQUEST_NONCE_PATTERN.test(nonce)) throw new MedLedgerError('MALFORMED', 'request nonce must be 16 bytes of lowercase hex');
  if (target !== node.peerId) throw new MedLedgerError('FORBIDDEN', `this request is signed for node ${target.slice(0, 16)}…, not for this node`);
  const now = Date.now();
  if (Math.abs(now - time) > REQUEST_MAX_SKEW_MS) throw new MedLedgerError('BAD_TIME', 'request time is too far from the node clock');
  const user = node.user(userId);
  if (!user) throw new MedLedgerError('UNKNOWN_ACTOR', `unknown user ${userId}`);
  let sigBytes: Uint8Array;
  try {
    sigBytes = fromBase64(sig);
  } catch {
    throw new MedLedgerError('BAD_SIGNATURE', 'malformed request signature');
  }
  const message = requestSigningMessage(node.genesis.hash, { method: ctx.method, path: ctx.url, time, nonce, node: target });
  if (!verifySignature(user.signKey, message, sigBytes)) throw new MedLedgerError('BAD_SIGNATURE', 'request signature does not verify');
  nonces.use(userId, nonce, time, now);
  if (!user.active) throw new MedLedgerError('FORBIDDEN', `${userId} is deactivated`);
  return user;
}

export function apiRoutes(node: ApiBackend): Route[] {
  const nonces = new RequestNonces();
  const authenticate = (n: ApiBackend, ctx: RequestContext) => authenticateRequest(n, nonces, ctx);
  const routes: Route[] = [
    { method: 'GET', pattern: '/v1/status', handler: async () => ({ body: node.status() }) },
    {
      // Prometheus scrapes a fixed path; the text format, not JSON.
      method: 'GET',
      pattern: '/metrics',
      handler: async () => {
        const { contentType, text } = await node.metrics();
        return { body: text, contentType };
      },
    },
    {
      method: 'POST',
      pattern: '/v1/tx',
      handler: async (ctx) => {
        const result = await node.submit(parseBody(submitTxRequestSchema, ctx.body));
        return { status: result.status === 'committed' ? 200 : 202, body: result };
      },
    },
    { method: 'POST', pattern: '/v1/txs', handler: async (ctx) => ({ body: await node.submitBatch(parseBody(submitBatchRequestSchema, ctx.body)) }) },
    {
      method: 'GET',
      pattern: '/v1/users/:id',
      handler: async (ctx) => {
        const user = node.publicUser(ctx.params.id!);
        if (!user) throw new MedLedgerError('NOT_FOUND', `unknown user ${ctx.params.id}`);
        return { body: user };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/invitations/:id',
      handler: async (ctx) => {
        const inv = node.invitation(ctx.params.id!);
        if (!inv) throw new MedLedgerError('NOT_FOUND', `no invitation for ${ctx.params.id}`);
        return { body: inv };
      },
    },
    // Where the user's keys were set, with its inclusion proof: clients verify a recipient's key before sealing.
    { method: 'GET', pattern: '/v1/users/:id/key-proof', handler: async (ctx) => ({ body: await node.keyProof(ctx.params.id!) }) },
    { method: 'GET', pattern: '/v1/me', handler: async (ctx) => ({ body: node.overview(authenticate(node, ctx)) }) },
    {
      method: 'GET',
      pattern: '/v1/patients/:id/recipients',
      handler: async (ctx) => ({ body: { recipients: node.recipients(authenticate(node, ctx), ctx.params.id!) } }),
    },
    {
      method: 'GET',
      pattern: '/v1/patients/:id/keys',
      handler: async (ctx) => {
        const user = authenticate(node, ctx);
        // The patient (to grant), or a granted staff member (to re-wrap their own keys in a key rotation, issue 10).
        const granted = node.user(ctx.params.id!)?.grants?.[user.id] !== undefined;
        if (user.id !== ctx.params.id && !granted)
          throw new MedLedgerError('FORBIDDEN', 'only the patient, or staff they granted, may list their wrapped keys');
        const keys = await node.patientKeys(ctx.params.id!, user.id);
        return { body: { keys: keys.map(({ blob, key }) => ({ blob, key: { epk: toBase64(key.epk), w: toBase64(key.w) } })) } };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/chain/blocks',
      handler: async (ctx) => {
        const from = Number(ctx.query.get('from') ?? 0);
        const to = Number(ctx.query.get('to') ?? from + MAX_BLOCKS_PER_PAGE - 1);
        if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to < from)
          throw new MedLedgerError('MALFORMED', 'from and to must be heights with from <= to');
        return { body: { blocks: await node.blocks(from, to) } };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/chain/raw',
      handler: async (ctx) => {
        // Encoded blocks and certificates, for independent re-verification (verify, sync by hand).
        const from = Number(ctx.query.get('from') ?? 0);
        const to = Math.min(Number(ctx.query.get('to') ?? from), from + 99);
        if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to < from)
          throw new MedLedgerError('MALFORMED', 'from and to must be heights with from <= to');
        const blocks = (await node.rawBlocks(from, to)).map(({ height, block, cert }) => ({
          height,
          block: toBase64(block),
          ...(cert ? { cert: toBase64(cert) } : {}),
        }));
        return { body: { blocks } };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/tx/:id',
      handler: async (ctx) => {
        const id = ctx.params.id!;
        if (!/^[0-9a-f]{64}$/.test(id)) throw new MedLedgerError('MALFORMED', 'transaction id must be 64 hex digits');
        const location = await node.txLocation(id);
        if (location) return { body: { id, status: 'committed', ...location } };
        if (node.isPending(id)) return { body: { id, status: 'pending' } };
        throw new MedLedgerError('NOT_FOUND', `transaction ${id} is unknown to this node`);
      },
    },
    // ---- auditors (issue #5). Like the chain endpoints these are unauthenticated on the loopback API: a
    // proof holds one signed transaction (pseudonymous user, patient and record ids, never content).
    {
      method: 'GET',
      pattern: '/v1/genesis',
      handler: async () => ({ body: { hash: toHex(node.genesis.hash), genesis: node.genesis.file } satisfies GenesisResponse }),
    },
    {
      method: 'GET',
      pattern: '/v1/proof/:txId',
      handler: async (ctx) => {
        const id = ctx.params.txId!;
        if (!/^[0-9a-f]{64}$/.test(id)) throw new MedLedgerError('MALFORMED', 'transaction id must be 64 hex digits');
        return { body: await node.proof(id) };
      },
    },
    { method: 'GET', pattern: '/v1/evidence', handler: async () => ({ body: { evidence: await node.evidence() } }) },
    {
      method: 'GET',
      pattern: '/v1/payloads',
      handler: async (ctx) => {
        // What this replica holds of each committed payload of a height range: hashes and markers, never bytes.
        const from = Number(ctx.query.get('from') ?? 1);
        const to = Number(ctx.query.get('to') ?? from);
        if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to < from)
          throw new MedLedgerError('MALFORMED', 'from and to must be heights with from <= to');
        return { body: await node.payloads(from, to) };
      },
    },
  ];
  // ---- private statistics (issue 13): auditors only, signed view requests; aggregate shares and counts only.
  const auditor = (ctx: RequestContext) => {
    const user = authenticate(node, ctx);
    if (user.role !== 'auditor') throw new MedLedgerError('FORBIDDEN', 'statistics are for auditors');
    return user;
  };
  routes.push(
    {
      method: 'GET',
      pattern: '/v1/stats/jobs/:id',
      handler: async (ctx) => {
        auditor(ctx);
        const id = ctx.params.id!;
        if (!/^[0-9a-f]{64}$/.test(id)) throw new MedLedgerError('MALFORMED', 'a job id is a query transaction id (64 hex digits)');
        const job = node.statsJob(id);
        if (!job) throw new MedLedgerError('NOT_FOUND', `no statistics job ${id}`);
        return { body: job };
      },
    },
    {
      method: 'GET',
      pattern: '/v1/stats/batches',
      handler: async (ctx) => {
        auditor(ctx);
        const measure = measureSchema.safeParse(ctx.query.get('measure'));
        if (!measure.success) throw new MedLedgerError('MALFORMED', `measure must be one of ${measureSchema.options.join(', ')}`);
        return { body: node.statsBatches(measure.data) };
      },
    },
  );
  // Key backups of the recovery kit (issue 10): ciphertext only, read back with the recovery code.
  routes.push(...backupRoutes(node, nonces, authenticate));
  if (node.testControls) {
    routes.push({
      method: 'POST',
      pattern: '/v1/test/blocked-peers',
      handler: async (ctx) => {
        const { peers } = parseBody(z.strictObject({ peers: z.array(z.string()) }), ctx.body);
        await node.setBlockedPeers(peers);
        return { body: { blocked: peers } };
      },
    });
  }
  return routes;
}
