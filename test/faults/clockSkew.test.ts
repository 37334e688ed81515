import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/client/apiClient.js';
import type { Session } from '../../src/client/session.js';
import { MAX_CLOCK_DRIFT_MS } from '../../src/consensus/blockExecution.js';
import { REQUEST_MAX_SKEW_MS, signedRequestHeaders } from '../../src/records/requestAuth.js';
import { runLoad } from '../support/load.js';
import { ackedProblems, clockSkewRuntimeArgs, evidenceProblems, FinalityClients, patientAt, TestNetwork } from '../support/testNetwork.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether node `apiUrl` accepts a signed request dated `offsetMs` from this process's clock: nodes refuse a
 * request time more than REQUEST_MAX_SKEW_MS from their own clock, so this reads the node's clock.
 */
async function acceptsRequestAt(apiUrl: string, user: Session, offsetMs: number): Promise<boolean> {
  const { peerId, genesisHash } = await new ApiClient(apiUrl).identify();
  const time = Date.now() + offsetMs;
  const res = await fetch(`${apiUrl}/v1/me`, {
    headers: signedRequestHeaders(user.signer, user.userId, genesisHash, { method: 'GET', path: '/v1/me', node: peerId, time }),
  });
  const body = (await res.json()) as { error?: { code: string } };
  if (res.ok) return true;
  if (body.error?.code === 'BAD_TIME') return false;
  throw new Error(`unexpected answer ${res.status} ${JSON.stringify(body)}`);
}

/**
 * One node's clock 2 s ahead and another's 2 s behind (the whole process's Date, see clockSkewRuntimeArgs):
 * a proposer ahead is 4 s ahead of the validator behind, within the 5 s drift validators allow.
 */
describe('clock skew of ±2 s', () => {
  let net: TestNetwork | undefined;
  afterEach(async (ctx) => {
    if (net && (ctx.task.result?.state === 'fail' || process.env.FAULT_KEEP_LOGS)) console.log(`node logs kept in ${net.saveLogs(ctx.task.name)}`);
    await net?.destroy();
    net = undefined;
  });

  it("one node +2 s, one −2 s, under load: blocks keep being final, no honest block is refused, skewed nodes' clients get final answers", async () => {
    // FAULT_CLOCK_SKEW_MS overrides the 2 s (e.g. 3000 shows what happens beyond MAX_CLOCK_DRIFT_MS / 2).
    const skew = Number(process.env.FAULT_CLOCK_SKEW_MS ?? 2_000);
    if (!process.env.FAULT_CLOCK_SKEW_MS) expect(MAX_CLOCK_DRIFT_MS).toBeGreaterThan(2 * skew);
    const AHEAD = 1;
    const BEHIND = 2; // proposes right after AHEAD in round 0: its clock is 4 s behind the parent block's time
    net = await TestNetwork.create(4);
    net.setProcessOptions(AHEAD, { env: { MEDLEDGER_CLOCK_SKEW_MS: String(skew) }, runtimeArgs: clockSkewRuntimeArgs() });
    net.setProcessOptions(BEHIND, { env: { MEDLEDGER_CLOCK_SKEW_MS: String(-skew) }, runtimeArgs: clockSkewRuntimeArgs() });
    await net.start();
    const startHeight = Math.max(...(await net.statuses()).map((s) => s.height));

    // Users of every node, the skewed ones included: registrations, records, and a steady load.
    const loadPatients: Session[] = [];
    const finality: { node: number; patient: Session }[] = [];
    for (let i = 0; i < 4; i++) {
      loadPatients.push(await patientAt(net, i, `load-${i}`));
      finality.push({ node: i, patient: await patientAt(net, i, `fin-${i}`) });
    }
    let stopLoad = false;
    const load = runLoad(
      loadPatients.map((p, i) => ({ api: net!.api(i), patient: p })),
      { batches: 1_000_000, batchSize: 5, pauseMs: 200, stop: () => stopLoad },
    );
    const clients = new FinalityClients(net, finality);
    for (const i of [AHEAD, BEHIND]) {
      // Signed requests (recipients) and a payload through a skewed node, then an audited read back.
      const p = finality.find((f) => f.node === i)!.patient;
      const created = await p.createRecord(p.userId, { title: `skewed ${i}`, vitals: { temperature: 37 } });
      expect(created.denied).toBeUndefined();
      const read = await p.readRecord(p.userId, created.value!);
      expect(read.value?.content).toMatchObject({ title: `skewed ${i}` });
    }
    await sleep(12_000);
    stopLoad = true;
    await Promise.all([load, clients.stop()]);

    for (const i of [AHEAD, BEHIND]) expect(clients.acked.filter((a) => a.node === i).length, `final answers to clients of node ${i}`).toBeGreaterThan(20);
    const { problems, chains } = await ackedProblems(net, clients.acked);
    expect(problems).toEqual([]);
    const blocks = chains[0]!.slice(startHeight);
    expect(blocks.length).toBeGreaterThan(30);

    // The skew was real. Each node's clock, read through its request-freshness check (±1 s margins):
    const user = finality[0]!.patient;
    const probe = async (i: number) => [
      await acceptsRequestAt(net!.node(i).apiUrl, user, REQUEST_MAX_SKEW_MS + 1_000),
      await acceptsRequestAt(net!.node(i).apiUrl, user, -REQUEST_MAX_SKEW_MS - 1_000),
    ];
    expect(await probe(0), 'node 0 (no skew) accepts neither +61 s nor -61 s').toEqual([false, false]);
    expect(await probe(AHEAD), `node ${AHEAD} (+2 s) accepts +61 s only`).toEqual([true, false]);
    expect(await probe(BEHIND), `node ${BEHIND} (-2 s) accepts -61 s only`).toEqual([false, true]);
    // …and in the chain: the node behind, whose clock reads earlier than the block of the node ahead, can
    // only give its own next block the parent's time + 1 ms (never seen without skew: blocks are ≥ 100 ms apart).
    const afterAhead = blocks.filter((b, k) => k > 0 && b.proposer === BEHIND && blocks[k - 1]!.proposer === AHEAD);
    expect(afterAhead.length).toBeGreaterThan(3);
    for (const b of afterAhead) expect(b.time - blocks[blocks.indexOf(b) - 1]!.time).toBe(1);

    // The skewed nodes' proposals were accepted: in round 0 most of the time, and nobody refused a block.
    const ownTurn = (i: number) => blocks.filter((b) => b.height % 4 === i);
    for (const i of [AHEAD, BEHIND])
      expect(ownTurn(i).filter((b) => b.proposer === i && b.round === 0).length, `round-0 blocks of node ${i}`).toBeGreaterThan(ownTurn(i).length / 2);
    for (let i = 0; i < 4; i++) {
      const refused = readFileSync(net.processes[i]!.logFile, 'utf8')
        .split('\n')
        .filter((l) => /invalid proposal|in the future|expired/.test(l));
      expect(refused, `${net.node(i).name} refused blocks or transactions for their time`).toEqual([]);
    }
    const statuses = await net.statuses();
    statuses.forEach((s, i) => expect(s.integrity, `node ${i} integrity`).toMatchObject({ ok: true }));
    expect(await evidenceProblems(net)).toEqual([]);
    console.log(
      `clock skew: ${blocks.length} blocks, ${clients.acked.length} acknowledged final (${clients.unanswered} unanswered), rounds > 0: ${blocks.filter((b) => b.round > 0).length}`,
    );
  }, 150_000);
});
