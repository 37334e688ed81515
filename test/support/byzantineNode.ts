/**
 * A BYZANTINE VALIDATOR, FOR TESTS ONLY.
 *
 *   node --import tsx test/support/byzantineNode.ts --config node.json --behaviour equivocate[,vote-flood,…]
 *        [--max-messages N] [--max-seconds S] [--flood-rounds R] [--stats FILE] [--exit-with-stdin]
 *
 * Starts a real MedLedgerNode from src/ with a hospital's own config and keys (MedLedgerNode.start(
 * loadNodeConfig(file))), then alters what it sends by wrapping the node's objects: the engine's publish
 * functions (its private `deps`, reached with a cast), `node.engine`'s inputs, `node.sync`'s serving
 * functions and the libp2p host. It reads the validator key from the config's validatorKeyFile to sign
 * what it forges, and never logs it (nor any user key or content).
 *
 * Production cannot switch this on: the file lives only under test/, which tsconfig.json does not compile
 * into dist/ and which neither the `medledger` binary nor anything in src/ imports; `medledger node` has no
 * option that reaches it. It runs only from source, through tsx, when a test or a script starts it
 * (test/support/byzantine.ts). Positional arguments are ignored, so NodeProcess can start it by passing
 * this file as a runtime argument in front of its usual `<cli> node --config FILE --exit-with-stdin`.
 *
 * Behaviours (one small function each, combinable):
 *   equivocate       every own proposal is followed by a second, different block for the same round (same
 *                    transactions, another time); every own vote by a conflicting vote for the same slot
 *                    (for the twin block where there is one, else nil or a random value)
 *   invalid-payload  as proposer, proposes a block with a registerPatient of a patient of its own (keys made
 *                    here) and a createRecord whose payload matches the hash in the transaction but is garbage
 *   vote-flood       every 100 ms, signed prevotes and precommits for the current height and the next
 *                    --flood-rounds rounds (default 1,000) with random values
 *   far-rounds       validly signed proposals and votes for round current+10^6 and for height current+5
 *   sync-strip       serves sync and payload frames without payloads
 *   sync-alter       serves them with a byte of every payload flipped and flagged redacted
 *   oversized        gossip messages over the size limit, sync frames over the frame limit (served, to peers
 *                    it lures with a vote two heights ahead, and sent as requests)
 *   replay           re-publishes proposals and votes of earlier heights it saw (and its own)
 *
 * Bounds: every behaviour stops misbehaving after --max-messages messages (default 20,000) or --max-seconds
 * (default 300) and then acts honestly; loops run on timers and skip a tick while the previous one runs.
 * Refuses a config whose API or p2p addresses are not on 127.0.0.1.
 */
