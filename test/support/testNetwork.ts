import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrolStaff, registerPatient } from '../../src/client/accounts.js';
import { unlockKeystore } from '../../src/client/keystoreFiles.js';
import { Session } from '../../src/client/session.js';
import { ApiClient } from '../../src/client/apiClient.js';
import { createNetwork, type NetworkLayout, type NetworkNode } from '../../src/cli/networkSetup.js';
import { NodeProcess } from '../../src/cli/nodeProcess.js';
import type { ConsensusParams } from '../../src/consensus/genesis.js';
import type { StatusResponse } from '../../src/node/api/contract.js';
import type { StaffRole } from '../../src/records/ids.js';

/**
 * Real node processes on 127.0.0.1 for multi-process tests: a fresh network on disk (keys, genesis,
 * configs), `medledger node` processes started from the built CLI, and sessions of real users.
 * Needs `npm run build` first (npm test does it).
 */
export const FAST_KDF = { N: 1024, r: 8, p: 1 };
export const TEST_PASSWORD = 'Correct-Horse-42!';

/** Timings for tests: short period and timeouts so that rounds and skips happen quickly. */
export const FAST_CONSENSUS: Partial<ConsensusParams> = {
  periodMs: 100,
  emptyBlockIntervalMs: 500,
  timeoutProposeMs: 800,
  timeoutVoteMs: 400,
  timeoutDeltaMs: 200,
};

/**
 * Node `limits` of test networks: the load helpers (support/load.ts) play many users with one patient per
 * node, far above one person's rate, so the per-user limits are raised; registrations keep their defaults.
 */
export const TEST_LIMITS = { txPerSecondPerUser: 100_000, txBurstPerUser: 100_000, mempoolMaxPerUser: 100_000 };

export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export class TestNetwork {
  readonly processes: NodeProcess[];

  private constructor(readonly layout: NetworkLayout) {
    this.processes = layout.nodes.map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl));
  }

  static async create(nodes: number, opts: { consensus?: Partial<ConsensusParams>; testControls?: boolean; limits?: Record<string, number> } = {}): Promise<TestNetwork> {
    const dir = mkdtempSync(join(tmpdir(), 'medledger-test-'));
    const ports = await freePorts(nodes * 2);
    const layout = await createNetwork({
      dir,
      nodes,
      basePort: 0,
      ports: Array.from({ length: nodes }, (_, i) => ({ api: ports[2 * i]!, p2p: ports[2 * i + 1]! })),
      consensus: { ...FAST_CONSENSUS, ...opts.consensus },
      testControls: opts.testControls ?? true,
      logLevel: 'info',
      adminPassword: () => TEST_PASSWORD,
      kdf: FAST_KDF,
    });
    for (const n of layout.nodes) {
      const config = JSON.parse(readFileSync(n.configFile, 'utf8')) as Record<string, unknown>;
      writeFileSync(n.configFile, `${JSON.stringify({ ...config, limits: { ...TEST_LIMITS, ...opts.limits } }, null, 2)}\n`);
    }
    return new TestNetwork(layout);
  }

  node(i: number): NetworkNode {
    return this.layout.nodes[i]!;
  }

  api(i: number): ApiClient {
    return this.processes[i]!.api;
  }

  /** Starts the given nodes (default all) and waits until each answers and sees its peers. */
  async start(indexes = this.processes.map((_, i) => i), opts: { peers?: number } = {}): Promise<void> {
    for (const i of indexes) this.processes[i]!.start();
    const peers = opts.peers ?? indexes.length - 1;
    await Promise.all(indexes.map((i) => this.processes[i]!.waitReady(30_000, (s) => s.peers.length >= peers)));
  }

  async statuses(indexes = this.processes.map((_, i) => i)): Promise<StatusResponse[]> {
    return Promise.all(indexes.map((i) => this.api(i).status()));
  }

  /** Polls until every listed node satisfies the condition. */
  async waitFor(cond: (s: StatusResponse, i: number) => boolean, opts: { timeoutMs?: number; nodes?: number[] } = {}): Promise<StatusResponse[]> {
    const nodes = opts.nodes ?? this.processes.map((_, i) => i);
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let last: StatusResponse[] = [];
    while (Date.now() < deadline) {
      try {
        last = await this.statuses(nodes);
        if (last.every((s, k) => cond(s, nodes[k]!))) return last;
      } catch {
        // a node restarting: keep polling until the deadline
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`condition not met in time; last heights ${last.map((s) => s.height).join(',')}`);
  }

  async admin(i: number): Promise<Session> {
    const n = this.node(i);
    return Session.connect(n.apiUrl, unlockKeystore(n.keystoreDir, n.admin.id, n.admin.password));
  }

  /** A new patient registered through node i. */
  async patient(i: number, id: string): Promise<Session> {
    const n = this.node(i);
    const { session, outcome } = await registerPatient({ apiUrl: n.apiUrl, userId: id, password: TEST_PASSWORD, keystoreDir: n.keystoreDir, kdf: FAST_KDF });
    if (outcome.denied) throw new Error(`registration of ${id} denied: ${outcome.denied}`);
    return session;
  }

  /** A new doctor or auditor enrolled by node i's admin. */
  async staff(i: number, id: string, role: StaffRole): Promise<Session> {
    const n = this.node(i);
    const outcome = await enrolStaff(await this.admin(i), { userId: id, role, password: TEST_PASSWORD, keystoreDir: n.keystoreDir, kdf: FAST_KDF });
    if (outcome.denied) throw new Error(`enrolment of ${id} denied: ${outcome.denied}`);
    return Session.connect(n.apiUrl, unlockKeystore(n.keystoreDir, id, TEST_PASSWORD));
  }

  /** The same user's keys, talking to another node. */
  async sessionAt(i: number, session: Session): Promise<Session> {
    return Session.connect(this.node(i).apiUrl, session.keys);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.layout.dir, { recursive: true, force: true });
  }
}
