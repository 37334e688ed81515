import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { chainOf } from '../support/load.js';
import { evidenceProblems, inspectStore, patientAt, payloadProblems, TestNetwork } from '../support/testNetwork.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * kill -9 in the middle of a commit, at the test-only crash points of src/node/store/crashPoint.ts: the
 * node dies with a block's payload files staged but its LevelDB batch not written, or with the batch written
 * but the files not promoted. It must reopen cleanly and rejoin.
 */
describe('kill -9 in the middle of a commit', () => {
  let net: TestNetwork;
  let patient: Session;
  let failed = false;

  beforeAll(async () => {
    net = await TestNetwork.create(4);
    await net.start();
    patient = await patientAt(net, 0, 'pat-crash');
  }, 90_000);
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    if (net && (failed || process.env.FAULT_KEEP_LOGS)) console.log(`node logs kept in ${net.saveLogs('crash-point')}`);
    await net?.destroy();
  });

  const cases = [
    { point: 'commit:after-payload-files', victim: 1, reopensAt: (h: number) => h - 1 },
    { point: 'commit:after-batch', victim: 2, reopensAt: (h: number) => h },
  ] as const;

  for (const { point, victim, reopensAt } of cases) {
    it(`${point}: the node reopens at the same or the next height, integrity ok, payload files consistent, and rejoins`, async () => {
      const name = net.node(victim).name;
      // Arm the crash point on the victim (from the current height on, for the first block with a payload file).
      await net.processes[victim]!.stop();
      const armedAt = Math.max(...(await net.statuses([0, 3])).map((s) => s.height));
      net.setProcessOptions(victim, { env: { MEDLEDGER_CRASH_POINT: point, MEDLEDGER_CRASH_AT_HEIGHT: String(armedAt) } });
      await net.restart(victim);
      await net.waitFor((s) => s.height >= armedAt && s.peers.length === 3, { nodes: [victim], timeoutMs: 60_000 });

      // A record's ciphertext is a payload file on every replica: committing its block trips the crash point.
      const created = await patient.createRecord(patient.userId, { title: `crash ${point}`, vitals: { temperature: 36.6 } });
      expect(created.denied).toBeUndefined();
      const h = created.height!;
      const deadline = Date.now() + 30_000;
      while (net.processes[victim]!.running) {
        if (Date.now() > deadline) throw new Error(`${name} did not crash at ${point} (block ${h}); log:\n${net.logTail(victim, 20)}`);
        await sleep(50);
      }
      expect(net.logTail(victim, 5, /crash point/)).toContain(`crash point ${point} at height ${h}`);

      // On disk, as the crash left it.
      const crashed = await inspectStore(net.node(victim).dataDir);
      expect(crashed.height, 'stored head after the crash').toBe(reopensAt(h));
      expect(crashed.files).toContain(`${created.id}.staged`);
      expect(crashed.payloadKeys.has(created.id)).toBe(point === 'commit:after-batch');

      // Restart without the crash point: it reopens where the store was, verifies it, and catches up.
      net.setProcessOptions(victim, {});
      const first = await net.restart(victim);
      expect(first.finalizedHeight).toBeGreaterThanOrEqual(reopensAt(h));
      const top = Math.max(...(await net.statuses([0, 3])).map((s) => s.height));
      await net.waitFor((s) => s.height >= top && s.peers.length === 3, { nodes: [victim], timeoutMs: 60_000 });
      await net.waitIntegrity(victim, h);

      // It takes part in consensus again: it proposes blocks of its turns, its precommits are in certificates.
      const rejoinedFrom = (await net.api(victim).status()).height + 1;
      await net.waitFor((s) => s.height >= rejoinedFrom + 8, { timeoutMs: 60_000 });
      const later = (await chainOf(net.api(0), rejoinedFrom + 8)).slice(rejoinedFrom - 1);
      expect(
        later.some((b) => b.proposer === victim),
        `${name} proposed none of the blocks ${rejoinedFrom}..${rejoinedFrom + 8}`,
      ).toBe(true);
      expect(
        later.some((b) => b.cert?.signers.includes(victim)),
        `${name} signed none of the certificates of ${rejoinedFrom}..${rejoinedFrom + 8}`,
      ).toBe(true);

      // The record's content is served by the crashed node's own store.
      const there = await net.sessionAt(victim, patient);
      const read = await there.readRecord(patient.userId, created.value!);
      expect(read.value?.error).toBeUndefined();
      expect(read.value?.content).toMatchObject({ title: `crash ${point}` });

      expect(await evidenceProblems(net)).toEqual([]);

      // No orphan or missing payload file, nothing left staged (checked with the node stopped).
      await net.processes[victim]!.stop();
      const after = await inspectStore(net.node(victim).dataDir);
      expect(payloadProblems(after)).toEqual([]);
      expect(after.payloadKeys.has(created.id)).toBe(true);
      await net.restart(victim);
      await net.waitFor((s) => s.peers.length === 3, { nodes: [victim], timeoutMs: 30_000 });
    }, 150_000);
  }

  it('all four crash at the same commit (after-payload-files): the decided block is committed after the restart, with its payload everywhere', async () => {
    const all = [0, 1, 2, 3];
    const known = new Set((await patient.listRecords(patient.userId)).value!.map((r) => r.id));
    await Promise.all(all.map((i) => net.processes[i]!.stop()));
    const armedAt = (await inspectStore(net.node(0).dataDir)).height;
    for (const i of all) net.setProcessOptions(i, { env: { MEDLEDGER_CRASH_POINT: 'commit:after-payload-files', MEDLEDGER_CRASH_AT_HEIGHT: String(armedAt) } });
    await net.start();

    // The block is decided (every node got 2f+1 precommits before committing), and every node dies committing it.
    const creating = patient.createRecord(patient.userId, { title: 'crash all', vitals: { temperature: 36.7 } });
    creating.catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while (net.processes.some((p) => p.running)) {
      if (Date.now() > deadline)
        throw new Error(`not every node crashed: ${net.processes.map((p) => `${p.name} ${p.running ? 'running' : 'down'}`).join(', ')}`);
      await sleep(50);
    }
    const lines = all.map((i) => net.logTail(i, 1, /crash point/));
    const h = Number(/at height (\d+)/.exec(lines[0]!)?.[1]);
    for (const line of lines) expect(line).toContain(`crash point commit:after-payload-files at height ${h}`);
    const stores = await Promise.all(all.map((i) => inspectStore(net.node(i).dataDir)));
    const staged = stores[0]!.files.filter((f) => f.endsWith('.staged'));
    expect(staged).toHaveLength(1);
    const txId = staged[0]!.replace(/\.staged$/, '');
    for (const st of stores) {
      expect(st.height).toBe(h - 1);
      expect(st.files).toContain(`${txId}.staged`);
    }

    // Restarted without the crash point: they decide the same block again (they are locked on it) and commit it.
    for (const i of all) net.setProcessOptions(i, {});
    await net.start();
    await net.waitFor((s) => s.height >= h + 3, { timeoutMs: 60_000 });
    const chains = await Promise.all(all.map((i) => chainOf(net.api(i), h)));
    for (const c of chains) {
      expect(c[h - 1]!.hash).toBe(chains[0]![h - 1]!.hash);
      expect(c[h - 1]!.txs).toContain(txId);
    }
    // Its content is served by every node.
    const records = await patient.listRecords(patient.userId);
    const rec = records.value!.find((r) => !known.has(r.id));
    expect(rec, 'the record of the decided block').toBeDefined();
    for (const i of all) {
      const read = await (await net.sessionAt(i, patient)).readRecord(patient.userId, rec!.id);
      expect(read.value?.error, `content at node ${i}`).toBeUndefined();
      expect(read.value?.content).toMatchObject({ title: 'crash all' });
      await net.waitIntegrity(i, h);
    }
    expect(await evidenceProblems(net)).toEqual([]);
    await Promise.all(all.map((i) => net.processes[i]!.stop()));
    for (const i of all) expect(payloadProblems(await inspectStore(net.node(i).dataDir)), `payload files of node ${i}`).toEqual([]);
  }, 150_000);
});
