import { createServer } from 'node:net';

/** Whether nothing listens on 127.0.0.1:`port` (and no socket holds it), checked by binding it briefly. */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The ports a local network of `nodes` uses from `basePort`: API base+i, p2p base+100+i. */
export function networkPorts(basePort: number, nodes: number): number[] {
  return Array.from({ length: nodes }, (_, i) => [basePort + i, basePort + 100 + i]).flat();
}

/** Throws a message naming the first taken port, so a node does not die later on EADDRINUSE. */
export async function assertPortsFree(ports: number[]): Promise<void> {
  for (const port of ports) {
    if (port > 65_535) throw new Error(`port ${port} is out of range; choose a lower --base-port`);
    if (!(await isPortFree(port))) throw new Error(`port ${port} on 127.0.0.1 is already in use; choose another --base-port`);
  }
}
