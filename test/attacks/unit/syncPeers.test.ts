import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ChainWriter } from '../../../src/node/chainWriter.js';
import { ConsensusEngine } from '../../../src/node/consensusEngine.js';
import { Ledger } from '../../../src/node/ledger.js';
import { Mempool } from '../../../src/node/mempool.js';
import type { P2PHost } from '../../../src/node/p2p/host.js';
import { LedgerStore } from '../../../src/node/store/ledgerStore.js';
import { PAYLOAD_PROTOCOL, SYNC_PROTOCOL, SyncManager } from '../../../src/node/sync.js';
import { toHex } from '../../../src/records/crypto/bytes.js';
import { decodeCanonical, encodeCanonical } from '../../../src/records/encoding.js';
import { ChainBuilder } from '../../support/chainBuilder.js';

/**
 * Sync from peers that lie: real LevelDB ledgers on both sides, the serving side's real SyncManager,
 * and a stand-in for the libp2p host that routes each request to a peer's server, through a byzantine
 * filter for the hostile one. The chain has records, a grant, and a deleted record (so one grant
 * payload is legitimately redacted on honest replicas).
 */
type Frame = { block: Uint8Array; cert: unknown; payloads: { index: number; payload: Uint8Array; redacted: boolean }[] };
type Filter = (protocol: string, frame: Uint8Array) => Uint8Array | null;

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openLedger(chain: ChainBuilder): Promise<Ledger> {
  const dir = mkdtempSync(join(tmpdir(), 'medledger-sync-'));
  dirs.push(dir);
  const store = await LedgerStore.open(join(dir, 'ledger'));
  const ledger = await Ledger.open(store, chain.genesis);
  closers.push(() => store.close());
  return ledger;
}

/** A chain with two records of one patient, a grant that wraps both, then one record deleted. */
async function sourceChain() {
  const chain = ChainBuilder.create({ startTime: Date.now() - 3_600_000 });
  chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-b', 'dr-b', 'doctor')]);
  const kept = chain.createRecord('pat-1', 'pat-1', 'kept record');
  const gone = chain.createRecord('pat-1', 'pat-1', 'deleted record');
  chain.finalize([kept.tx, gone.tx]);
  const grant = chain.grant('pat-1', 'dr-b');
  chain.finalize([grant.tx]);
  chain.finalize([chain.deleteRecord('pat-1', 'pat-1', gone.record)]);
  const source = await openLedger(chain);
  for (const b of chain.blocks) await source.commit(b.finalized);
  return { chain, source, kept, gone, grant };
}

function fakeHost(servers: Record<string, { sync: SyncManager; filter?: Filter }>, log: string[]): P2PHost {
  return {
    connectedPeers: () => Object.keys(servers),
    async *request(peer: string, protocol: string, request: Uint8Array) {
      log.push(`${peer}:${protocol}`);
      const server = servers[peer]!;
      const frames = protocol === SYNC_PROTOCOL ? server.sync.serve(request) : protocol === PAYLOAD_PROTOCOL ? server.sync.servePayloads(request) : null;
      if (!frames) throw new Error(`protocol ${protocol} not served`);
      for await (const f of frames) {
        const out = server.filter ? server.filter(protocol, f) : f;
        if (out) yield out;
      }
    },
  } as unknown as P2PHost;
}

async function syncingNode(chain: ChainBuilder, servers: Record<string, { sync: SyncManager; filter?: Filter }>) {
  const ledger = await openLedger(chain);
  const log: string[] = [];
  const writer = new ChainWriter(ledger);
  const engine = new ConsensusEngine({
    ledger,
    chain: writer,
    mempool: new Mempool({ maxTxs: 100, maxBytes: 1 << 20 }),
    self: null,
    publishProposal: () => undefined,
    publishVotes: () => undefined,
    behind: () => undefined,
    dropped: () => undefined,
    logger,
  });
  const host = fakeHost(servers, log);
  const sync = new SyncManager({ ledger, chain: writer, host: () => host, logger, maxBlockBytes: chain.genesis.params.maxBlockBytes });
  closers.unshift(async () => {
    await sync.close();
    await engine.stop();
  });
  return { ledger, sync, log };
}

function server(ledger: Ledger, chain: ChainBuilder, filter?: Filter) {
  const sync = new SyncManager({
    ledger,
    chain: new ChainWriter(ledger),
    host: () => null as never,
    logger,
    maxBlockBytes: chain.genesis.params.maxBlockBytes,
  });
  return { sync, ...(filter ? { filter } : {}) };
}

