import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/client/session.js';
import { chainOf, positions, runLoad } from '../support/load.js';
import { TestNetwork } from '../support/testNetwork.js';

/** Two nodes cut off from the other two by each node's connection gater (a test control). */
describe('network partition 2 | 2', () => {
  let net: TestNetwork;
  const patients: Session[] = [];

  beforeAll(async () => {
    net = await TestNetwork.create(4, { testControls: true });
    await net.start();
    for (let i = 0; i < 4; i++) patients.push(await net.patient(i, `pat-${i}`));
  }, 90_000);

  afterAll(async () => {
    await net?.destroy();
  });

  async function block(i: number, peers: number[]) {
    await net.api(i).post('/v1/test/blocked-peers', { peers: peers.map((p) => net.node(p).peerId) });
  }

  it('finalizes nothing while split, converges after healing, and never reverts or forks a final block', async () => {
    await Promise.all([block(0, [2, 3]), block(1, [2, 3]), block(2, [0, 1]), block(3, [0, 1])]);
    await net.waitFor((s) => s.peers.length === 1);
    // Let a block that was already being voted on when the cut happened settle.
    await new Promise((r) => setTimeout(r, 1_500));
    const split = await Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net.api(i), (await net.api(i).status()).height)));

    const acceptedBy: string[][] = [[], [], [], []];
    await runLoad(
      patients.map((p, i) => ({ api: net.api(i), patient: p })),
      { batches: 20, batchSize: 5, pauseMs: 200, acceptedBy },
    );
    const during = await net.statuses();
    during.forEach((s, i) => expect(s.finalizedHeight, `node ${i} finalized while split`).toBe(split[i]!.length));

    await Promise.all([0, 1, 2, 3].map((i) => block(i, [])));
    await net.waitFor((s) => s.peers.length === 3, { timeoutMs: 30_000 });
    const all = acceptedBy.flat();
    const deadline = Date.now() + 60_000;
    let chains = split;
    for (;;) {
      chains = await Promise.all([0, 1, 2, 3].map(async (i) => chainOf(net.api(i), (await net.api(i).status()).height)));
      if (chains.every((c) => all.every((id) => positions(c).has(id)))) break;
      if (Date.now() > deadline) throw new Error('transactions from both sides were not all committed after healing');
      await new Promise((r) => setTimeout(r, 250));
    }
    // Nothing final was reverted: each node's chain still starts with what it had finalized before.
    chains.forEach((c, i) => expect(c.slice(0, split[i]!.length).map((b) => b.hash)).toEqual(split[i]!.map((b) => b.hash)));
    // No two different blocks are final at one height on any two nodes.
    const common = Math.min(...chains.map((c) => c.length));
    for (const c of chains) expect(c.slice(0, common).map((b) => b.hash)).toEqual(chains[0]!.slice(0, common).map((b) => b.hash));
    expect(common).toBeGreaterThan(Math.max(...split.map((c) => c.length)));
  }, 180_000);
});