import '../../src/polyfill.js';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { headerHash } from '../../src/consensus/block.js';
import { buildBlock, decodeTxCached, type ParentRef } from '../../src/consensus/blockExecution.js';
import { leafHash } from '../../src/consensus/merkle.js';
import { signProposal, type Proposal } from '../../src/consensus/proposal.js';
import { proposerIndex } from '../../src/consensus/tendermint.js';
import { signVote, type SignedVote } from '../../src/consensus/votes.js';
import { loadNodeConfig, type NodeConfig } from '../../src/node/config.js';
import type { EngineDeps } from '../../src/node/consensusEngine.js';
import { encodeProposal, encodeVotes, maxGossipBytes } from '../../src/node/gossip.js';
import { MedLedgerNode } from '../../src/node/node.js';
import { PAYLOAD_PROTOCOL, SYNC_MAX_FRAME_BYTES, SYNC_PROTOCOL } from '../../src/node/sync.js';
import { fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { sha256 } from '../../src/records/crypto/hash.js';
import { generateEncryptionKeyPair } from '../../src/records/crypto/keyAgreement.js';
import { createSigner, generateSigningKeyPair, type Signer } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import { signTx } from '../../src/records/tx/codec.js';
import type { Tx, UnsignedTx } from '../../src/records/tx/types.js';
import { BEHAVIOURS, type BehaviourName } from './byzantine.js';
import { readSecretKeyFile } from '../../src/node/keyFile.js';

interface Options {
  maxMessages: number;
  maxSeconds: number;
  floodRounds: number;
  statsFile?: string;
}

/** What libp2p exposes of the host's gossipsub (test-only: reached with a cast). */
interface RawLibp2p {
  services: { pubsub: { publish(topic: string, data: Uint8Array): Promise<unknown> } };
  unhandle(protocol: string): Promise<void>;
}

/** The running node and what the behaviours share: keys, budgets, timers, counters. */
class Byzantine {
  readonly deps: EngineDeps;
  readonly signer: Signer;
  readonly self: number;
  readonly network: string;
  readonly n: number;
  readonly log: Logger;
  /** Messages (gossip messages, forged frames) sent per behaviour. */
  readonly sent: Record<string, number> = {};
  /** Highest height of a vote this node received (the network's current height, even while this node lags). */
  heightSeen = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly deadline: number;
  private stopped = false;

  constructor(
    readonly node: MedLedgerNode,
    readonly opts: Options,
  ) {
    // Test-only access to the engine's private publish functions.
    this.deps = (node.engine as unknown as { deps: EngineDeps }).deps;
    this.signer = createSigner(readSecretKeyFile(node.config.validatorKeyFile, 'validator key'));
    this.self = this.deps.self!.index;
    this.network = node.genesis.file.network;
    this.n = node.genesis.validators.length;
    this.log = node.logger.child({ module: 'byzantine' });
    this.deadline = Date.now() + opts.maxSeconds * 1000;
    this.every('stats', 2_000, () => this.writeStats(), { stats: true });
    const onVote = node.engine.onVote.bind(node.engine);
    node.engine.onVote = (v, peer) => {
      if (v.validator !== this.self && v.height > this.heightSeen && v.height <= node.ledger.height + 10) this.heightSeen = v.height;
      onVote(v, peer);
    };
  }

  /** True while `behaviour` may still misbehave: under its message budget and before the deadline. */
  may(behaviour: string): boolean {
    return !this.stopped && Date.now() < this.deadline && (this.sent[behaviour] ?? 0) < this.opts.maxMessages;
  }

  count(behaviour: string, n = 1): void {
    this.sent[behaviour] = (this.sent[behaviour] ?? 0) + n;
  }

  /**
   * A loop on a timer: skips a tick while the last one runs, ends with the behaviour's budget (or at stop).
   * The stats loop runs until a little after the deadline, when the counts can no longer change.
   */
  every(behaviour: string, ms: number, fn: () => Promise<void> | void, opts: { stats?: boolean } = {}): void {
    let busy = false;
    const t = setInterval(() => {
      const over = opts.stats ? Date.now() > this.deadline + 2 * ms : !this.may(behaviour);
      if (this.stopped || over) {
        clearInterval(t);
        this.timers.delete(t);
        return;
      }
      if (busy) return;
      busy = true;
      Promise.resolve()
        .then(fn)
        .catch((err: Error) => this.log.debug({ behaviour, err: err.message }, 'byzantine tick failed'))
        .finally(() => {
          busy = false;
        });
    }, ms);
    this.timers.add(t);
  }

  /** Runs a one-off piece of forging work without letting it throw into the node. */
  spawn(behaviour: string, fn: () => Promise<void> | void): void {
    Promise.resolve()
      .then(fn)
      .catch((err: Error) => this.log.debug({ behaviour, err: err.message }, 'byzantine action failed'));
  }

  /** Publishes through the node's host (its size limit applies). */
  async publish(behaviour: string, topic: 'tx' | 'block' | 'vote', data: Uint8Array): Promise<void> {
    await this.node.host.publish(topic, data);
    this.count(behaviour);
  }

  /** Publishes past the host's own size check, straight into gossipsub. */
  async publishRaw(behaviour: string, topic: 'tx' | 'block' | 'vote', data: Uint8Array): Promise<void> {
    await this.libp2p.services.pubsub.publish(`/medledger/${this.network}/${topic}/1`, data);
    this.count(behaviour);
  }

  get libp2p(): RawLibp2p {
    return (this.node.host as unknown as { libp2p: RawLibp2p }).libp2p;
  }

  proposer(height: number, round: number): number {
    return proposerIndex(this.n, height, round);
  }

  /** The smallest round ≥ `from` in which this validator proposes at `height`. */
  ownRound(height: number, from: number): number {
    let r = from;
    while (this.proposer(height, r) !== this.self) r++;
    return r;
  }

  vote(type: 'prevote' | 'precommit', height: number, round: number, block: Uint8Array | null): SignedVote {
    return signVote({ type, network: this.network, height, round, validator: this.self, block }, this.signer, this.node.genesis.hash);
  }

  /** A block for `parent`'s next height from these transactions, signed and proposed by this validator. */
  propose(opts: {
    parent: ParentRef;
    lastCommit: Proposal['block']['lastCommit'];
    round: number;
    time: number;
    txs: Tx[];
    payloads: (Uint8Array | null)[];
    height?: number;
  }): Proposal | null {
    const { executed, dropped } = buildBlock({
      genesis: this.node.genesis,
      parent: opts.parent,
      lastCommit: opts.lastCommit,
      state: this.node.ledger.state,
      candidates: opts.txs,
      round: opts.round,
      time: opts.time,
      signer: this.signer,
    });
    if (dropped.length > 0) {
      this.log.debug({ dropped: dropped.map((d) => d.error.code) }, 'byzantine block lost transactions');
      return null;
    }
    const payloadOf = new Map(opts.txs.map((t, i) => [t.idHex, opts.payloads[i] ?? null]));
    return signProposal(
      this.network,
      {
        height: executed.block.header.height,
        round: opts.round,
        validRound: -1,
        block: executed.block,
        payloads: executed.txs.map((t) => payloadOf.get(t.idHex) ?? null),
      },
      this.signer,
      this.node.genesis.hash,
    );
  }

  txsOf(p: Proposal): Tx[] {
    return p.block.txs.map((bytes) => decodeTxCached(bytes, leafHash(bytes), this.node.genesis.hash, this.node.ledger.txCache));
  }

  writeStats(): void {
    if (!this.opts.statsFile) return;
    try {
      writeFileSync(this.opts.statsFile, `${JSON.stringify({ pid: process.pid, sent: this.sent, at: Date.now() })}\n`);
    } catch {
      // the directory went away (test cleanup): nothing to report to
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    this.writeStats();
    this.log.info({ sent: this.sent }, 'byzantine harness stopped');
  }
}

const randomValue = () => new Uint8Array(randomBytes(32));

function flipByte(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  if (out.length > 0) out[out.length >> 1]! ^= 0x01;
  return out;
}

// ---- behaviours ------------------------------------------------------------------------------------

function equivocate(b: Byzantine): void {
  const name = 'equivocate';
  /** "height/round" → hash of the twin block proposed there. */
  const twinOf = new Map<string, string>();
  const forgedSlots = new Set<string>();
  const prune = (height: number) => {
    for (const k of twinOf.keys()) if (Number(k.split('/')[0]) < height) twinOf.delete(k);
    for (const k of forgedSlots) if (Number(k.split('/')[0]) < height) forgedSlots.delete(k);
  };

  const publishProposal = b.deps.publishProposal;
  b.deps.publishProposal = (p) => {
    publishProposal(p);
    const key = `${p.height}/${p.round}`;
    if (twinOf.has(key) || !b.may(name) || b.node.ledger.height + 1 !== p.height) return;
    prune(p.height);
    // Built synchronously, so that the twin is known before the engine casts its own prevote.
    const twin = b.propose({
      parent: b.node.ledger.headRef,
      lastCommit: p.block.lastCommit,
      round: p.round,
      time: p.block.header.time + 1 + Math.floor(Math.random() * 50),
      txs: b.txsOf(p),
      payloads: p.payloads,
    });
    if (!twin) return;
    twinOf.set(key, toHex(headerHash(twin.block.header)));
    b.spawn(name, () => b.publish(name, 'block', encodeProposal(twin)));
  };

  const publishVotes = b.deps.publishVotes;
  b.deps.publishVotes = (votes) => {
    publishVotes(votes);
    if (!b.may(name)) return;
    const twins: SignedVote[] = [];
    for (const v of votes) {
      const slot = `${v.height}/${v.round}/${v.type}`;
      if (v.validator !== b.self || forgedSlots.has(slot)) continue;
      forgedSlots.add(slot);
      const own = v.block ? toHex(v.block) : null;
      const twin = twinOf.get(`${v.height}/${v.round}`);
      const other = twin !== undefined && twin !== own ? fromHex(twin) : own !== null ? null : randomValue();
      twins.push(b.vote(v.type, v.height, v.round, other));
    }
    if (forgedSlots.size > 10_000) forgedSlots.clear();
    if (twins.length > 0) b.spawn(name, () => b.publish(name, 'vote', encodeVotes(twins.slice(0, 64))));
  };
}

function invalidPayload(b: Byzantine): void {
  const name = 'invalid-payload';
  let serial = 0;
  const garbage = new TextEncoder().encode('not a record payload at all');
  /** The poisoned proposal of each (height, round): the engine's re-sends of its proposal re-send this one. */
  const sentFor = new Map<string, Proposal>();
  const publishProposal = b.deps.publishProposal;
  b.deps.publishProposal = (p) => {
    // A re-proposal of an earlier block passes: only this validator's new blocks are replaced.
    if (p.validRound !== -1 || !b.may(name) || b.node.ledger.height + 1 !== p.height) return publishProposal(p);
    const key = `${p.height}/${p.round}`;
    const earlier = sentFor.get(key);
    if (earlier) {
      b.spawn(name, () => b.publish(name, 'block', encodeProposal(earlier)));
      return;
    }
    const patient = `pat-byz-${++serial}`;
    const signing = generateSigningKeyPair();
    const signer = createSigner(signing.secretKey);
    const now = Date.now();
    const common = { v: 1 as const, actor: patient, key: signing.publicKey, via: b.node.config.hospital, time: now };
    const register = signTx(
      { ...common, type: 'registerPatient', nonce: now * 1000, body: { encKey: generateEncryptionKeyPair().publicKey } } as UnsignedTx<'registerPatient'>,
      signer,
      b.node.genesis.hash,
    );
    const record = `rec-${randomBytes(8).toString('hex')}`;
    const create = signTx(
      {
        ...common,
        type: 'createRecord',
        nonce: now * 1000 + 1,
        patient,
        record,
        payload: sha256(garbage),
        body: { recipients: [patient] },
      } as UnsignedTx<'createRecord'>,
      signer,
      b.node.genesis.hash,
    );
    const poisoned = b.propose({
      parent: b.node.ledger.headRef,
      lastCommit: p.block.lastCommit,
      round: p.round,
      time: p.block.header.time,
      txs: [register, create],
      payloads: [null, garbage],
    });
    if (!poisoned) return publishProposal(p);
    for (const k of sentFor.keys()) if (Number(k.split('/')[0]) < p.height) sentFor.delete(k);
    sentFor.set(key, poisoned);
    b.log.info({ height: p.height, round: p.round, patient }, 'byzantine: proposing a block with a garbage payload');
    b.spawn(name, () => b.publish(name, 'block', encodeProposal(poisoned)));
  };
}

function voteFlood(b: Byzantine): void {
  const name = 'vote-flood';
  b.every(name, 100, async () => {
    // The network's height as far as this node knows (its own engine may lag while it floods).
    const height = Math.max(b.node.engine.height, b.heightSeen);
    const from = height === b.node.engine.height ? b.node.engine.round : 0;
    let batch: SignedVote[] = [];
    for (let r = from; r < from + b.opts.floodRounds; r++) {
      for (const type of ['prevote', 'precommit'] as const) {
        batch.push(b.vote(type, height, r, randomValue()));
        if (batch.length === 64) {
          if (!b.may(name)) return;
          await b.publish(name, 'vote', encodeVotes(batch));
          batch = [];
          // Let the node itself breathe between messages (its gossip, its consensus).
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
    if (batch.length > 0 && b.may(name)) await b.publish(name, 'vote', encodeVotes(batch));
  });
}

function farRounds(b: Byzantine): void {
  const name = 'far-rounds';
  b.every(name, 500, async () => {
    const { ledger, engine } = b.node;
    const height = ledger.height + 1;
    const lastCommit = await ledger.headCertificate();
    const far = b.ownRound(height, engine.round + 1_000_000);
    const now = Date.now();
    const nearFar = b.propose({ parent: ledger.headRef, lastCommit, round: far, time: now, txs: [], payloads: [] });
    // Height current+5: a parent that does not exist (a random hash at height current+4).
    const ahead = height + 5;
    const fakeParent: ParentRef = { header: { ...ledger.headRef.header, height: ahead - 1, time: now - 1 }, hash: randomValue() };
    const aheadProposals = [b.ownRound(ahead, 0), b.ownRound(ahead, 1_000_000)].map((round) =>
      b.propose({ parent: fakeParent, lastCommit, round, time: now, txs: [], payloads: [] }),
    );
    for (const p of [nearFar, ...aheadProposals]) if (p) await b.publish(name, 'block', encodeProposal(p));
    const votes: SignedVote[] = [];
    for (const [h, r] of [
      [height, far],
      [ahead, 0],
      [ahead, far],
    ] as const) {
      votes.push(b.vote('prevote', h, r, randomValue()), b.vote('precommit', h, r, randomValue()));
    }
    await b.publish(name, 'vote', encodeVotes(votes));
  });
}

interface SyncFrame {
  block: Uint8Array;
  cert: unknown;
  payloads: { index: number; payload: Uint8Array; redacted: boolean }[];
}

function syncTamper(b: Byzantine, mode: 'strip' | 'alter'): void {
  const name = `sync-${mode}`;
  const sync = b.node.sync;
  const serve = sync.serve.bind(sync);
  const servePayloads = sync.servePayloads.bind(sync);
  sync.serve = async function* (request: Uint8Array) {
    for await (const frame of serve(request)) {
      const f = decodeCanonical(frame, 'own sync frame') as SyncFrame;
      if (f.payloads.length === 0 || !b.may(name)) {
        yield frame;
        continue;
      }
      f.payloads = mode === 'strip' ? [] : f.payloads.map((p) => ({ index: p.index, payload: flipByte(p.payload), redacted: true }));
      b.count(name);
      yield encodeCanonical(f);
    }
  };
  sync.servePayloads = async function* (request: Uint8Array) {
    for await (const frame of servePayloads(request)) {
      if (!b.may(name)) {
        yield frame;
        continue;
      }
      b.count(name);
      if (mode === 'strip') continue;
      const f = decodeCanonical(frame, 'own payload frame') as { id: string; payload: Uint8Array; redacted: boolean };
      yield encodeCanonical({ id: f.id, payload: flipByte(f.payload), redacted: true });
    }
  };
}

function oversized(b: Byzantine): void {
  const name = 'oversized';
  const limit = maxGossipBytes(b.node.genesis.params.maxBlockBytes);
  const topics = ['tx', 'vote', 'block'] as const;
  let i = 0;
  b.every(name, 4_000, async () => {
    // Fresh bytes each time: gossipsub drops a message id it has seen.
    await b.publishRaw(name, topics[i++ % topics.length]!, new Uint8Array(randomBytes(limit + 1024)));
  });

  // Served: one frame just over the sync frame limit, to whoever asks for blocks or payloads. The host's own
  // check of what a handler yields is lifted for these two protocols only (re-registered with a higher cap).
  const bigFrame = new Uint8Array(SYNC_MAX_FRAME_BYTES + 1024);
  const serveOversized = async function* (): AsyncIterable<Uint8Array> {
    if (!b.may(name)) return;
    b.count(name);
    yield bigFrame;
  };
  b.spawn(name, async () => {
    for (const protocol of [SYNC_PROTOCOL, PAYLOAD_PROTOCOL]) {
      await b.libp2p.unhandle(`/medledger/${b.network}/${protocol}/1`);
      await b.node.host.handle(protocol, () => serveOversized(), { maxFrameBytes: 2 * SYNC_MAX_FRAME_BYTES });
    }
  });
  // A signed vote two heights ahead makes the others ask this node for the blocks they lack.
  b.every(name, 3_000, async () => {
    await b.publish(name, 'vote', encodeVotes([b.vote('prevote', b.node.ledger.height + 3, 0, randomValue())]));
  });

  // Sent: requests over the peers' request limit.
  const bigRequest = new Uint8Array(5 * 1024 * 1024);
  b.every(name, 5_000, async () => {
    for (const peer of b.node.host.connectedPeers()) {
      if (!b.may(name)) return;
      b.count(name);
      try {
        for await (const _ of b.node.host.request(peer, SYNC_PROTOCOL, bigRequest, { timeoutMs: 5_000 })) break;
      } catch {
        // refused, as it should be
      }
    }
  });
}

function replay(b: Byzantine): void {
  const name = 'replay';
  const seen = new Map<number, { proposals: Proposal[]; votes: SignedVote[] }>();
  const keep = (height: number) => {
    let m = seen.get(height);
    if (!m) {
      if (seen.size >= 8) seen.delete(Math.min(...seen.keys()));
      seen.set(height, (m = { proposals: [], votes: [] }));
    }
    return m;
  };
  const noteProposal = (p: Proposal) => {
    const m = keep(p.height);
    if (m.proposals.length < 8) m.proposals.push(p);
  };
  const noteVotes = (votes: SignedVote[]) => {
    for (const v of votes) {
      const m = keep(v.height);
      if (m.votes.length < 256) m.votes.push(v);
    }
  };
  const { engine } = b.node;
  const onProposal = engine.onProposal.bind(engine);
  engine.onProposal = (p, peer) => {
    noteProposal(p);
    onProposal(p, peer);
  };
  const onVote = engine.onVote.bind(engine);
  engine.onVote = (v, peer) => {
    noteVotes([v]);
    onVote(v, peer);
  };
  const publishProposal = b.deps.publishProposal;
  b.deps.publishProposal = (p) => {
    noteProposal(p);
    publishProposal(p);
  };
  const publishVotes = b.deps.publishVotes;
  b.deps.publishVotes = (votes) => {
    noteVotes(votes);
    publishVotes(votes);
  };
  b.every(name, 500, async () => {
    const final = b.node.ledger.height;
    for (const [height, m] of seen) {
      if (height > final) continue;
      for (const p of m.proposals) if (b.may(name)) await b.publish(name, 'block', encodeProposal(p));
      for (let i = 0; i < m.votes.length && b.may(name); i += 64) await b.publish(name, 'vote', encodeVotes(m.votes.slice(i, i + 64)));
    }
  });
}

const APPLY: Record<BehaviourName, (b: Byzantine) => void> = {
  equivocate,
  'invalid-payload': invalidPayload,
  'vote-flood': voteFlood,
  'far-rounds': farRounds,
  'sync-strip': (b) => syncTamper(b, 'strip'),
  'sync-alter': (b) => syncTamper(b, 'alter'),
  oversized,
  replay,
};

function assertLoopback(config: NodeConfig): void {
  const addrs = [...config.p2p.listen, ...config.p2p.announce, ...config.p2p.peers.flatMap((p) => p.addrs)];
  const outside = addrs.filter((a) => !a.startsWith('/ip4/127.0.0.1/'));
  if (config.api.host !== '127.0.0.1' || outside.length > 0)
    throw new Error(`the byzantine harness runs on 127.0.0.1 only (found ${outside.join(', ') || config.api.host})`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      behaviour: { type: 'string', default: '' },
      'max-messages': { type: 'string', default: '20000' },
      'max-seconds': { type: 'string', default: '300' },
      'flood-rounds': { type: 'string', default: '1000' },
      stats: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
  if (!values.config) throw new Error('--config FILE is required');
  const names = values.behaviour.split(',').filter((s) => s.length > 0);
  for (const n of names) if (!(BEHAVIOURS as readonly string[]).includes(n)) throw new Error(`unknown behaviour '${n}' (known: ${BEHAVIOURS.join(', ')})`);
  const opts: Options = {
    maxMessages: Math.min(Number(values['max-messages']), 1_000_000),
    maxSeconds: Math.min(Number(values['max-seconds']), 3_600),
    floodRounds: Math.min(Number(values['flood-rounds']), 10_000),
    ...(values.stats ? { statsFile: values.stats } : {}),
  };
  if (!(opts.maxMessages >= 0 && opts.maxSeconds >= 0 && opts.floodRounds >= 1))
    throw new Error('--max-messages, --max-seconds and --flood-rounds must be numbers');
  const config = loadNodeConfig(values.config);
  assertLoopback(config);

  const node = await MedLedgerNode.start(config);
  const byz = new Byzantine(node, opts);
  for (const n of names as BehaviourName[]) APPLY[n](byz);
  byz.log.warn({ behaviours: names, maxMessages: opts.maxMessages, maxSeconds: opts.maxSeconds }, 'BYZANTINE TEST HARNESS: this node misbehaves on purpose');

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    byz.stop();
    node.logger.info({ why }, 'stopping');
    try {
      await node.stop();
      process.exit(0);
    } catch (err) {
      node.logger.error({ err: (err as Error).message }, 'unclean stop');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  if (values['exit-with-stdin']) {
    process.stdin.on('end', () => void stop('parent exited'));
    process.stdin.on('error', () => void stop('parent exited'));
    process.stdin.resume();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`byzantine harness failed: ${err.message}\n`);
  process.exit(1);
});
