import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { peerIdFromString } from '@libp2p/peer-id';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runInit } from '../../src/cli/commands/init.js';
import { genesisBlock } from '../../src/consensus/block.js';
import { genesisSchema, genesisState, parseGenesis } from '../../src/consensus/genesis.js';
import { nodeConfigSchema, parseNodeConfig } from '../../src/node/config.js';
import { fromHex } from '../../src/records/crypto/bytes.js';

/**
 * The example network in config/ (config/README.md): every file parses with the schemas the node and the CLI
 * use, the genesis file is a valid genesis with real keys, the node configs agree with it, and
 * `medledger init` still writes files of exactly the same shape (so the example and its README cannot
 * drift from the code unnoticed).
 */
const CONFIG_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../config');
const GENESIS_FILE = join(CONFIG_DIR, 'genesis.json');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

/** The structure of a JSON value without its scalar values: object keys (sorted), array lengths, types. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, shape((value as Record<string, unknown>)[k])]),
    );
  }
  return value === null ? 'null' : typeof value;
}

const exampleFiles = filesUnder(CONFIG_DIR)
  .map((f) => relative(CONFIG_DIR, f))
  .sort();
const nodeConfigFiles = exampleFiles.filter((f) => f.endsWith('/node.json'));

describe('config/ example network', () => {
  it('holds the genesis, one node config per hospital and the docs, and no secrets', () => {
    expect(exampleFiles).toEqual(['.gitignore', 'README.md', 'genesis.json', 'hosp-a/node.json', 'hosp-b/node.json', 'hosp-c/node.json', 'hosp-d/node.json']);
  });

  it('parses every JSON file with the schema the node uses for it', () => {
    for (const file of exampleFiles.filter((f) => f.endsWith('.json'))) {
      const raw = readJson(join(CONFIG_DIR, file));
      const schema = file === 'genesis.json' ? genesisSchema : nodeConfigSchema;
      const parsed = schema.safeParse(raw);
      expect(parsed.success, `${file}: ${parsed.error?.message}`).toBe(true);
    }
  });

  it('has a valid genesis file with real, distinct keys', () => {
    const raw = readJson(GENESIS_FILE);
    const genesis = parseGenesis(raw);
    // Every field is written out: the file is what the genesis hash is computed over, defaults included.
    expect(genesis.file).toEqual(raw);
    expect(genesis.validators.map((v) => v.hospital)).toEqual(['hosp-a', 'hosp-b', 'hosp-c', 'hosp-d']);
    expect(genesis.file.network).toBe('medledger-example');
    for (const h of genesis.file.hospitals) {
      // Ed25519 public keys that decode to curve points; X25519 keys are any 32 bytes.
      expect(() => ed25519.Point.fromBytes(fromHex(h.validatorKey))).not.toThrow();
      expect(() => ed25519.Point.fromBytes(fromHex(h.admin.signKey))).not.toThrow();
      expect(h.admin.encKey).toMatch(/^[0-9a-f]{64}$/);
      expect(h.aggregatorKey).toMatch(/^[0-9a-f]{64}$/);
      expect(peerIdFromString(h.peerId).type).toBe('Ed25519');
    }
    expect(genesis.stats).toEqual({ batch: 'month' });
    const keys = genesis.file.hospitals.flatMap((h) => [h.validatorKey, h.admin.signKey, h.admin.encKey, h.aggregatorKey, h.peerId]);
    expect(new Set(keys).size).toBe(keys.length);
    // Block 0 and the initial state derive from it: the hospitals and their admins.
    expect(genesisBlock(genesis).header.parent).toEqual(genesis.hash);
    const state = genesisState(genesis);
    for (const [index, h] of genesis.file.hospitals.entries()) {
      expect(state.get('hospitals', h.id)).toMatchObject({ admin: h.admin.id, index, lastNonce: 0, aggregatorKey: fromHex(h.aggregatorKey!) });
      expect(state.get('users', h.admin.id)?.role).toBe('admin');
    }
  });

  it('has node configs that name each genesis hospital once and agree with the genesis', () => {
    const genesis = parseGenesis(readJson(GENESIS_FILE));
    const configs = nodeConfigFiles.map((file) => ({ file, config: parseNodeConfig(readJson(join(CONFIG_DIR, file)), dirname(join(CONFIG_DIR, file))) }));
    expect(configs.map((c) => c.config.hospital).sort()).toEqual(genesis.file.hospitals.map((h) => h.id).sort());
    const peerIdOf = new Map(genesis.file.hospitals.map((h) => [h.id, h.peerId]));
    const listenOf = new Map(configs.map(({ config }) => [peerIdOf.get(config.hospital)!, config.p2p.listen]));
    const ports = new Set<number>();
    for (const { file, config } of configs) {
      expect(file).toBe(`${config.hospital}/node.json`);
      expect(config.name).toBe(config.hospital);
      expect(config.genesisFile).toBe(GENESIS_FILE);
      expect(config.testControls).toBe(false);
      // Loopback only, one port per service.
      expect(config.api.host).toBe('127.0.0.1');
      for (const addr of config.p2p.listen) expect(addr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/);
      ports.add(config.api.port);
      for (const addr of config.p2p.listen) ports.add(Number(addr.split('/').pop()));
      // The other hospitals' nodes, each by the peer id the genesis names and at the address it listens on.
      const own = peerIdOf.get(config.hospital)!;
      const peers = config.p2p.peers.map((p) => p.peerId).sort();
      expect(peers).toEqual([...peerIdOf.values()].filter((id) => id !== own).sort());
      for (const p of config.p2p.peers) expect(p.addrs).toEqual(listenOf.get(p.peerId));
    }
    expect(ports.size).toBe(configs.length * 2);
  });

  describe('`medledger init --nodes 4` writes the same shape', () => {
    let dir: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'medledger-init-'));
      const quiet = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      try {
        await runInit({ nodes: 4, dir: join(dir, 'net'), basePort: 7700 });
      } finally {
        quiet.mockRestore();
      }
    }, 60_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('the public files are the example files; the rest are the secrets config/README.md lists', () => {
      const written = filesUnder(join(dir, 'net'))
        .map((f) => relative(join(dir, 'net'), f))
        .sort();
      const hospitals = ['a', 'b', 'c', 'd'];
      const secrets = hospitals.flatMap((x) => [
        `hosp-${x}/validator.key.json`,
        `hosp-${x}/aggregator.key.json`,
        `hosp-${x}/data/peer.key`,
        `hosp-${x}/data/keystores/admin-${x}.keystore.json`,
        `hosp-${x}/data/keystores/genesis.json`,
      ]);
      const publicFiles = exampleFiles.filter((f) => f.endsWith('.json'));
      expect(written).toEqual([...publicFiles, ...secrets].sort());
    });

    it('the genesis file and every node config have the same keys as the examples', () => {
      const net = join(dir, 'net');
      expect(shape(readJson(join(net, 'genesis.json')))).toEqual(shape(readJson(GENESIS_FILE)));
      expect(parseGenesis(readJson(join(net, 'genesis.json'))).file.consensus).toEqual(parseGenesis(readJson(GENESIS_FILE)).file.consensus);
      expect(parseGenesis(readJson(join(net, 'genesis.json'))).file.stats).toEqual(parseGenesis(readJson(GENESIS_FILE)).file.stats);
      for (const file of nodeConfigFiles) {
        const fresh = readJson(join(net, file));
        const example = readJson(join(CONFIG_DIR, file));
        expect(shape(fresh), file).toEqual(shape(example));
        // Same values too, but for the peer ids (fresh keys): ports, paths, log level, test controls.
        const withoutPeerIds = (c: unknown) => JSON.parse(JSON.stringify(c).replace(/12D3KooW[1-9A-HJ-NP-Za-km-z]+/g, 'PEER'));
        expect(withoutPeerIds(fresh), file).toEqual(withoutPeerIds(example));
      }
    });
  });
});
