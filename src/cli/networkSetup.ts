import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { toHex } from '../records/crypto/bytes.js';
import { generateEncryptionKeyPair } from '../records/crypto/keyAgreement.js';
import { generateSigningKeyPair } from '../records/crypto/signature.js';
import { DEFAULT_STATS_SETTING, type StatsSetting } from '../records/stats/batches.js';
import type { ScryptParams } from '../records/keystore.js';
import { consensusParamsSchema, type ConsensusParams, type GenesisFile } from '../consensus/genesis.js';
import { writeKeystore } from '../client/keystoreFiles.js';
import { PINNED_GENESIS_FILE } from '../client/recipientKeys.js';
import { newUserKeys } from '../client/userKeys.js';
import { loadOrCreatePeerKey } from '../node/p2p/peerKey.js';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';

/**
 * Creates a fresh local network on disk: per hospital a validator key, a libp2p key, an admin keystore
 * and a node config; one genesis file naming them all. Used by `medledger cluster` and by the tests.
 */
export interface NetworkNode {
  name: string;
  hospital: string;
  dir: string;
  configFile: string;
  dataDir: string;
  keystoreDir: string;
  apiPort: number;
  p2pPort: number;
  apiUrl: string;
  peerId: string;
  admin: { id: string; password: string };
}

export interface NetworkLayout {
  dir: string;
  network: string;
  genesisFile: string;
  nodes: NetworkNode[];
}

export interface NetworkOptions {
  dir: string;
  nodes: number;
  /** API ports are basePort+i and p2p ports basePort+100+i, unless `ports` names them. */
  basePort: number;
  ports?: { api: number; p2p: number }[];
  network?: string;
  consensus?: Partial<ConsensusParams>;
  testControls?: boolean;
  logLevel?: string;
  /** Node `limits` overrides (load generators play many users far above one person's rate). */
  limits?: Record<string, number>;
  /** The admin's keystore password for a hospital. */
  adminPassword(hospital: string): string;
  kdf?: ScryptParams;
  /** Statistics batches (issue 13); default calendar months. Tests use `{ batchMs }`. */
  stats?: StatsSetting;
}

const letters = 'abcdefghijklmnopqrstuvwxyz';
export const hospitalIdOf = (i: number) => `hosp-${letters[i] ?? i}`;

/** Kept here for existing callers; the client layer owns key generation. */
export { newUserKeys };

function writePrivateJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export async function createNetwork(opts: NetworkOptions): Promise<NetworkLayout> {
  if (opts.nodes < 1 || opts.nodes > 26) throw new Error('a local network has 1 to 26 nodes');
  const network = opts.network ?? 'medledger-local';
  mkdirSync(opts.dir, { recursive: true });
  const nodes: NetworkNode[] = [];
  const hospitals: GenesisFile['hospitals'] = [];
  for (let i = 0; i < opts.nodes; i++) {
    const hospital = hospitalIdOf(i);
    const dir = join(opts.dir, hospital);
    const dataDir = join(dir, 'data');
    const keystoreDir = join(dataDir, 'keystores');
    mkdirSync(keystoreDir, { recursive: true, mode: 0o700 });
    const validator = generateSigningKeyPair();
    writePrivateJson(join(dir, 'validator.key.json'), { secretKey: toHex(validator.secretKey) });
    // Private statistics (issue 13): input shares are sealed to this key; its secret never leaves the node.
    const aggregator = generateEncryptionKeyPair();
    writePrivateJson(join(dir, 'aggregator.key.json'), { secretKey: toHex(aggregator.secretKey) });
    const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(join(dataDir, 'peer.key'))).toString();
    const adminId = `admin-${letters[i] ?? i}`;
    const password = opts.adminPassword(hospital);
    const admin = newUserKeys(adminId, 'admin', hospital);
    writeKeystore(keystoreDir, admin, password, opts.kdf);
    hospitals.push({
      id: hospital,
      name: `Hospital ${(letters[i] ?? String(i)).toUpperCase()}`,
      validatorKey: toHex(validator.publicKey),
      peerId,
      admin: { id: adminId, signKey: toHex(admin.signPublic), encKey: toHex(admin.encPublic!) },
      aggregatorKey: toHex(aggregator.publicKey),
    });
    const apiPort = opts.ports?.[i]?.api ?? opts.basePort + i;
    const p2pPort = opts.ports?.[i]?.p2p ?? opts.basePort + 100 + i;
    nodes.push({
      name: hospital,
      hospital,
      dir,
      configFile: join(dir, 'node.json'),
      dataDir,
      keystoreDir,
      apiPort,
      p2pPort,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      peerId,
      admin: { id: adminId, password },
    });
  }
  const genesis: GenesisFile = {
    network,
    time: Date.now(),
    hospitals,
    consensus: consensusParamsSchema.parse(opts.consensus ?? {}),
    stats: opts.stats ?? DEFAULT_STATS_SETTING,
  };
  const genesisFile = join(opts.dir, 'genesis.json');
  writeFileSync(genesisFile, `${JSON.stringify(genesis, null, 2)}\n`);
  // A copy beside each hospital's keystores: the pinned trust anchor its users' clients check recipients'
  // keys against (client/recipientKeys.ts), so a node cannot hand them a genesis of its own making.
  for (const node of nodes) writeFileSync(join(node.keystoreDir, PINNED_GENESIS_FILE), `${JSON.stringify(genesis, null, 2)}\n`);
  for (const node of nodes) {
    const config = {
      name: node.name,
      hospital: node.hospital,
      dataDir: 'data',
      genesisFile: relative(node.dir, genesisFile),
      validatorKeyFile: 'validator.key.json',
      aggregatorKeyFile: 'aggregator.key.json',
      api: { host: '127.0.0.1', port: node.apiPort },
      p2p: {
        listen: [`/ip4/127.0.0.1/tcp/${node.p2pPort}`],
        announce: [],
        peers: nodes.filter((n) => n !== node).map((n) => ({ peerId: n.peerId, addrs: [`/ip4/127.0.0.1/tcp/${n.p2pPort}`] })),
      },
      logLevel: opts.logLevel ?? 'info',
      testControls: opts.testControls ?? false,
      ...(opts.limits ? { limits: opts.limits } : {}),
    };
    writeFileSync(node.configFile, `${JSON.stringify(config, null, 2)}\n`);
  }
  return { dir: opts.dir, network, genesisFile, nodes };
}