async function untilIdle(sync: SyncManager, ledger: Ledger, height: number): Promise<void> {
  const end = Date.now() + 10_000;
  while (ledger.height < height || sync.progress.active) {
    if (Date.now() > end) throw new Error(`sync stuck at ${ledger.height}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const strip: Filter = (protocol, f) => {
  if (protocol !== SYNC_PROTOCOL) return f;
  const frame = decodeCanonical(f) as Frame;
  return encodeCanonical({ ...frame, payloads: [] });
};

/** Flips a byte in every payload; a grant's is also flagged "redacted" so that no hash check applies. */
const garble: Filter = (_protocol, f) => {
  const frame = decodeCanonical(f) as Frame & { id?: string; payload?: Uint8Array };
  const flip = (p: Uint8Array) => p.map((b, i) => (i === p.length - 10 ? b ^ 0xff : b));
  if (frame.payloads) return encodeCanonical({ ...frame, payloads: frame.payloads.map((p) => ({ ...p, payload: flip(p.payload), redacted: true })) });
  return encodeCanonical({ ...frame, payload: flip(frame.payload!), redacted: true });
};

describe('sync against a byzantine serving peer', () => {
  it('payloads stripped by the serving peer are marked missing and fetched from another peer', async () => {
    const { chain, source, kept, grant } = await sourceChain();
    const node = await syncingNode(chain, { evil: server(source, chain, strip), honest: server(source, chain) });
    node.sync.behind(chain.height, 'evil');
    await untilIdle(node.sync, node.ledger, chain.height);
    expect(node.log[0]).toBe(`evil:${SYNC_PROTOCOL}`);
    // The stripped payloads were marked missing and asked for again (the node does so right after a sync).
    await node.sync.repairMissing();
    expect(node.log).toContain(`honest:${PAYLOAD_PROTOCOL}`);
    expect(await node.ledger.store.missingPayloads(100)).toEqual([]);
    for (const id of [kept.tx.idHex, grant.tx.idHex]) {
      expect(toHex((await node.ledger.store.getPayload(id))!.payload)).toBe(toHex((await source.store.getPayload(id))!.payload));
    }
  });

  it('altered payloads (a flipped ciphertext byte, a grant falsely flagged redacted) are never stored', async () => {
    const { chain, source, kept, gone, grant } = await sourceChain();
    const node = await syncingNode(chain, { evil: server(source, chain, garble) });
    node.sync.behind(chain.height, 'evil');
    await untilIdle(node.sync, node.ledger, chain.height);
    await node.sync.repairMissing(); // only the liar is connected: still nothing stored
    expect(await node.ledger.store.getPayload(kept.tx.idHex)).toBeUndefined();
    expect(await node.ledger.store.getPayload(grant.tx.idHex)).toBeUndefined();
    // The deleted record's payload is not missing: the deletion purged the claim to it.
    expect(await node.ledger.store.missingPayloads(100)).not.toContain(gone.tx.idHex);
    expect((await node.ledger.store.missingPayloads(100)).sort()).toEqual([kept.tx.idHex, grant.tx.idHex].sort());
  });

  it('a redacted grant payload is stored once f+1 peers serve identical bytes, and a deleted record stays purged', async () => {
    const { chain, source, gone, grant } = await sourceChain();
    expect((await source.store.getPayload(grant.tx.idHex))!.redacted).toBe(true);
    const node = await syncingNode(chain, { a: server(source, chain), b: server(source, chain) });
    node.sync.behind(chain.height, 'a');
    await untilIdle(node.sync, node.ledger, chain.height);
    await node.sync.repairMissing();
    const stored = (await node.ledger.store.getPayload(grant.tx.idHex))!;
    expect(stored.redacted).toBe(true);
    expect(toHex(stored.payload)).toBe(toHex((await source.store.getPayload(grant.tx.idHex))!.payload));
    expect(await node.ledger.store.getPayload(gone.tx.idHex)).toBeUndefined();
    expect(await node.ledger.store.missingPayloads(100)).toEqual([]);
  });

  it('a claimed height with no certified block behind it does not make the node sync (or follow that peer) again', async () => {
    const { chain, source } = await sourceChain();
    const empty = await openLedger(chain); // a peer that claims heights it cannot serve
    const node = await syncingNode(chain, { liar: server(empty, chain), honest: server(source, chain) });
    node.sync.behind(chain.height, 'honest');
    await untilIdle(node.sync, node.ledger, chain.height);
    await new Promise((r) => setTimeout(r, 50));
    node.sync.behind(chain.height + 2, 'liar');
    await new Promise((r) => setTimeout(r, 200));
    expect(node.sync.progress.active).toBe(false);
    const requests = node.log.length;
    for (let i = 0; i < 20; i++) node.sync.behind(chain.height + 2, 'liar');
    await new Promise((r) => setTimeout(r, 100));
    expect(node.log.length).toBe(requests);
    expect(node.sync.progress.active).toBe(false);
    expect(node.ledger.height).toBe(chain.height);
  });
});
