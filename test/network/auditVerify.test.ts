import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifyReport } from '../../src/client/verifyReplicas.js';
import { decodeBlock, encodeBlock, headerHash, signHeader, type Block } from '../../src/consensus/block.js';
import { readGenesisFile } from '../../src/node/node.js';
import { certificateFromVotes, signVote } from '../../src/consensus/votes.js';
import type { EvidenceRecord, StatusResponse } from '../../src/api/contract.js';
import { K } from '../../src/node/store/testSupport.js';
import { fromHex, toHex } from '../../src/records/crypto/bytes.js';
import { createSigner, type Signer } from '../../src/records/crypto/signature.js';
import { decodeCanonical, encodeCanonical } from '../../src/records/encoding.js';
import type { Session } from '../../src/client/session.js';
import { cli } from '../support/cliRunner.js';
import { TestNetwork, TEST_PASSWORD } from '../support/testNetwork.js';
import { KEY, TuiDriver } from '../support/tuiDriver.js';

/**
 * Auditing across real replicas (issue #5, PROTOCOL.md §8.4): four node processes, the built `medledger` CLI.
 * A byte flipped in one node's stored block (while it is stopped) is caught by that node's integrity
 * monitor and by `medledger verify`, which names the node and the height; a transaction deleted from one
 * replica's index only is an index inconsistency; inclusion proofs verify offline and fail on a changed
 * byte; a second, validly signed and certified block at one height, and equivocation evidence kept by a
 * node, are shown by verify.
 */
type DB = ClassicLevel<string, Uint8Array>;

