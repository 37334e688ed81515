import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { K } from '../../src/node/store/testSupport.js';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activateStaff, inviteStaff, registerPatient } from '../../src/client/accounts.js';
import { unlockKeystore } from '../../src/client/keystoreFiles.js';
import { Session } from '../../src/client/session.js';
import { ApiClient } from '../../src/client/apiClient.js';
import { createNetwork, type NetworkLayout, type NetworkNode } from '../../src/cli/networkSetup.js';
import { NodeProcess } from '../../src/cli/nodeProcess.js';
import { decodeCanonical } from '../../src/records/encoding.js';
import type { ConsensusParams } from '../../src/consensus/genesis.js';
import type { StatusResponse } from '../../src/api/contract.js';
import type { StaffRole } from '../../src/records/ids.js';
import type { StatsSetting } from '../../src/records/stats/batches.js';
import { byzantineProcess, type BehaviourName } from './byzantine.js';
import type { ChainBlock, EvidenceRecord } from '../../src/api/contract.js';
import { auditedRead, chainOf, positions } from './load.js';

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
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
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

  static async create(
    nodes: number,
    opts: { consensus?: Partial<ConsensusParams>; testControls?: boolean; limits?: Record<string, number>; stats?: StatsSetting } = {},
  ): Promise<TestNetwork> {
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
      ...(opts.stats ? { stats: opts.stats } : {}),
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

  /** A new doctor or auditor invited by node i's admin, who activates the account with the code (issue 10). */
  async staff(i: number, id: string, role: StaffRole): Promise<Session> {
    const n = this.node(i);
    const invited = await inviteStaff(await this.admin(i), { userId: id, role });
    if (invited.outcome.denied) throw new Error(`invitation of ${id} denied: ${invited.outcome.denied}`);
    const { outcome } = await activateStaff({
      apiUrl: n.apiUrl,
      userId: id,
      code: invited.code,
      password: TEST_PASSWORD,
      keystoreDir: n.keystoreDir,
      kdf: FAST_KDF,
    });
    if (outcome.denied) throw new Error(`activation of ${id} denied: ${outcome.denied}`);
    // Every running replica knows the new member before a test uses them through another hospital's node.
    if (outcome.height !== undefined) {
      const running = this.processes.flatMap((p, j) => (p.running ? [j] : []));
      await this.waitFor((s) => s.height >= outcome.height!, { nodes: running });
    }
    return Session.connect(n.apiUrl, unlockKeystore(n.keystoreDir, id, TEST_PASSWORD));
  }

  /** The same user's keys, talking to another node. */
  async sessionAt(i: number, session: Session): Promise<Session> {
    return Session.connect(this.node(i).apiUrl, session.keys);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
  }

  /**
   * Starts node i (stopped) as a byzantine validator: the test-only harness test/support/byzantineNode.ts with
   * these behaviours (none: an unaltered node) and extra harness flags. It replaces processes[i] until the
   * next call; stop() and destroy() stop it like any node.
   */
  startByzantine(i: number, behaviours: readonly BehaviourName[], args: string[] = []): NodeProcess {
    if (this.processes[i]!.running) throw new Error(`${this.node(i).name} is running: stop it first`);
    const p = byzantineProcess(this.node(i), behaviours, args);
    this.processes[i] = p;
    p.start();
    return p;
  }

  // ---- fault tests (test/faults) -------------------------------------------------------------

  /** From its next start on, node i runs with these extra environment variables and Node.js runtime arguments. */
  setProcessOptions(i: number, opts: { env?: Record<string, string>; runtimeArgs?: string[] }): void {
    const old = this.processes[i]!;
    if (old.running) throw new Error(`${old.name} is running: stop it before changing its process options`);
    const n = this.node(i);
    this.processes[i] = new NodeProcess(n.name, n.configFile, n.apiUrl, old.logFile, opts.runtimeArgs ?? [], opts.env ?? {});
  }

  /** kill -9 of node i (its child process only). */
  async kill(i: number): Promise<void> {
    await this.processes[i]!.kill();
  }

  /** Starts node i again and returns its first status (the height it reopened its store at). */
  async restart(i: number, timeoutMs = 30_000): Promise<StatusResponse> {
    this.processes[i]!.start();
    return this.processes[i]!.waitReady(timeoutMs);
  }

  /**
   * Waits until node i's integrity monitor has verified its stored chain up to `height` without an alert;
   * an alert fails at once, naming it.
   */
  async waitIntegrity(i: number, height: number, timeoutMs = 60_000): Promise<StatusResponse> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      try {
        const s = await this.api(i).status();
        if (!s.integrity.ok) throw new Error(`${this.node(i).name}: integrity alert ${JSON.stringify(s.integrity.alert)}`);
        if (s.integrity.verifiedHeight >= height) return s;
        last = `verified ${s.integrity.verifiedHeight} of ${height}, height ${s.height}`;
      } catch (err) {
        if ((err as Error).message.includes('integrity alert')) throw err;
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${this.node(i).name}: integrity not verified to ${height} after ${timeoutMs} ms (${last})`);
  }

  /** Copies every node's log to a new directory outside the network's (which destroy() removes); returns it. */
  saveLogs(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `medledger-logs-${label.replace(/[^A-Za-z0-9-]+/g, '-').slice(0, 40)}-`));
    this.processes.forEach((p, i) => {
      try {
        copyFileSync(p.logFile, join(dir, `${this.node(i).name}.log`));
      } catch {
        // never started
      }
    });
    return dir;
  }

  /** The last lines of node i's log (for failure messages), optionally only those matching. */
  logTail(i: number, lines = 40, match?: RegExp): string {
    let text = '';
    try {
      text = readFileSync(this.processes[i]!.logFile, 'utf8');
    } catch {
      return '(no log)';
    }
    const all = text.split('\n').filter((l) => l && (!match || match.test(l)));
    return all.slice(-lines).join('\n');
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.layout.dir, { recursive: true, force: true });
  }
}

/**
 * Node.js runtime arguments that shift node's wall clock by `MEDLEDGER_CLOCK_SKEW_MS` (from its environment):
 * `Date.now()` and `new Date()` everywhere in the process, as on a machine whose clock is off; durations
 * measured with performance.now() are unaffected. Test-only: a preload module given as a data: URL, so no
 * node code changes and production has no such switch.
 */
export function clockSkewRuntimeArgs(): string[] {
  const preload = [
    'const skew = Number(process.env.MEDLEDGER_CLOCK_SKEW_MS ?? 0);',
    'if (skew) {',
    '  const RealDate = Date;',
    '  const now = () => RealDate.now() + skew;',
    '  globalThis.Date = new Proxy(RealDate, {',
    '    construct: (target, args, newTarget) => Reflect.construct(target, args.length === 0 ? [now()] : args, newTarget),',
    '    apply: () => new RealDate(now()).toString(),',
    "    get: (target, prop, receiver) => (prop === 'now' ? now : Reflect.get(target, prop, receiver)),",
    '  });',
    '}',
  ].join('\n');
  return ['--import', `data:text/javascript,${encodeURIComponent(preload)}`];
}

/** A transaction whose submit response said `committed`: its client was told it is final, at this place. */
export interface AckedTx {
  id: string;
  /** The node the client submitted it to. */
  node: number;
  height: number;
  index: number;
}

/**
 * Clients that each submit one audited read at a time to their node and wait for finality, until
 * stopped; they keep every acknowledgement (`committed`, with height and index). A node that is down or a
 * wait that times out only counts as `unanswered` (the client would resubmit): nothing to check for those.
 */
export class FinalityClients {
  readonly acked: AckedTx[] = [];
  unanswered = 0;
  private stopped = false;
  private readonly loops: Promise<void>[];

  /** `records`: the clients create records (a payload file on every replica) instead of audited reads. */
  constructor(net: TestNetwork, targets: { node: number; patient: Session }[], opts: { timeoutMs?: number; records?: boolean } = {}) {
    this.loops = targets.map(async ({ node, patient }) => {
      const writer = opts.records ? await net.sessionAt(node, patient) : null;
      while (!this.stopped) {
        try {
          if (writer) {
            const out = await writer.createRecord(writer.userId, { title: 'fault load', vitals: { heartRate: 60 + (this.acked.length % 40) } });
            if (out.denied) throw new Error(`record denied: ${out.denied}`);
            this.acked.push({ id: out.id, node, height: out.height!, index: out.event!.index });
            continue;
          }
          const res = await net.api(node).submit(auditedRead(patient), undefined, { wait: true, timeoutMs: opts.timeoutMs ?? 10_000 });
          if (res.status === 'committed') this.acked.push({ id: res.id, node, height: res.height!, index: res.event!.index });
          else this.unanswered++;
        } catch (err) {
          if (/record denied/.test((err as Error).message)) throw err;
          this.unanswered++;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/**
 * Checks acknowledged transactions against the listed nodes' chains once each node has reached the highest
 * acknowledged height: every one is at the acknowledged height and index on every chain, and the chains
 * are the same blocks. Returns what differs (empty: all held) and the chains.
 */
export async function ackedProblems(
  net: TestNetwork,
  acked: AckedTx[],
  nodes = net.processes.map((_, i) => i),
  timeoutMs = 60_000,
): Promise<{ problems: string[]; chains: ChainBlock[][] }> {
  const top = Math.max(0, ...acked.map((a) => a.height));
  await net.waitFor((s) => s.height >= top, { nodes, timeoutMs });
  const chains = await Promise.all(nodes.map((i) => chainOf(net.api(i), top)));
  const problems: string[] = [];
  chains.forEach((chain, k) => {
    const name = net.node(nodes[k]!).name;
    const at = positions(chain);
    const lost = acked.filter((a) => at.get(a.id) !== `${a.height}/${a.index}`);
    for (const a of lost.slice(0, 10))
      problems.push(
        `${name}: ${a.id.slice(0, 12)} acknowledged final by ${net.node(a.node).name} at ${a.height}/${a.index}, found at ${at.get(a.id) ?? 'nowhere'}`,
      );
    if (lost.length > 10) problems.push(`${name}: … ${lost.length} acknowledged transactions not where acknowledged`);
  });
  problems.push(...forkProblems(net, chains, nodes));
  return { problems, chains };
}

/** The first height at which two nodes' chains hold different blocks, if any. */
export function forkProblems(net: TestNetwork, chains: ChainBlock[][], nodes = net.processes.map((_, i) => i)): string[] {
  const problems: string[] = [];
  const common = Math.min(...chains.map((c) => c.length));
  for (let k = 1; k < chains.length; k++) {
    const h = chains[k]!.slice(0, common).findIndex((b, j) => b.hash !== chains[0]![j]!.hash);
    if (h >= 0) problems.push(`fork: ${net.node(nodes[0]!).name} and ${net.node(nodes[k]!).name} differ at height ${chains[0]![h]!.height}`);
  }
  return problems;
}

/** The chains of the listed nodes up to their lowest height. */
export async function commonChains(net: TestNetwork, nodes = net.processes.map((_, i) => i)): Promise<ChainBlock[][]> {
  const low = Math.min(...(await net.statuses(nodes)).map((s) => s.height));
  return Promise.all(nodes.map((i) => chainOf(net.api(i), low)));
}

/**
 * Runs `fn` again while the node answers "busy" (503 UNAVAILABLE from load shedding, refused before
 * admission), up to `timeoutMs`; `fn` gets the attempt number (0, 1, …), e.g. for a fresh user id, since a
 * registration writes its keystore file before it submits.
 */
export async function retryBusy<T>(fn: (attempt: number) => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!/busy/.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** A new patient registered through node i, retried under a fresh id while the node sheds load. */
export function patientAt(net: TestNetwork, i: number, id: string): Promise<Session> {
  return retryBusy((attempt) => net.patient(i, attempt === 0 ? id : `${id}-r${attempt}`));
}

/** What a stopped or crashed node's store holds on disk: head height, payload keys, missing-payload marks, payload files. */
export async function inspectStore(dataDir: string) {
  // A copy, so that LevelDB's own recovery of the crashed store is left for the node to do.
  const copy = mkdtempSync(join(tmpdir(), 'medledger-inspect-'));
  cpSync(join(dataDir, 'ledger'), copy, { recursive: true });
  const db = new ClassicLevel<string, Uint8Array>(copy, { keyEncoding: 'utf8', valueEncoding: 'view' });
  try {
    await db.open();
    const head = await db.get(K.head);
    const payloadKeys = new Set<string>();
    for await (const key of db.keys({ gte: K.payloadPrefix, lt: `${K.payloadPrefix}\xff` })) payloadKeys.add(key.slice(K.payloadPrefix.length));
    const missing: string[] = [];
    for await (const key of db.keys({ gte: K.missingPayloadPrefix, lt: `${K.missingPayloadPrefix}\xff` }))
      missing.push(key.slice(K.missingPayloadPrefix.length));
    const files: string[] = [];
    const dir = join(dataDir, 'ledger-payloads');
    if (existsSync(dir)) for (const shard of readdirSync(dir)) for (const name of readdirSync(join(dir, shard))) files.push(name);
    return { height: head ? (decodeCanonical(head) as { height: number }).height : -1, payloadKeys, missing, files };
  } finally {
    await db.close();
    rmSync(copy, { recursive: true, force: true });
  }
}

/** Payload files without a reference, references without a file, staged leftovers, missing marks. */
export function payloadProblems(store: Awaited<ReturnType<typeof inspectStore>>): string[] {
  const problems: string[] = [];
  const files = new Set(store.files);
  for (const f of store.files) {
    if (f.endsWith('.staged')) problems.push(`staged file left: ${f}`);
    else if (!store.payloadKeys.has(f)) problems.push(`orphan payload file: ${f}`);
  }
  for (const k of store.payloadKeys) if (!files.has(k)) problems.push(`referenced payload without a file: ${k}`);
  for (const m of store.missing) problems.push(`payload marked missing: ${m}`);
  return problems;
}

/**
 * Conflicting votes or proposals the listed nodes kept as evidence: with honest validators only, a crash
 * must never make one sign two different votes for one height, round and type (votes persist before they
 * leave), so there must be none.
 */
export async function evidenceProblems(net: TestNetwork, nodes = net.processes.map((_, i) => i)): Promise<string[]> {
  const found = await Promise.all(nodes.map(async (i) => ({ i, evidence: (await net.api(i).get<{ evidence: EvidenceRecord[] }>('/v1/evidence')).evidence })));
  return found.flatMap(({ i, evidence }) =>
    evidence.map((e) => `${net.node(i).name} holds ${e.kind} evidence against validator ${e.validator} (${e.hospital}) at ${e.height}/${e.round}`),
  );
}
