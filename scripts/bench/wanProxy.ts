/**
 * WAN realism on one machine: a TCP proxy per directed node pair (i dials j through proxy i→j), listening on
 * 127.0.0.1 only and forwarding to j's p2p port through a delay queue in each direction: every chunk is held
 * for the one-way delay plus uniform jitter, never reordered (a chunk is due no earlier than the one before
 * it). Buffers are bounded: a direction holding more than `maxQueuedBytes` pauses its reading side until
 * half of that has been delivered, and a destination that does not keep up (write() returned false) pauses
 * delivery until it drains. Connections per proxy are capped; close() ends everything.
 */
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface DelaySpec {
  /** One-way delay added to every chunk in each direction. */
  oneWayMs: number;
  /** Uniform jitter: each chunk's delay is oneWayMs ± jitterMs (kept in order). */
  jitterMs: number;
  /** Bound of the bytes held per direction of a connection before its sender is paused. */
  maxQueuedBytes: number;
  /** Connections one proxy accepts at once. */
  maxConnections: number;
}

export const DEFAULT_WAN: DelaySpec = { oneWayMs: 40, jitterMs: 5, maxQueuedBytes: 4 * 1024 * 1024, maxConnections: 16 };

export interface ProxyStats {
  connections: number;
  bytes: number;
  /** Most bytes one direction ever held. */
  maxQueuedBytes: number;
  /** Times a sender was paused because its direction held too much. */
  pauses: number;
}

/** One direction of a proxied connection: bytes from `from`, delayed, into `to`. */
class DelayedPipe {
  private readonly queue: { at: number; chunk: Buffer | null }[] = [];
  private queued = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private blocked = false;
  private paused = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly spec: DelaySpec,
    private readonly stats: ProxyStats,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.push(null));
    to.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  private push(chunk: Buffer | null): void {
    const jitter = (Math.random() * 2 - 1) * this.spec.jitterMs;
    this.lastAt = Math.max(this.lastAt, performance.now() + this.spec.oneWayMs + jitter);
    this.queue.push({ at: this.lastAt, chunk });
    if (chunk) {
      this.queued += chunk.length;
      this.stats.bytes += chunk.length;
      this.stats.maxQueuedBytes = Math.max(this.stats.maxQueuedBytes, this.queued);
      if (this.queued > this.spec.maxQueuedBytes && !this.paused) {
        this.paused = true;
        this.stats.pauses++;
        this.from.pause();
      }
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.blocked || this.queue.length === 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.flush();
      },
      Math.max(0, this.queue[0]!.at - performance.now()),
    );
  }

  private flush(): void {
    const now = performance.now();
    while (!this.blocked && this.queue.length > 0 && this.queue[0]!.at <= now) {
      const { chunk } = this.queue.shift()!;
      if (this.to.destroyed) return;
      if (chunk === null) {
        this.to.end();
        continue;
      }
      this.queued -= chunk.length;
      if (!this.to.write(chunk)) this.blocked = true;
    }
    if (this.paused && this.queued <= this.spec.maxQueuedBytes / 2) {
      this.paused = false;
      this.from.resume();
    }
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

/** A delaying TCP proxy on 127.0.0.1 in front of one target port. */
export class DelayProxy {
  readonly stats: ProxyStats = { connections: 0, bytes: 0, maxQueuedBytes: 0, pauses: 0 };
  /** Local ports of the proxy's own connections to the target (to tell them from direct connections). */
  readonly upstreamPorts = new Set<number>();
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly pipes = new Set<DelayedPipe>();

  constructor(
    readonly targetPort: number,
    readonly spec: DelaySpec,
  ) {
    this.server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => this.accept(client));
    this.server.maxConnections = spec.maxConnections;
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve((this.server.address() as { port: number }).port));
    });
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      this.sockets.add(s);
    }
    const pipes = [new DelayedPipe(client, upstream, this.spec, this.stats), new DelayedPipe(upstream, client, this.spec, this.stats)];
    for (const p of pipes) this.pipes.add(p);
    const teardown = () => {
      for (const p of pipes) {
        p.stop();
        this.pipes.delete(p);
      }
      for (const s of [client, upstream]) {
        s.destroy();
        this.sockets.delete(s);
      }
      if (upstream.localPort) this.upstreamPorts.delete(upstream.localPort);
    };
    upstream.once('connect', () => {
      if (upstream.localPort) this.upstreamPorts.add(upstream.localPort);
      client.resume();
    });
    for (const s of [client, upstream]) {
      s.once('error', teardown);
      s.once('close', teardown);
    }
  }

  close(): Promise<void> {
    for (const p of this.pipes) p.stop();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * The proxies of a full mesh of n nodes: proxy(i, j) is the one node i dials to reach node j.
 */
export class WanMesh {
  private constructor(
    readonly spec: DelaySpec,
    private readonly proxies: Map<string, DelayProxy>,
  ) {}

  static async create(p2pPorts: number[], spec: DelaySpec): Promise<WanMesh> {
    const proxies = new Map<string, DelayProxy>();
    try {
      for (const [i] of p2pPorts.entries()) {
        for (const [j, target] of p2pPorts.entries()) {
          if (i === j) continue;
          const proxy = new DelayProxy(target, spec);
          await proxy.listen();
          proxies.set(`${i}>${j}`, proxy);
        }
      }
    } catch (err) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw err;
    }
    return new WanMesh(spec, proxies);
  }

  /** The port node i dials to reach node j. */
  port(i: number, j: number): number {
    const p = this.proxies.get(`${i}>${j}`);
    if (!p) throw new Error(`no proxy ${i}>${j}`);
    return p.port;
  }

  stats(): ProxyStats & { proxies: number } {
    const all = [...this.proxies.values()].map((p) => p.stats);
    return {
      proxies: all.length,
      connections: all.reduce((a, s) => a + s.connections, 0),
      bytes: all.reduce((a, s) => a + s.bytes, 0),
      maxQueuedBytes: Math.max(0, ...all.map((s) => s.maxQueuedBytes)),
      pauses: all.reduce((a, s) => a + s.pauses, 0),
    };
  }

  /** Local ports of all proxies' upstream connections (connections to a node's p2p port from anything else went around the proxies). */
  upstreamPorts(): Set<number> {
    return new Set([...this.proxies.values()].flatMap((p) => [...p.upstreamPorts]));
  }

  close(): Promise<void> {
    return Promise.all([...this.proxies.values()].map((p) => p.close())).then(() => undefined);
  }
}

/**
 * Established TCP connections on 127.0.0.1 to one of `ports` whose local end is not in `except` (from
 * /proc/net/tcp; both ends of a loopback connection are listed, the dialling end has the target as remote).
 */
export function connectionsTo(ports: number[], except: Set<number>): number {
  const targets = new Set(ports);
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '01') continue; // 01 = ESTABLISHED
      const local = parseInt(f[1]!.split(':')[1]!, 16);
      const remote = parseInt(f[2]!.split(':')[1]!, 16);
      if (targets.has(remote) && !except.has(local)) n++;
    }
  }
  return n;
}
