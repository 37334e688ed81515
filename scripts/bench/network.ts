/**
 * A local network of n node processes for a benchmark: fresh keys, genesis and configs in a temporary
 * directory (src/cli/networkSetup.ts), free ports on 127.0.0.1, the load generators' node limits, and
 * optionally the WAN proxies (wanProxy.ts) between every pair of nodes. The processes are started and
 * stopped here, by PID (NodeProcess); stopAll() stops every network still running (Ctrl-C).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../src/client/apiClient.js';
import { createNetwork, type NetworkLayout } from '../../src/cli/networkSetup.js';
import { NodeProcess } from '../../src/cli/nodeProcess.js';
import type { ConsensusParams } from '../../src/consensus/genesis.js';
import { BENCH_LIMITS } from '../benchLimits.js';
import { freeBasePort } from './harness.js';
import { connectionsTo, WanMesh, type DelaySpec } from './wanProxy.js';

export const BENCH_PASSWORD = 'Bench-Password-1!';
export const BENCH_KDF = { N: 1024, r: 8, p: 1 };

export interface BenchNetworkOptions {
  nodes: number;
  consensus?: Partial<ConsensusParams>;
  /** Put a delaying proxy between every pair of nodes. */
  wan?: DelaySpec;
  logLevel?: string;
  /** Extra Node.js runtime arguments of every node (e.g. --cpu-prof). */
  runtimeArgs?: string[];
  /** Waiting for every node to see all its peers, at most. */
  readyTimeoutMs?: number;
}

const running = new Set<RunningNetwork>();

export class RunningNetwork {
  readonly procs: NodeProcess[];
  /**
   * The load generators' clients. A batch whose socket dropped is sent again by the load generator itself,
   * which records each drop and whether the node had acted on it (load.ts), so the client does not resend it.
   */
  readonly apis: ApiClient[];

  private constructor(
    readonly layout: NetworkLayout,
    readonly mesh: WanMesh | undefined,
    runtimeArgs: string[],
  ) {
    this.procs = layout.nodes.map((n) => new NodeProcess(n.name, n.configFile, n.apiUrl, undefined, runtimeArgs));
    this.apis = layout.nodes.map((n) => new ApiClient(n.apiUrl, { retry: { batchDropRetries: 0 } }));
  }

  get size(): number {
    return this.procs.length;
  }

  pids(): (number | undefined)[] {
    return this.procs.map((p) => p.pid);
  }

  static async start(opts: BenchNetworkOptions): Promise<RunningNetwork> {
    const dir = mkdtempSync(join(tmpdir(), `medledger-bench-${opts.nodes}n-`));
    const layout = await createNetwork({
      dir,
      nodes: opts.nodes,
      basePort: await freeBasePort(opts.nodes),
      adminPassword: () => BENCH_PASSWORD,
      kdf: BENCH_KDF,
      logLevel: opts.logLevel ?? 'warn',
      limits: BENCH_LIMITS,
      ...(opts.consensus ? { consensus: opts.consensus } : {}),
    });
    let mesh: WanMesh | undefined;
    if (opts.wan) {
      mesh = await WanMesh.create(
        layout.nodes.map((n) => n.p2pPort),
        opts.wan,
      );
      // Every node reaches every other through its own proxy for that pair.
      for (const [i, n] of layout.nodes.entries()) {
        const config = JSON.parse(readFileSync(n.configFile, 'utf8')) as { p2p: { peers: { peerId: string; addrs: string[] }[] } };
        config.p2p.peers = layout.nodes.flatMap((peer, j) => (i === j ? [] : [{ peerId: peer.peerId, addrs: [`/ip4/127.0.0.1/tcp/${mesh!.port(i, j)}`] }]));
        writeFileSync(n.configFile, `${JSON.stringify(config, null, 2)}\n`);
      }
    }
    const net = new RunningNetwork(layout, mesh, opts.runtimeArgs ?? []);
    running.add(net);
    try {
      for (const p of net.procs) p.start();
      const timeout = opts.readyTimeoutMs ?? 60_000 + 10_000 * opts.nodes;
      await Promise.all(net.procs.map((p) => p.waitReady(timeout, (s) => s.peers.length === opts.nodes - 1)));
    } catch (err) {
      await net.stop();
      throw err;
    }
    return net;
  }

  /** Connections between nodes that did not go through the WAN proxies (0 when every link is delayed). */
  directP2pConnections(): number {
    if (!this.mesh) return 0;
    return connectionsTo(
      this.layout.nodes.map((n) => n.p2pPort),
      this.mesh.upstreamPorts(),
    );
  }

  /** Stops the nodes (SIGTERM, SIGKILL after 10 s), closes the proxies, and removes the directory unless KEEP is set. */
  async stop(): Promise<void> {
    running.delete(this);
    await Promise.all(this.procs.map((p) => p.stop()));
    await this.mesh?.close();
    if (!process.env.KEEP) rmSync(this.layout.dir, { recursive: true, force: true });
  }
}

/** Stops every network this process still runs (for Ctrl-C). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((n) => n.stop()));
}

/** On Ctrl-C: stop what is running, then exit. */
export function stopOnInterrupt(extra: () => Promise<void> = async () => undefined): void {
  process.once('SIGINT', () => void Promise.all([stopAll(), extra()]).finally(() => process.exit(130)));
}
