import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetwork, type NetworkLayout } from '../../src/cli/networkSetup.js';
import { parseGenesis } from '../../src/consensus/genesis.js';
import { loadAggregatorKey } from '../../src/node/aggregatorKey.js';
import { loadNodeConfig } from '../../src/node/config.js';
import { toHex } from '../../src/records/crypto/bytes.js';
import { generateEncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';

/** The statistics aggregator key (issue 13): written by init beside the validator key, loaded and checked by the node. */
describe('aggregator key file', () => {
  let dir: string;
  let layout: NetworkLayout;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'medledger-aggkey-'));
    layout = await createNetwork({ dir, nodes: 2, basePort: 39_100, adminPassword: () => 'correct horse battery staple', kdf: { N: 1024, r: 8, p: 1 } });
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const genesisOf = () => parseGenesis(JSON.parse(readFileSync(layout.genesisFile, 'utf8')));

  it('init writes a 0600 key file per hospital whose public key is the genesis aggregatorKey; the loader returns the pair', () => {
    const genesis = genesisOf();
    expect(genesis.stats).toEqual({ batch: 'month' });
    for (const [i, node] of layout.nodes.entries()) {
      const config = loadNodeConfig(node.configFile);
      expect(config.aggregatorKeyFile).toBe(join(node.dir, 'aggregator.key.json'));
      expect(statSync(config.aggregatorKeyFile!).mode & 0o777).toBe(0o600);
      const pair = loadAggregatorKey(config, genesis)!;
      expect(toHex(pair.publicKey)).toBe(genesis.file.hospitals[i]!.aggregatorKey);
    }
  });

  it('refuses another hospital key, a malformed file, a genesis without the key; no file configured: undefined', () => {
    const genesis = genesisOf();
    const config = loadNodeConfig(layout.nodes[0]!.configFile);
    const other = join(dir, 'other.key.json');
    writeFileSync(other, JSON.stringify({ secretKey: toHex(generateEncryptionKeyPair().secretKey) }), { mode: 0o600 });
    expect(() => loadAggregatorKey({ ...config, aggregatorKeyFile: other }, genesis)).toThrow(/is not hosp-a's aggregatorKey/);
    writeFileSync(other, JSON.stringify({ secretKey: 'zz' }));
    expect(() => loadAggregatorKey({ ...config, aggregatorKeyFile: other }, genesis)).toThrow(/malformed/);
    const { aggregatorKey: _drop, ...hospital } = genesis.file.hospitals[0]!;
    const without = parseGenesis({ ...genesis.file, hospitals: [hospital, ...genesis.file.hospitals.slice(1)] });
    expect(() => loadAggregatorKey(config, without)).toThrow(/no aggregatorKey for hosp-a/);
    expect(loadAggregatorKey({ hospital: 'hosp-a' }, genesis)).toBeUndefined();
  });

  it('a key file others may read is refused; a damaged one is refused without quoting any of its text', () => {
    const genesis = genesisOf();
    const config = loadNodeConfig(layout.nodes[0]!.configFile);
    const file = join(dir, 'damaged.key.json');
    const secret = toHex(generateEncryptionKeyPair().secretKey);
    writeFileSync(file, JSON.stringify({ secretKey: secret }), { mode: 0o644 });
    expect(() => loadAggregatorKey({ ...config, aggregatorKeyFile: file }, genesis)).toThrow(/readable by other users \(mode 644\)/);
    // JSON.parse's own message would quote the text around the fault: part of the secret.
    rmSync(file);
    writeFileSync(file, `{"secretKey": ${secret}}`, { mode: 0o600 });
    let message = '';
    try {
      loadAggregatorKey({ ...config, aggregatorKeyFile: file }, genesis);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/malformed/);
    expect(message).not.toContain(secret.slice(0, 8));
  });

  it('a genesis without aggregator keys or stats (older files) still parses, with calendar months', () => {
    const genesis = genesisOf();
    const old = { ...genesis.file, hospitals: genesis.file.hospitals.map(({ aggregatorKey: _k, ...h }) => h) };
    delete (old as { stats?: unknown }).stats;
    expect(parseGenesis(old).stats).toEqual({ batch: 'month' });
    expect(() => parseGenesis({ ...genesis.file, hospitals: [{ ...genesis.file.hospitals[0]!, id: 'ha' }] })).toThrow(/not a valid actor id/);
  });
});
