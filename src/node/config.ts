import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { hospitalIdSchema } from '../records/ids.js';
import { MAX_PENDING_PER_USER, REGISTRATIONS_PER_DAY, REGISTRATIONS_PER_MINUTE, TX_BURST_PER_USER, TX_RATE_PER_USER } from './admissionLimits.js';

/** A node's configuration file (JSON). Relative paths are resolved against the file's directory. */
const loopbackHost = z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'the API listens on a loopback address (127.0.0.0/8) only');

/** `name` or `name:port` as sent in a Host header (letters, digits, dots, dashes; or `[v6]`); matched case-insensitively. */
const hostHeaderValue = z
  .string()
  .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/, 'a host name or address, optionally with :port');

export const nodeConfigSchema = z.strictObject({
  name: z.string().min(1).max(60),
  hospital: hospitalIdSchema,
  dataDir: z.string(),
  genesisFile: z.string(),
  /** Ed25519 validator secret of this hospital (JSON `{ "secretKey": hex }`, mode 0600). */
  validatorKeyFile: z.string(),
  /**
   * X25519 secret of this hospital's statistics aggregator (JSON `{ "secretKey": hex }`, mode 0600; issue 13).
   * Optional: a node without it takes no part in private statistics.
   */
  aggregatorKeyFile: z.string().optional(),
  /** libp2p identity; created on first start when missing. Defaults to <dataDir>/peer.key. */
  peerKeyFile: z.string().optional(),
  /** Where users' keystore files live for the TUI and CLI on this host. Defaults to <dataDir>/keystores. */
  keystoreDir: z.string().optional(),
  api: z.strictObject({
    host: loopbackHost.default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    /**
     * Host header values served besides 127.0.0.1, localhost and `host` (each with the API port): `name`
     * (served with the API port) or `name:port` (exactly; e.g. an SSH tunnel's local port). Every other
     * Host is refused, so a DNS-rebinding web page cannot read the API.
     */
    allowedHosts: z.array(hostHeaderValue).max(32).default([]),
    /** Time a client has to send its request headers (default 10 s); tests shorten it. */
    headersTimeoutMs: z.number().int().min(100).max(60_000).optional(),
    /** Per-connection request rate limit (default 200 requests/s, burst 400). */
    rateLimit: z.strictObject({ perSecond: z.number().min(1).max(100_000), burst: z.number().int().min(1).max(1_000_000) }).optional(),
  }),
  p2p: z.strictObject({
    listen: z.array(z.string()).min(1),
    announce: z.array(z.string()).default([]),
    /** The other hospitals' nodes: dialled at start and redialled when they go away. */
    peers: z.array(z.strictObject({ peerId: z.string(), addrs: z.array(z.string()) })).default([]),
  }),
  /** Admission limits (README "Admission limits"; the reasons are beside the constants in admissionLimits.ts). */
  limits: z
    .strictObject({
      maxRequestBytes: z
        .number()
        .int()
        .min(1024)
        .default(4 * 1024 * 1024),
      /**
       * Hard bounds of the mempool; new API submissions are shed before this (see loadShedder.ts). The byte
       * bound (payloads included) must fit the node's memory budget (128 MB heap, ~300 MB resident) beside
       * everything else, and still hold about ten full blocks (maxBlockBytes 3 MiB by default).
       */
      mempoolMaxTxs: z.number().int().min(10).default(16_000),
      mempoolMaxBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(32 * 1024 * 1024),
      /** Resident memory above which the node sheds new submissions (503), to stay under ~300 MB. */
      rssHighWaterMB: z.number().int().min(64).default(250),
      /** Pending transactions per user in this node's mempool (local and gossiped alike). */
      mempoolMaxPerUser: z.number().int().min(1).default(MAX_PENDING_PER_USER),
      /** Token bucket per user for submissions through this node's API (not gossip). */
      txPerSecondPerUser: z.number().positive().default(TX_RATE_PER_USER),
      txBurstPerUser: z.number().int().min(1).default(TX_BURST_PER_USER),
      /** New patient self-registrations this node accepts through its API. */
      registrationsPerMinute: z.number().int().min(1).default(REGISTRATIONS_PER_MINUTE),
      registrationsPerDay: z.number().int().min(1).default(REGISTRATIONS_PER_DAY),
    })
    .prefault({}),
  /** Integrity monitor intervals (defaults: a full pass from genesis hourly, index and state checks every 5 min). */
  integrity: z
    .strictObject({
      rescanIntervalMs: z.number().int().min(1_000).optional(),
      crossCheckIntervalMs: z.number().int().min(1_000).optional(),
    })
    .prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Enables /v1/test/* endpoints (network partition toggles). Never on in production. */
  testControls: z.boolean().default(false),
});
export type NodeConfig = z.infer<typeof nodeConfigSchema> & { peerKeyFile: string; keystoreDir: string; configDir: string };

export function parseNodeConfig(raw: unknown, configDir: string): NodeConfig {
  const parsed = nodeConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`invalid node config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const c = parsed.data;
  const at = (p: string) => resolve(configDir, p);
  const dataDir = at(c.dataDir);
  return {
    ...c,
    configDir,
    dataDir,
    genesisFile: at(c.genesisFile),
    validatorKeyFile: at(c.validatorKeyFile),
    ...(c.aggregatorKeyFile !== undefined ? { aggregatorKeyFile: at(c.aggregatorKeyFile) } : {}),
    peerKeyFile: c.peerKeyFile ? at(c.peerKeyFile) : resolve(dataDir, 'peer.key'),
    keystoreDir: c.keystoreDir ? at(c.keystoreDir) : resolve(dataDir, 'keystores'),
  };
}

export function loadNodeConfig(file: string): NodeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read node config ${file}: ${(err as Error).message}`);
  }
  return parseNodeConfig(raw, dirname(resolve(file)));
}
