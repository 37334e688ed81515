import { afterEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { runLoad } from '../support/load.js';
import { ackedProblems, evidenceProblems, FinalityClients, inspectStore, patientAt, payloadProblems, TestNetwork } from '../support/testNetwork.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * kill -9 of each node in turn, each one at the moment it is the proposer of the next height, while
 * clients keep submitting to all four nodes: nothing a client was told is final may be lost or move.
 */
describe('kill -9 of each node in turn under load', () => {
  let net: TestNetwork | undefined;
  afterEach(async (ctx) => {
    if (net && (ctx.task.result?.state === 'fail' || process.env.FAULT_KEEP_LOGS)) console.log(`node logs kept in ${net.saveLogs(ctx.task.name)}`);
    await net?.destroy();
    net = undefined;
  });

  it('every node killed in turn (as next proposer), restarted and caught up; every acknowledged transaction is final everywhere at its place', async () => {
    net = await TestNetwork.create(4);
    await net.start();
    const loadPatients: Session[] = [];
    const finality: { node: number; patient: Session }[] = [];
    const writers: { node: number; patient: Session }[] = [];
    for (let i = 0; i < 4; i++) {
      loadPatients.push(await patientAt(net, i, `load-${i}`));
      for (let k = 0; k < 2; k++) finality.push({ node: i, patient: await patientAt(net, i, `fin-${i}-${k}`) });
      writers.push({ node: i, patient: await patientAt(net, i, `rec-${i}`) });
    }
    let stopLoad = false;
    const load = runLoad(
      loadPatients.map((p, i) => ({ api: net!.api(i), patient: p })),
      { batches: 1_000_000, batchSize: 5, pauseMs: 200, stop: () => stopLoad },
    );
    const clients = new FinalityClients(net, finality);
    const records = new FinalityClients(net, writers, { records: true });
    await sleep(1_000);

    for (const victim of [0, 1, 2, 3]) {
      const others = [0, 1, 2, 3].filter((i) => i !== victim);
      // Kill it when it is the proposer of the next height (round 0): its turn must be skipped by timeout.
      let before = -1;
      const deadline = Date.now() + 10_000;
      while (before < 0) {
        const s = await net.api(victim).status();
        if ((s.height + 1) % 4 === victim) before = s.finalizedHeight;
        else if (Date.now() > deadline) throw new Error(`node ${victim} never became the next proposer (height ${s.height})`);
        else await sleep(10);
      }
      await net.kill(victim);
      const downAt = Math.max(...(await net.statuses(others)).map((s) => s.height));
      // The others keep finalizing without it, past its next turn.
      await net.waitFor((s) => s.height >= downAt + 5, { nodes: others, timeoutMs: 30_000 });

      const first = await net.restart(victim);
      expect(first.finalizedHeight, `node ${victim} reopened below its finalized height`).toBeGreaterThanOrEqual(before);
      const target = Math.max(...(await net.statuses(others)).map((s) => s.height));
      await net.waitFor((s) => s.height >= target && s.peers.length === 3, { nodes: [victim], timeoutMs: 60_000 });
      const verified = await net.waitIntegrity(victim, before);
      expect(verified.integrity.ok).toBe(true);
      expect(verified.finalizedHeight).toBeGreaterThanOrEqual(before);
      console.log(
        `kill sweep: node ${victim} killed at height ${before} (next proposer), others went on to ${downAt + 5}, reopened at ${first.height}, caught up to ${target}`,
      );
    }

    stopLoad = true;
    await Promise.all([load, clients.stop(), records.stop()]);
    // Clients of every node, the killed ones included, got final answers.
    for (let i = 0; i < 4; i++) expect(clients.acked.filter((a) => a.node === i).length, `acknowledgements from node ${i}`).toBeGreaterThan(10);
    const { problems, chains } = await ackedProblems(net, [...clients.acked, ...records.acked]);
    expect(problems).toEqual([]);
    // Each killed proposer's turn was taken over in a later round at least once.
    expect(chains[0]!.some((b) => b.round > 0)).toBe(true);
    const statuses = await net.statuses();
    statuses.forEach((s, i) => expect(s.integrity, `node ${i} integrity`).toMatchObject({ ok: true }));
    expect(await evidenceProblems(net)).toEqual([]);
    // Every record's payload file is on every replica, nothing orphaned, staged or marked missing (nodes stopped).
    expect(records.acked.length).toBeGreaterThan(20);
    await net.stop();
    const stores = await Promise.all([0, 1, 2, 3].map((i) => inspectStore(net!.node(i).dataDir)));
    stores.forEach((st, i) => expect(payloadProblems(st), `payload files of node ${i}`).toEqual([]));
    for (const a of records.acked)
      stores.forEach((st, i) => expect(st.payloadKeys.has(a.id), `payload of record tx ${a.id.slice(0, 12)} on node ${i}`).toBe(true));
    console.log(
      `kill sweep: ${clients.acked.length} acknowledged final (+ ${records.acked.length} records), ${clients.unanswered + records.unanswered} unanswered, chains agree to ${chains[0]!.length}`,
    );
  }, 180_000);
});