describe('auditing the replicas of a real network', () => {
  let net: TestNetwork;
  let urls: string;
  let dir: string;
  let patient: Session;
  let recordTx: { id: string; height: number };
  let readTx: { id: string; height: number };

  /** Edits node i's LevelDB while the node is stopped, then starts it again and waits for its peers. */
  async function whileStopped(i: number, edit: (db: DB) => Promise<void>, opts: { start?: boolean } = {}): Promise<void> {
    await net.processes[i]!.stop();
    const db: DB = new ClassicLevel<string, Uint8Array>(join(net.node(i).dataDir, 'ledger'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    try {
      await edit(db);
    } finally {
      await db.close();
    }
    if (opts.start !== false) {
      net.processes[i]!.start();
      await net.processes[i]!.waitReady(30_000);
    }
  }

  const verify = async (extra: string[] = []) => {
    const run = await cli(['verify', '--api', urls, '--json', ...extra]);
    return { run, report: JSON.parse(run.stdout) as VerifyReport };
  };

  const integrityOf = async (i: number, until: (s: StatusResponse) => boolean) =>
    (await net.waitFor((s) => until(s), { nodes: [i], timeoutMs: 30_000 }))[0]!.integrity;

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    await net.start();
    urls = net.layout.nodes.map((n) => n.apiUrl).join(',');
    dir = mkdtempSync(join(tmpdir(), 'medledger-audit-'));
    patient = await net.patient(0, 'pat-audit');
    const doctor = await net.staff(1, 'dr-audit', 'doctor');
    await net.staff(0, 'aud-audit', 'auditor');
    const created = await patient.createRecord('pat-audit', { vitals: { temperature: 37.4, bloodPressure: '121/79' }, notes: 'checkup' });
    recordTx = { id: created.id, height: created.event!.height };
    const read = await patient.readRecord('pat-audit', created.value!);
    readTx = { id: read.id, height: read.event!.height };
    const denied = await doctor.readRecord('pat-audit', created.value!);
    expect(denied.denied).toBeTruthy();
    // Every replica holds these blocks, and every monitor has verified them.
    await net.waitFor((s) => s.finalizedHeight >= readTx.height + 2 && s.integrity.ok && s.integrity.verifiedHeight >= readTx.height);
  }, 120_000);

  afterAll(async () => {
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('all four replicas verify and agree; each names its certified head', async () => {
    const { run, report } = await verify();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(report).toMatchObject({ ok: true, exitCode: 0, genesis: { network: net.layout.network } });
    expect(report.nodes.map((n) => [n.node, n.ok])).toEqual([
      ['hosp-a', true],
      ['hosp-b', true],
      ['hosp-c', true],
      ['hosp-d', true],
    ]);
    for (const n of report.nodes) {
      expect(n.verifiedHeight).toBeGreaterThan(readTx.height);
      expect(n.head!.signers.length).toBeGreaterThanOrEqual(3);
    }
    expect(report.events).toBeGreaterThanOrEqual(5);
    // The genesis pinned by file gives the same verdict; the human output says so too.
    const pinned = await cli(['verify', '--api', urls, '--genesis', net.layout.genesisFile]);
    expect(pinned.code).toBe(0);
    expect(pinned.stdout).toMatch(/all replicas verify and agree/);
    const unreachable = await cli(['verify', '--api', `${urls},http://127.0.0.1:9`]);
    expect(unreachable.code).toBe(2);
    expect(unreachable.stdout).toMatch(/unreachable/);
  });

  it('inclusion proof: printed by prove, valid offline with the genesis file, invalid after one changed byte', async () => {
    const file = join(dir, 'proof.json');
    const proved = await cli(['prove', '--api', net.node(2).apiUrl, '--tx', readTx.id, '--out', file]);
    expect(proved.stderr).toContain(`block ${readTx.height}`);
    expect(proved.code).toBe(0);
    const ok = await cli(['verify-proof', file, '--genesis', net.layout.genesisFile]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^VALID proof/);
    expect(ok.stdout).toContain(`pat-audit (patient, hosp-a)  readRecord on patient pat-audit`);
    expect(ok.stdout).toContain(readTx.id);

    const proof = JSON.parse(readFileSync(file, 'utf8')) as { tx: string; claim: { patient: string } };
    const bytes = Buffer.from(proof.tx, 'base64');
    bytes[bytes.length - 3]! ^= 0x01; // inside the user's signature
    writeFileSync(file, JSON.stringify({ ...proof, tx: bytes.toString('base64') }));
    const bad = await cli(['verify-proof', file, '--genesis', net.layout.genesisFile]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^INVALID proof: transaction: .*invalid signature/);
    const absent = await cli(['prove', '--api', net.node(0).apiUrl, '--tx', 'ab'.repeat(32)]);
    expect(absent.code).toBe(2);
  });

  it('FHIR export of a patient trail through the audit command', async () => {
    const run = await cli(['audit', '--api', net.node(0).apiUrl, '--user', 'pat-audit', '--format', 'fhir', '--all']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const bundle = JSON.parse(run.stdout) as {
      resourceType: string;
      entry: { resource: { resourceType: string; id: string; action: string; outcome: string; meta?: { profile: string[] } } }[];
    };
    expect(bundle.resourceType).toBe('Bundle');
    const byId = new Map(bundle.entry.map((e) => [e.resource.id, e.resource]));
    expect(byId.get(recordTx.id)).toMatchObject({
      resourceType: 'AuditEvent',
      action: 'C',
      outcome: '0',
      meta: { profile: ['https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate'] },
    });
    expect(byId.get(readTx.id)).toMatchObject({ action: 'R', outcome: '0' });
    expect([...byId.values()].some((r) => r.action === 'R' && r.outcome === '4')).toBe(true); // the doctor's denied read
  });

  it("one flipped byte in one node's stored block: its monitor alerts with the height, verify exits 1 naming node and height", async () => {
    const h = recordTx.height;
    let original: Uint8Array | undefined;
    await whileStopped(3, async (db) => {
      original = (await db.get(K.block(h)))!;
      const block = decodeBlock(original, 64 * 1024 * 1024);
      const tx = Buffer.from(block.txs[0]!);
      const bytes = Buffer.from(original);
      bytes[bytes.indexOf(tx) + Math.floor(tx.length / 2)]! ^= 0x01;
      await db.put(K.block(h), new Uint8Array(bytes));
    });
    const integrity = await integrityOf(3, (s) => !s.integrity.ok);
    expect(integrity).toMatchObject({ ok: false, verifiedHeight: h - 1, alert: { height: h } });
    const log = readFileSync(net.processes[3]!.logFile, 'utf8');
    expect(log).toContain("No data integrity in the server's database");

    const { run, report } = await verify();
    expect(run.code).toBe(1);
    const d = report.nodes[3]!;
    expect(d).toMatchObject({ node: 'hosp-d', ok: false, verifiedHeight: h - 1 });
    expect(d.problem).toContain(`height ${h}:`);
    expect(report.divergence).toMatchObject({ height: h, nodes: ['hosp-d'] });
    expect(report.nodes.slice(0, 3).every((n) => n.ok)).toBe(true);
    const text = await cli(['verify', '--api', urls]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`hosp-d .* FAILED  height ${h}: `));
    expect(text.stdout).toContain(`DIVERGENCE at height ${h}: hosp-d`);

    // What an auditor sees in the terminal UI of the altered node: the red alert, and the verify screen.
    const tui = new TuiDriver(net.node(3).apiUrl, { keystoreDir: net.node(0).keystoreDir });
    try {
      await tui.waitFor(`No data integrity in the server's database`);
      await tui.login('aud-audit', TEST_PASSWORD);
      await tui.waitFor('Auditor menu — aud-audit');
      await tui.press('v');
      await tui.waitFor('Node API URLs');
      await tui.press(KEY.ctrlU);
      await tui.type(urls);
      const screen = await tui.waitFor('Replicas DIFFER or fail verification.', 60_000);
      expect(screen).toMatch(new RegExp(`hosp-d\\s+\\|\\s*NO\\s+\\|\\s*${h - 1}\\s`));
      expect(screen).toMatch(new RegExp(`hosp-a\\s+\\|\\s*yes`));
      expect(screen).toContain(`Divergence at height ${h} on hosp-d`);
    } finally {
      tui.unmount();
    }

    await whileStopped(3, (db) => db.put(K.block(h), original!));
    expect(await integrityOf(3, (s) => s.integrity.ok && s.integrity.verifiedHeight >= h)).toMatchObject({ ok: true });
  });

  it("a transaction deleted from one replica's index only is an index inconsistency, and verify names that node", async () => {
    let location: Uint8Array | undefined;
    await whileStopped(2, async (db) => {
      location = (await db.get(K.txLocation(readTx.id)))!;
      await db.del(K.txLocation(readTx.id));
    });
    const integrity = await integrityOf(2, (s) => !s.integrity.ok);
    expect(integrity.alert).toMatchObject({ height: readTx.height, problem: expect.stringMatching(/^index inconsistency: .*transaction location/) });
    const { run, report } = await verify();
    expect(run.code).toBe(1);
    expect(report.nodes[2]).toMatchObject({
      node: 'hosp-c',
      ok: false,
      problem: expect.stringContaining(`its own integrity monitor reports height ${readTx.height}: index inconsistency`),
    });
    expect(report.divergence).toBeUndefined(); // its chain itself is intact
    await whileStopped(2, (db) => db.put(K.txLocation(readTx.id), location!));
    expect(await integrityOf(2, (s) => s.integrity.ok)).toMatchObject({ ok: true });
  });

  it('a second validly signed, certified block at one height and stored vote evidence are shown by verify as equivocation', async () => {
    const genesis = readGenesisFile(net.layout.genesisFile);
    const signer = (i: number): Signer =>
      createSigner(fromHex((JSON.parse(readFileSync(join(net.node(i).dir, 'validator.key.json'), 'utf8')) as { secretKey: string }).secretKey));
    // Quiet network: stop hosp-b and hosp-c (the chain halts without a quorum), then rewrite hosp-b's head
    // with a conflicting block: same parent, signed by the same proposer, certified by all four validators.
    let forgedHeight = 0;
    let forgedHash = '';
    await whileStopped(
      1,
      async (db) => {
        const head = decodeCanonical((await db.get(K.head))!) as { height: number; hash: Uint8Array };
        const real = decodeBlock((await db.get(K.block(head.height)))!, 64 * 1024 * 1024);
        const header = { ...real.header, time: real.header.time + 1 };
        const forged: Block = { ...real, header, sig: signHeader(header, signer(header.proposer), genesis.hash) };
        const hash = headerHash(header);
        const votes = [0, 1, 2, 3].map((v) =>
          signVote(
            { type: 'precommit', network: genesis.file.network, height: head.height, round: header.round, validator: v, block: hash },
            signer(v),
            genesis.hash,
          ),
        );
        await db.batch([
          { type: 'put', key: K.block(head.height), value: encodeBlock(forged) },
          { type: 'put', key: K.cert(head.height), value: encodeCanonical(certificateFromVotes(votes)) },
          { type: 'del', key: K.blockByHash(toHex(head.hash)) },
          { type: 'put', key: K.blockByHash(toHex(hash)), value: encodeCanonical(head.height) },
          { type: 'put', key: K.head, value: encodeCanonical({ height: head.height, hash }) },
        ]);
        forgedHeight = head.height;
        forgedHash = toHex(hash);
      },
      { start: false },
    );
    // hosp-c keeps evidence: hosp-d's two precommits for different blocks at height 3, round 0.
    await whileStopped(
      2,
      async (db) => {
        const vote = (block: Uint8Array) =>
          signVote({ type: 'precommit', network: genesis.file.network, height: 3, round: 0, validator: 3, block }, signer(3), genesis.hash);
        const evidence = {
          kind: 'vote',
          validator: 3,
          height: 3,
          round: 0,
          first: vote(new Uint8Array(32).fill(1)),
          second: vote(new Uint8Array(32).fill(2)),
          seenAt: Date.now(),
        };
        await db.put(K.evidence(3, 'vote-3-0'), encodeCanonical(evidence));
      },
      { start: false },
    );
    net.processes[1]!.start();
    net.processes[2]!.start();
    await Promise.all([net.processes[1]!.waitReady(30_000), net.processes[2]!.waitReady(30_000)]);
    // hosp-b's own monitor finds nothing wrong: its forged history is consistent. Only comparing replicas shows it.
    expect(await integrityOf(1, (s) => s.integrity.verifiedHeight >= forgedHeight)).toMatchObject({ ok: true });
    const stored = await net.api(2).get<{ evidence: EvidenceRecord[] }>('/v1/evidence');
    expect(stored.evidence).toMatchObject([
      { kind: 'vote', validator: 3, hospital: 'hosp-d', height: 3, round: 0, first: { type: 'precommit' }, second: { type: 'precommit' } },
    ]);

    const { run, report } = await verify();
    expect(run.code).toBe(1);
    const fromChains = report.equivocations!.find((e) => e.source === 'chains')!;
    expect(fromChains).toMatchObject({ height: forgedHeight, kind: 'certificates', verified: true });
    expect(fromChains.validators.length).toBeGreaterThanOrEqual(2); // two quorums of 3 out of 4 share at least 2
    expect(fromChains.blocks.find((b) => b.hash === forgedHash)!.nodes).toEqual(['hosp-b']);
    expect(report.divergence).toMatchObject({ height: forgedHeight, nodes: ['hosp-b'] });
    expect(report.nodes[1]).toMatchObject({ node: 'hosp-b', ok: false, problem: expect.stringContaining(`second certified block at height ${forgedHeight}`) });
    const fromEvidence = report.equivocations!.find((e) => e.source === 'evidence')!;
    expect(fromEvidence).toMatchObject({ height: 3, kind: 'vote', validators: ['hosp-d'], verified: true, reportedBy: ['hosp-c'] });

    const text = await cli(['verify', '--api', urls]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(
      `EQUIVOCATION (conflicting certified blocks) at height ${forgedHeight}: 2 different blocks at height ${forgedHeight} each carry a valid commit certificate; validators who signed both: ${fromChains.validators.join(', ')}`,
    );
    expect(text.stdout).toContain('EQUIVOCATION (evidence kept by hosp-c) at height 3: hosp-d signed two different precommits at height 3 round 0');
    expect(text.stdout).toContain('signatures verified here');
  }, 120_000);
});
