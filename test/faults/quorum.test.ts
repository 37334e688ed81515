import { afterEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { auditedRead, chainOf, positions, runLoad } from '../support/load.js';
import { ackedProblems, commonChains, evidenceProblems, FinalityClients, forkProblems, patientAt, TestNetwork } from '../support/testNetwork.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('losing and regaining the quorum', () => {
  let net: TestNetwork | undefined;
  afterEach(async (ctx) => {
    if (net && (ctx.task.result?.state === 'fail' || process.env.FAULT_KEEP_LOGS)) console.log(`node logs kept in ${net.saveLogs(ctx.task.name)}`);
    await net?.destroy();
    net = undefined;
  });

  it('two of four stopped → no finality, then it resumes by itself when one returns; the fourth catches up', async () => {
    net = await TestNetwork.create(4);
    await net.start();
    const patient = await patientAt(net, 0, 'pat-q');
    const loadPatients = [await patientAt(net, 0, 'load-0'), await patientAt(net, 1, 'load-1')];
    await net.waitFor((s) => s.height >= 5);

    // One stopped cleanly, one killed.
    await Promise.all([net.processes[2]!.stop(), net.kill(3)]);
    await sleep(1_500); // a block already being voted on when they went may still complete
    const frozen = Math.max(...(await net.statuses([0, 1])).map((s) => s.height));

    // For 5 s: a transaction is accepted but never final, and no node finalizes a height.
    const tx = auditedRead(patient);
    const waiting = net.api(0).submit(tx, undefined, { wait: true, timeoutMs: 5_000 });
    // …while clients keep submitting to the two that are up: accepted, but not final yet.
    const acceptedBy: string[][] = [[], []];
    const stallLoad = runLoad(
      loadPatients.map((p, i) => ({ api: net!.api(i), patient: p })),
      { batches: 10, batchSize: 5, pauseMs: 400, acceptedBy },
    );
    const seen = new Set<number>();
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      for (const s of await net.statuses([0, 1])) seen.add(s.finalizedHeight);
      await sleep(200);
    }
    await stallLoad;
    expect(acceptedBy.flat().length).toBeGreaterThan(50);
    expect((await waiting).status, 'a transaction became final with two of four validators down').toBe('pending');
    expect(Math.max(...seen), `heights finalized while two of four were down (frozen at ${frozen})`).toBe(frozen);
    const stalled = await net.statuses([0, 1]);

    // One returns: finality resumes with no manual step, the pending transaction included.
    await net.restart(2);
    const resumed = await net.waitFor((s) => s.finalizedHeight > frozen + 2, { nodes: [0, 1, 2], timeoutMs: 60_000 });
    const again = await net.api(0).submit(tx, undefined, { wait: true, timeoutMs: 30_000 });
    expect(again.status).toBe('committed');
    console.log(
      `quorum: frozen at ${frozen} for 5 s (rounds ${stalled.map((s) => s.round)}), resumed to ${resumed.map((s) => s.height)} with three; tx final at ${again.height}`,
    );

    // The fourth returns and catches up; everyone agrees, and the transaction is where it was acknowledged.
    await net.restart(3);
    const top = Math.max(...(await net.statuses([0, 1, 2])).map((s) => s.height));
    await net.waitFor((s) => s.height >= top && s.peers.length === 3, { nodes: [3], timeoutMs: 60_000 });
    const { problems, chains } = await ackedProblems(net, [{ id: again.id, node: 0, height: again.height!, index: again.event!.index }]);
    expect(problems).toEqual([]);
    // What the two accepted during the stall is committed once the quorum is back (they never went down).
    const stallTxs = acceptedBy.flat();
    const deadline = Date.now() + 60_000;
    let missing = stallTxs;
    for (let latest = chains[0]!; ;) {
      const at = positions(latest);
      missing = stallTxs.filter((id) => !at.has(id));
      if (missing.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${missing.length} of ${stallTxs.length} transactions accepted during the stall were never committed`);
      await sleep(500);
      latest = await chainOf(net.api(3), (await net.api(3).status()).height);
    }
    await net.waitIntegrity(3, top);
    const statuses = await net.statuses();
    statuses.forEach((s, i) => expect(s.integrity, `node ${i} integrity`).toMatchObject({ ok: true }));
    expect(await evidenceProblems(net)).toEqual([]);
  }, 150_000);

  it('all four killed at once and restarted: they resume from their stored heights, finalize new blocks, no fork', async () => {
    net = await TestNetwork.create(4);
    await net.start();
    const finality: { node: number; patient: Session }[] = [];
    for (let i = 0; i < 4; i++) finality.push({ node: i, patient: await patientAt(net, i, `fin-${i}`) });
    const clients = new FinalityClients(net, finality);
    await sleep(4_000);

    // Under load: what each node had finalized, then kill -9 of all four at the same moment.
    const before = await Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net!.api(i), (await net!.api(i).status()).height)));
    await Promise.all([0, 1, 2, 3].map((i) => net!.kill(i)));
    await clients.stop();
    const ackedBeforeKill = [...clients.acked];
    expect(ackedBeforeKill.length).toBeGreaterThan(10);

    for (const p of net.processes) p.start();
    const reopened = await Promise.all(net.processes.map((p) => p.waitReady(30_000)));
    reopened.forEach((s, i) => expect(s.finalizedHeight, `node ${i} reopened below its finalized height`).toBeGreaterThanOrEqual(before[i]!.length));
    const highest = Math.max(...reopened.map((s) => s.height));
    const after = await net.waitFor((s) => s.finalizedHeight >= highest + 5 && s.peers.length === 3, { timeoutMs: 60_000 });

    // Nothing final was reverted, no two blocks are final at one height, nothing acknowledged moved.
    const chains = await commonChains(net);
    chains.forEach((c, i) =>
      expect(
        c.slice(0, before[i]!.length).map((b) => b.hash),
        `node ${i} lost or changed blocks it had finalized`,
      ).toEqual(before[i]!.map((b) => b.hash)),
    );
    expect(forkProblems(net, chains)).toEqual([]);
    const { problems } = await ackedProblems(net, ackedBeforeKill);
    expect(problems).toEqual([]);
    for (let i = 0; i < 4; i++) await net.waitIntegrity(i, before[i]!.length);
    expect(await evidenceProblems(net)).toEqual([]);
    console.log(
      `restart all: finalized ${before.map((c) => c.length)} before the kill, reopened at ${reopened.map((s) => s.height)}, went on to ${after.map((s) => s.height)}; ${ackedBeforeKill.length} acknowledged`,
    );
  }, 150_000);
});
