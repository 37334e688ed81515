import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../../src/client/apiClient.js';
import { PayloadAudit, type PayloadCheckReport } from '../../../src/client/verifyPayloads.js';
import { encodeBlock, genesisBlock } from '../../../src/consensus/block.js';
import { ReplicaComparison } from '../../../src/consensus/replicaCheck.js';
import { payloadListingSchema, type PayloadListing } from '../../../src/api/contract.js';
import { proofOf } from '../../../src/node/auditorView.js';
import { Ledger } from '../../../src/node/ledger.js';
import { listPayloads } from '../../../src/node/payloadListing.js';
import { K, rawLevel } from '../../../src/node/store/testSupport.js';
import { LedgerStore } from '../../../src/node/store/ledgerStore.js';
import { encodeCanonical } from '../../../src/records/encoding.js';
import { ChainBuilder } from '../../support/chainBuilder.js';

/**
 * The payload comparison of `verify --payloads` (client/verifyPayloads.ts) against four real stores, fed page
 * by page as verify feeds it (pages of two heights here, so that deletions come pages after the content they
 * delete), the verified height one block short of the replicas' heads. Each replica answers GET /v1/payloads
 * and /v1/proof with the node's own code; one replica damages or lies about something different:
 *
 *   b  still has (file and reference) the content of a record deleted two pages later: its copy matches the
 *      committed hash when its page is judged, and the re-check at the end names it;
 *   c  lost a live record's payload file, and altered its redacted copy of a grant (the others agree);
 *   d  lists a live record's content as gone, citing as its deletion the proof of another record's deletion.
 *
 * A record deleted after the verified height is absent everywhere: its deletion's inclusion proof explains
 * that, and nobody is named for it.
 */
const chain = ChainBuilder.create();
const NAMES = ['a', 'b', 'c', 'd'];
let dir: string;
let ledgers: Ledger[] = [];
let ids: { r1: string; r2: string; grant: string; r3: string; del1: string; del3: string; record1: string; record2: string };

function build() {
  chain.finalize([chain.registerPatient('pat-1', 'hosp-a'), ...chain.enrol('admin-a', 'doc-1', 'doctor')]);
  const r1 = chain.createRecord('pat-1', 'pat-1', 'first record');
  chain.finalize([r1.tx]); // h2
  const r2 = chain.createRecord('pat-1', 'pat-1', 'second record');
  chain.finalize([r2.tx]); // h3
  const grant = chain.grant('pat-1', 'doc-1');
  chain.finalize([grant.tx]); // h4: wraps the keys of both records
  const r3 = chain.createRecord('pat-1', 'pat-1', 'third record');
  chain.finalize([r3.tx]); // h5
  const del1 = chain.deleteRecord('pat-1', 'pat-1', r1.record);
  chain.finalize([del1]); // h6: purges r1 and redacts the grant
  chain.finalize([chain.readRecord('pat-1', 'pat-1', r2.record)]); // h7
  const del3 = chain.deleteRecord('pat-1', 'pat-1', r3.record);
  chain.finalize([del3]); // h8: after the verified height
  ids = {
    r1: r1.tx.idHex,
    r2: r2.tx.idHex,
    grant: grant.tx.idHex,
    r3: r3.tx.idHex,
    del1: del1.idHex,
    del3: del3.idHex,
    record1: r1.record,
    record2: r2.record,
  };
  return { r1Payload: r1.payload };
}

const VERIFIED = 7;
const payloadPath = (i: number, tx: string) => join(ledgers[i]!.store.payloadFiles.dir, tx.slice(0, 2), tx);

/** A replica's API as verify sees it: the node's own handlers, and `lie` rewriting d's listing. */
function client(i: number, lie?: (l: PayloadListing) => PayloadListing): ApiClient {
  return {
    get: async (path: string) => {
      const url = new URL(path, 'http://replica');
      if (url.pathname === '/v1/payloads') {
        const listing = await listPayloads(ledgers[i]!, Number(url.searchParams.get('from')), Number(url.searchParams.get('to')));
        return lie ? lie(payloadListingSchema.parse(listing)) : listing;
      }
      const proof = url.pathname.match(/^\/v1\/proof\/([0-9a-f]{64})$/);
      if (proof) return proofOf(ledgers[i]!, proof[1]!);
      throw new Error(`unexpected request ${path}`);
    },
  } as unknown as ApiClient;
}

