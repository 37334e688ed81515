import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { fromBase64, fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { createSigner, generateSigningKeyPair, type Signer } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { decodeBlock, headerHash, type Block } from '../../src/consensus/block.js';
import { buildBlock } from '../../src/consensus/blockExecution.js';
import { parseGenesis, type Genesis } from '../../src/consensus/genesis.js';
import { signProposal } from '../../src/consensus/proposal.js';
import { proposerIndex } from '../../src/consensus/tendermint.js';
import { certificateSchema, type Certificate } from '../../src/consensus/votes.js';
import { MemoryState } from '../../src/records/state/memoryState.js';
import { encodeProposal, encodeTxBatch, TOPICS } from '../../src/node/gossip.js';
import { loadOrCreatePeerKey } from '../../src/node/p2p/peerKey.js';
import { P2PHost } from '../../src/node/p2p/host.js';
import type { Tx } from '../../src/records/tx/types.js';
import { auditedRead, chainOf } from '../support/load.js';
import { TestNetwork } from '../support/testNetwork.js';
import type { Session } from '../../src/client/session.js';

/**
 * Three honest nodes (A, B, C) as processes; the test process plays a byzantine fourth: it holds
 * hospital D's peer key and validator key (D's node is not running) and publishes forged data.
 */
describe('admission: unknown peers and forged gossip', () => {
  let net: TestNetwork;
  let genesis: Genesis;
  let rogue: P2PHost;
  let dKey: Signer;
  let patient: Session;
  const honest = [0, 1, 2];

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    await net.start(honest, { peers: 2 });
    genesis = parseGenesis(JSON.parse(readFileSync(net.layout.genesisFile, 'utf8')));
    dKey = createSigner(fromHex(JSON.parse(readFileSync(join(net.node(3).dir, 'validator.key.json'), 'utf8')).secretKey));
    const d = net.node(3);
    rogue = await P2PHost.start(
      {
        network: genesis.file.network,
        privateKey: await loadOrCreatePeerKey(join(d.dataDir, 'peer.key')),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        allowedPeers: honest.map((i) => net.node(i).peerId),
        staticPeers: honest.map((i) => ({ peerId: net.node(i).peerId, addrs: [`/ip4/127.0.0.1/tcp/${net.node(i).p2pPort}`] })),
        topics: [...TOPICS],
        maxMessageBytes: 8 * 1024 * 1024,
      },
      Object.fromEntries(TOPICS.map((t) => [t, { validate: () => 'ignore' as const }])),
    );
    await net.waitFor((s) => s.peers.length === 3, { nodes: honest });
    patient = await net.patient(0, 'pat-victim');
  }, 90_000);

  afterAll(async () => {
    await rogue?.stop();
    await net?.destroy();
  });

  async function head(): Promise<{ block: Block; hash: Uint8Array; cert: Certificate }> {
    const height = (await net.api(0).status()).height;
    const { blocks } = await net.api(0).get<{ blocks: { block: string; cert: string }[] }>(`/v1/chain/raw?from=${height}&to=${height}`);
    const block = decodeBlock(fromBase64(blocks[0]!.block), 16 * 1024 * 1024);
    return { block, hash: headerHash(block.header), cert: certificateSchema.parse(decodeCanonical(fromBase64(blocks[0]!.cert))) };
  }

  /** A block for the next height proposed in `round`, built by `signer`, with optional tampering. */
  async function forge(opts: { signer: Signer; round?: number; txs?: Tx[]; tamper?: (b: Block) => void }) {
    const parent = await head();
    const height = parent.block.header.height + 1;
    const round = opts.round ?? (3 - (height % 4) + 4) % 4; // a round where D is the proposer
    const { executed } = buildBlock({
      genesis,
      parent: { header: parent.block.header, hash: parent.hash },
      lastCommit: parent.cert,
      state: new MemoryState(), // the rogue has no state: only transactions-free or broken blocks are built
      candidates: [],
      round,
      time: Date.now(),
      signer: opts.signer,
    });
    const block = executed.block;
    if (opts.txs) {
      block.txs = opts.txs.map((t) => t.bytes);
      block.header.txCount = opts.txs.length;
    }
    opts.tamper?.(block);
    const proposal = signProposal(genesis.file.network, { height, round, validRound: -1, block, payloads: block.txs.map(() => null) }, opts.signer);
    return { proposal, hash: toHex(headerHash(block.header)), height };
  }

  async function rejectedBy(): Promise<number[]> {
    const statuses = await net.statuses(honest);
    return statuses.map((s) => s.penalties?.[net.node(3).peerId]?.rejected ?? 0);
  }

  it('refuses a peer whose id is not in the network config', async () => {
    let received = 0;
    const stranger = await P2PHost.start(
      {
        network: genesis.file.network,
        privateKey: await generateKeyPair('Ed25519'),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        allowedPeers: honest.map((i) => net.node(i).peerId),
        staticPeers: honest.map((i) => ({ peerId: net.node(i).peerId, addrs: [`/ip4/127.0.0.1/tcp/${net.node(i).p2pPort}`] })),
        topics: [...TOPICS],
        maxMessageBytes: 1024 * 1024,
      },
      Object.fromEntries(TOPICS.map((t) => [t, { validate: () => (received++, 'ignore' as const) }])),
    );
    try {
      // Blocks and votes flow among the honest nodes all this time; none reaches the stranger.
      const height = (await net.api(0).status()).height;
      await net.waitFor((s) => s.height >= height + 3, { nodes: honest });
      expect(received).toBe(0);
      expect(stranger.connectedPeers()).toEqual([]);
      for (const s of await net.statuses(honest)) expect(s.peers).not.toContain(stranger.peerId);
      // Publishing reaches no one.
      await stranger.publish('tx', encodeTxBatch([{ tx: auditedRead(patient).bytes }]));
    } finally {
      await stranger.stop();
    }
  });

  it('rejects blocks signed by a non-validator, by the wrong proposer, with a forged certificate or an invalid transaction', async () => {
    const before = await rejectedBy();
    const outsider = createSigner(generateSigningKeyPair().secretKey);
    const parentHeight = (await net.api(0).status()).height;
    const dRound = (3 - ((parentHeight + 1) % 4) + 4) % 4;
    const forged = [
      await forge({ signer: outsider }),
      // D signs for a round in which it is not the proposer.
      await forge({ signer: dKey, round: (3 - ((parentHeight + 1) % 4) + 5) % 4 }),
      // Each of D's forgeries takes a round of its own (D proposes every fourth round): a node executes
      // only the first proposal of a round, and a second one is evidence, not a reject.
      await forge({
        signer: dKey,
        round: dRound + 4,
        tamper: (b) => {
          const sig = b.lastCommit!.sigs[0]!.sig;
          sig[0]! ^= 0xff;
        },
      }),
      await forge({
        signer: dKey,
        round: dRound + 8,
        txs: [(() => {
          const tx = auditedRead(patient);
          const bytes = new Uint8Array(tx.bytes);
          bytes[bytes.length - 1]! ^= 1; // breaks the user's signature
          return { ...tx, bytes };
        })()],
      }),
    ];
    // The tampered blocks must be re-signed so that only the intended flaw remains.
    for (const f of forged.slice(2)) {
      const p = f.proposal;
      const { header } = p.block;
      if (f === forged[3]) {
        const { merkleRoot } = await import('../../src/consensus/merkle.js');
        header.txRoot = merkleRoot(p.block.txs);
      }
      p.block.sig = dKey.sign(new Uint8Array([...new TextEncoder().encode('medledger/block/v1\0'), ...headerHash(header)]));
      Object.assign(p, signProposal(genesis.file.network, { ...p }, dKey));
      f.hash = toHex(headerHash(header));
    }
    for (const f of forged) await rogue.publish('block', encodeProposal(f.proposal));

    // Every honest node rejected every forgery (and penalised the sender), and none is ever committed.
    const deadline = Date.now() + 10_000;
    let after = await rejectedBy();
    while (Date.now() < deadline && after.some((n, i) => n - before[i]! < forged.length)) {
      await new Promise((r) => setTimeout(r, 200));
      after = await rejectedBy();
    }
    after.forEach((n, i) => expect(n - before[i]!, `node ${i}`).toBeGreaterThanOrEqual(forged.length));
    const height = (await net.waitFor((s) => s.height >= parentHeight + 3, { nodes: honest }))[0]!.height;
    const hashes = new Set(forged.map((f) => f.hash));
    for (const i of honest) {
      const chain = await chainOf(net.api(i), height);
      expect(chain.filter((b) => hashes.has(b.hash))).toEqual([]);
    }
  }, 60_000);

  it('rejects malformed and replayed gossip and penalises the sender, while the honest nodes carry on', async () => {
    const before = await rejectedBy();
    await rogue.publish('tx', new Uint8Array([0xff, 0x00, 0x13]));
    await rogue.publish('vote', encodeCanonical({ votes: [{ type: 'prevote' }], n: 1 }));
    const committed = auditedRead(patient);
    const res = await net.api(0).submit(committed);
    expect(res.status).toBe('committed');
    // A replay is only a replay once every honest node has the transaction in a final block.
    await net.waitFor((s) => s.height >= res.height!, { nodes: honest });
    // Framed differently from the original gossip, so gossipsub's duplicate filter does not hide it.
    await rogue.publish('tx', encodeTxBatch([{ tx: committed.bytes }, { tx: committed.bytes }]));
    const deadline = Date.now() + 10_000;
    let after = await rejectedBy();
    while (Date.now() < deadline && after.some((n, i) => n - before[i]! < 3)) {
      await new Promise((r) => setTimeout(r, 200));
      after = await rejectedBy();
    }
    after.forEach((n, i) => expect(n - before[i]!, `node ${i}`).toBeGreaterThanOrEqual(3));
    const trail = await patient.queryAudit({ patient: 'pat-victim', action: 'E' });
    expect(trail.value!.events.filter((e) => e.tx === committed.idHex)).toHaveLength(1);
  }, 60_000);
});
