import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { fromBase64, fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { createSigner, generateSigningKeyPair, type Signer } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { certificateHash, decodeBlock, encodeBlock, headerHash, signHeader, verifyHeaderSignature, type Block } from '../../src/consensus/block.js';
import { buildBlock, validateBlock, type TxCache } from '../../src/consensus/blockExecution.js';
import { parseGenesis, type Genesis } from '../../src/consensus/genesis.js';
import { leafHash, merkleRoot } from '../../src/consensus/merkle.js';
import { checkProposal, signProposal } from '../../src/consensus/proposal.js';
import { proposerIndex } from '../../src/consensus/tendermint.js';
import { certificateSchema, type Certificate } from '../../src/consensus/votes.js';
import { MemoryState } from '../../src/records/state/memoryState.js';
import type { StateView } from '../../src/records/state/types.js';
import { encodeProposal, encodeTxBatch, TOPICS } from '../../src/node/gossip.js';
import { loadOrCreatePeerKey } from '../../src/node/p2p/peerKey.js';
import { P2PHost } from '../../src/node/p2p/host.js';
import type { Tx } from '../../src/records/tx/types.js';
import { auditedRead, chainOf } from '../support/load.js';
import { pollUntil } from '../support/poll.js';
import { TestNetwork } from '../support/testNetwork.js';
import type { Session } from '../../src/client/session.js';

interface LogLine {
  msg: string;
  height?: number;
  round?: number;
  reason?: string;
  problem?: string;
}

/** The JSON lines of a node's log (pino, one object a line). */
function logOf(net: TestNetwork, i: number): LogLine[] {
  return readFileSync(net.processes[i]!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

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
    // Debug level: a proposal refused before execution (bad proposal signature) is logged only there, with why.
    for (const i of honest) {
      const config = JSON.parse(readFileSync(net.node(i).configFile, 'utf8')) as Record<string, unknown>;
      writeFileSync(net.node(i).configFile, JSON.stringify({ ...config, logLevel: 'debug' }, null, 2));
    }
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

  async function rejectedBy(): Promise<number[]> {
    const statuses = await net.statuses(honest);
    return statuses.map((s) => s.penalties?.[net.node(3).peerId]?.rejected ?? 0);
  }

  it('refuses a peer whose id is not in the network config', async () => {
    let received = 0;
    const tx = auditedRead(patient);
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
      // Publishing reaches no one. The host allows a publish without peers (allowPublishToZeroTopicPeers),
      // so the call itself succeeds ...
      await expect(stranger.publish('tx', encodeTxBatch([{ tx: tx.bytes }]))).resolves.toBeUndefined();
      // ... and while blocks go on, no honest node ever holds the transaction, pending or final.
      const after = (await net.api(0).status()).height;
      await net.waitFor((s) => s.height >= after + 3, { nodes: honest });
      for (const i of honest) await expect(net.api(i).get(`/v1/tx/${tx.idHex}`), `node ${i}`).rejects.toMatchObject({ code: 'NOT_FOUND' });
      for (const s of await net.statuses(honest)) expect(s.penalties?.[stranger.peerId]).toBeUndefined();
      expect(received).toBe(0);
    } finally {
      await stranger.stop();
    }
    // Control: the same bytes through an honest node's API are admitted and committed, so they were valid
    // and only the gater kept them out.
    const res = await net.api(0).submit(tx);
    expect(res.status).toBe('committed');
  });

  it('rejects blocks signed by a non-validator, by the wrong proposer, with a forged certificate or an invalid transaction, each for its one flaw', async () => {
    const validatorKey = (i: number) => createSigner(fromHex(JSON.parse(readFileSync(join(net.node(i).dir, 'validator.key.json'), 'utf8')).secretKey));
    const outsider = createSigner(generateSigningKeyPair().secretKey);
    // Forge right after a commit: the honest nodes then stay at the forged height for at least the block
    // period and a propose wait, far longer than forging and publishing take.
    const fresh = (await net.api(0).status()).height;
    await net.waitFor((s) => s.height > fresh, { nodes: honest });
    const parent = await head();
    const ref = { header: parent.block.header, hash: parent.hash };
    const height = parent.block.header.height + 1;
    expect(
      (await net.statuses(honest)).map((s) => s.height),
      'the honest nodes are at the parent',
    ).toEqual(honest.map(() => height - 1));
    const dRound = (3 - (height % 4) + 4) % 4; // D (index 3) proposes rounds dRound, dRound + 4, dRound + 8, …
    const otherRound = dRound + 1;
    const otherProposer = proposerIndex(4, height, otherRound);
    expect(proposerIndex(4, height, dRound)).toBe(3);
    expect(otherProposer).not.toBe(3);

    const clone = (b: Block): Block => decodeBlock(encodeBlock(b), 16 * 1024 * 1024);
    /** A well-formed block for `height` in `round`: what an honest proposer with this state would sign. */
    const build = (signer: Signer, round: number, opts: { state?: StateView; candidates?: Tx[] } = {}): Block =>
      clone(
        buildBlock({
          genesis,
          parent: ref,
          lastCommit: parent.cert,
          state: opts.state ?? new MemoryState(),
          candidates: opts.candidates ?? [],
          round,
          time: Date.now(),
          signer,
        }).executed.block,
      );
    const resign = (b: Block, signer: Signer): Block => {
      b.sig = signHeader(b.header, signer, genesis.hash);
      return b;
    };
    /** What full validation against the real parent says: 'valid' or the first rule broken. */
    const verdict = (b: Block, opts: { state?: StateView; txCache?: TxCache } = {}): string => {
      try {
        validateBlock(b, ref, opts.state ?? new MemoryState(), { genesis, now: Date.now(), ...(opts.txCache ? { txCache: opts.txCache } : {}) });
        return 'valid';
      } catch (err) {
        return (err as Error).message;
      }
    };

    // 1. A key that is no validator signs a block for D's round; signed by D, the same block is valid.
    const byOutsider = build(outsider, dRound);
    expect(verdict(byOutsider)).toMatch(/proposer signature is invalid/);
    expect(verdict(resign(clone(byOutsider), dKey))).toBe('valid');

    // 2. D signs a block for a round that is another validator's; signed by that validator, it is valid.
    const wrongProposer = build(dKey, otherRound);
    expect(wrongProposer.header.proposer).toBe(otherProposer);
    expect(verdict(wrongProposer)).toMatch(/proposer signature is invalid/);
    expect(verdict(resign(clone(wrongProposer), validatorKey(otherProposer)))).toBe('valid');

    // 3. D's block carries the parent's certificate with one signature altered. The header commits to the
    // certificate it carries and D signs the header: only the certificate's signature is wrong.
    const forgedCert = build(dKey, dRound + 4);
    forgedCert.lastCommit!.sigs[0]!.sig[0]! ^= 0xff;
    forgedCert.header.lastCommit = certificateHash(forgedCert.lastCommit);
    resign(forgedCert, dKey);
    expect(toHex(forgedCert.header.lastCommit)).toBe(toHex(certificateHash(forgedCert.lastCommit)));
    expect(verifyHeaderSignature(forgedCert.header, forgedCert.sig, genesis.validators[3]!)).toBe(true);
    expect(verdict(forgedCert)).toMatch(/parent certificate: certificate for height \d+: forged signature of validator \d/);
    expect(verdict(build(dKey, dRound + 4))).toBe('valid');

    // 4. D's block holds the victim's read with one byte of the user's signature flipped. It is built by
    // executing the genuine read against the victim's state (the rogue has none: a state holding just the
    // victim and the hospital gives the same event), so count, transaction root and events root all match
    // the block's one transaction.
    const victimState = new MemoryState();
    victimState.write([
      {
        table: 'hospitals',
        key: patient.hospital,
        value: { id: patient.hospital, name: patient.hospital, admin: 'admin-a', index: 0, validatorKey: new Uint8Array(32), lastNonce: 0 },
      },
      {
        table: 'users',
        key: patient.userId,
        value: {
          id: patient.userId,
          role: 'patient',
          hospital: patient.hospital,
          signKey: patient.signer.publicKey,
          encKey: patient.keys.encPublic!,
          active: true,
          lastNonce: 0,
          since: 0,
          grants: {},
          requests: {},
        },
      },
    ]);
    const genuineRead = auditedRead(patient);
    const badTx = build(dKey, dRound + 8, { state: victimState, candidates: [genuineRead] });
    expect(badTx.txs).toHaveLength(1);
    const broken = new Uint8Array(genuineRead.bytes);
    broken[broken.length - 1]! ^= 1; // the last byte belongs to the signature: the transaction id is unchanged
    badTx.txs = [broken];
    badTx.header.txRoot = merkleRoot(badTx.txs);
    resign(badTx, dKey);
    expect(verdict(badTx, { state: victimState })).toMatch(/transaction 0: transaction [0-9a-f]{12} has an invalid signature/);
    // With that signature taken as checked, everything else about the block holds.
    const checked = new Map([[toHex(leafHash(broken)), genuineRead]]);
    expect(verdict(badTx, { state: victimState, txCache: { get: (k) => checked.get(k), set: () => {} } })).toBe('valid');

    const network = genesis.file.network;
    const forged = [
      { block: byOutsider, round: dRound, signer: outsider, logged: 'rejected proposal', why: /^not signed by the proposer of its round$/ },
      { block: wrongProposer, round: otherRound, signer: dKey, logged: 'rejected proposal', why: /^not signed by the proposer of its round$/ },
      // Each of D's forgeries takes a round of its own (D proposes every fourth round): a node executes
      // only the first proposal of a round, and a second one is evidence, not a reject.
      {
        block: forgedCert,
        round: dRound + 4,
        signer: dKey,
        logged: 'invalid proposal',
        why: /parent certificate: certificate for height \d+: forged signature of validator \d/,
      },
      { block: badTx, round: dRound + 8, signer: dKey, logged: 'invalid proposal', why: /transaction 0: transaction [0-9a-f]{12} has an invalid signature/ },
    ].map((f) => ({
      ...f,
      proposal: signProposal(
        network,
        { height, round: f.round, validRound: -1, block: f.block, payloads: f.block.txs.map(() => null) },
        f.signer,
        genesis.hash,
      ),
      hash: toHex(headerHash(f.block.header)),
    }));
    // The proposal envelopes: the first two fail at the proposal signature, the last two only inside the block.
    expect(forged.map((f) => checkProposal(f.proposal, genesis.validators, network))).toEqual([
      'not signed by the proposer of its round',
      'not signed by the proposer of its round',
      null,
      null,
    ]);

    const before = await rejectedBy();
    for (const f of forged) await rogue.publish('block', encodeProposal(f.proposal));

    // Every honest node rejected every forgery (and penalised the sender) ...
    await pollUntil(
      'every honest node rejects the four forgeries',
      rejectedBy,
      (after) =>
        after.every((n, i) => n - before[i]! >= forged.length) ? null : `rejections since the publish: ${after.map((n, i) => n - before[i]!).join(', ')}`,
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    // ... each for the flaw it was built with, as its log says.
    for (const i of honest) {
      const lines = await pollUntil(
        `node ${i} logs why it refused each forgery`,
        async () => logOf(net, i).filter((l) => l.height === height && (l.msg === 'rejected proposal' || l.msg === 'invalid proposal')),
        (ls) => (ls.length >= forged.length ? null : `${ls.length} lines: ${JSON.stringify(ls)}`),
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      const refused = lines.filter((l) => l.msg === 'rejected proposal');
      expect(
        refused.map((l) => l.problem),
        `node ${i}`,
      ).toEqual(['not signed by the proposer of its round', 'not signed by the proposer of its round']);
      for (const f of forged.filter((x) => x.logged === 'invalid proposal')) {
        const line = lines.filter((l) => l.msg === 'invalid proposal' && l.round === f.round);
        expect(line, `node ${i}, round ${f.round}`).toHaveLength(1);
        expect(line[0]!.reason, `node ${i}, round ${f.round}`).toMatch(f.why);
      }
    }

    // None is ever committed, and nothing else was charged to D meanwhile.
    const committed = (await net.waitFor((s) => s.height >= height + 2, { nodes: honest }))[0]!.height;
    const hashes = new Set(forged.map((f) => f.hash));
    for (const i of honest) {
      const chain = await chainOf(net.api(i), committed);
      expect(chain.filter((b) => hashes.has(b.hash))).toEqual([]);
    }
    (await rejectedBy()).forEach((n, i) => expect(n - before[i]!, `node ${i}`).toBe(forged.length));
  }, 60_000);

  it('rejects malformed gossip and penalises the sender; a replayed final transaction is dropped, never committed twice, and not charged (honest forwarding can race a commit)', async () => {
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
    while (Date.now() < deadline && after.some((n, i) => n - before[i]! < 2)) {
      await new Promise((r) => setTimeout(r, 200));
      after = await rejectedBy();
    }
    after.forEach((n, i) => expect(n - before[i]!, `node ${i}`).toBe(2));
    const trail = await patient.queryAudit({ patient: 'pat-victim', action: 'E' });
    expect(trail.value!.events.filter((e) => e.tx === committed.idHex)).toHaveLength(1);
  }, 60_000);
});