async function runAudit(clients: ApiClient[]): Promise<PayloadCheckReport> {
  const audit = new PayloadAudit(
    chain.genesis,
    NAMES.map((name, i) => ({ name, client: clients[i]! })),
  );
  const comparison = new ReplicaComparison(chain.genesis, NAMES, { onExecuted: audit.onExecuted });
  const verified = (name: string) => comparison.replicas.find((r) => r.name === name)!.verifiedHeight;
  const blockAt = (h: number) =>
    h === 0
      ? { block: encodeBlock(genesisBlock(chain.genesis)) }
      : { block: encodeBlock(chain.blocks[h - 1]!.executed.block), cert: encodeCanonical(chain.blocks[h - 1]!.cert) };
  for (let from = 0; from <= VERIFIED; from += 2) {
    const to = Math.min(from + 1, VERIFIED);
    audit.beginPage(from);
    for (let h = from; h <= to; h++) comparison.feed(new Map(NAMES.map((n) => [n, blockAt(h)])));
    await audit.checkPage(Math.max(1, from), to, verified);
  }
  await audit.finish(verified);
  return audit.report();
}

beforeAll(async () => {
  const { r1Payload } = build();
  dir = mkdtempSync(join(tmpdir(), 'medledger-verify-payloads-'));
  for (const name of NAMES) {
    const store = await LedgerStore.open(join(dir, name));
    const ledger = await Ledger.open(store, chain.genesis);
    for (const b of chain.blocks) await ledger.commit(b.finalized);
    ledgers.push(ledger);
  }
  // b: the purged file of record 1 is back on disk, and referenced by the store again (it would be served).
  mkdirSync(join(ledgers[1]!.store.payloadFiles.dir, ids.r1.slice(0, 2)), { recursive: true });
  writeFileSync(payloadPath(1, ids.r1), r1Payload);
  await rawLevel(ledgers[1]!.store).put(K.payload(ids.r1), new Uint8Array(0));
  // c: record 2's payload file is gone, and its redacted grant copy altered.
  rmSync(payloadPath(2, ids.r2));
  const grant = readFileSync(payloadPath(2, ids.grant));
  grant[grant.length - 3]! ^= 0x01;
  writeFileSync(payloadPath(2, ids.grant), grant);
});

afterAll(async () => {
  for (const l of ledgers) await l.store.close();
  ledgers = [];
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('verify --payloads: the comparison of replicas payload by payload', () => {
  it('healthy replicas: every payload held as committed; absences explained by deletions, before and after the verified height', async () => {
    const report = await runAudit([0, 0, 0, 0].map(() => client(0)));
    expect(report.findings).toEqual([]);
    expect(report.payloads).toBe(4); // three records' contents and the grant, in heights 1..7
    expect(report.compared).toBe(16);
    // Record 3's content is gone everywhere: its deletion (height 8) is past the verified height, proven.
    expect(report.deletedSinceVerified).toBe(4);
  });

  it('names each replica with what is wrong, and no one else', async () => {
    const lie = (l: PayloadListing): PayloadListing => ({
      ...l,
      payloads: l.payloads.map((p) => {
        if (p.tx !== ids.r2) return p;
        const { sha256: _sha, ...rest } = p;
        return { ...rest, held: false, referenced: false, deleted: { tx: ids.del3, height: 8 } };
      }),
    });
    const report = await runAudit([client(0), client(1), client(2), client(3, lie)]);
    const found = report.findings.map((f) => `${f.node} ${f.tx === ids.r1 ? 'r1' : f.tx === ids.r2 ? 'r2' : f.tx === ids.grant ? 'grant' : f.tx} ${f.problem}`);
    expect(found.sort()).toEqual(['b r1 deleted-record', 'c grant differs', 'c r2 lacks', 'd r2 lacks']);
    const byKey = (node: string, tx: string) => report.findings.find((f) => f.node === node && f.tx === tx)!;
    expect(byKey('b', ids.r1)).toMatchObject({
      height: 2,
      record: ids.record1,
      detail: `still holds the content of record ${ids.record1}, deleted at height 6`,
    });
    expect(byKey('c', ids.r2).detail).toContain('its store references it but the payload file is missing');
    expect(byKey('c', ids.grant).detail).toContain('differs from the redacted copy held by a, b, d');
    expect(byKey('d', ids.r2).detail).toContain('does not check out (the proven transaction is a success deleteRecord of');
    expect(report.deletedSinceVerified).toBe(4);
  });
});
