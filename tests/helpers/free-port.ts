import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A loopback TCP port nothing listens on now, for a server that cannot bind port 0 itself (a
 * private PostgreSQL or Redis) or that must come back on the same port after a restart.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Resolves once something accepts connections on host:port (smtp-sink and Postfix print nothing
 * when they are ready); rejects when `alive` turns false first or after `timeoutMs`.
 */
export async function acceptingConnections(options: { name: string; host: string; port: number; alive: () => boolean; timeoutMs: number; pollMs: number }): Promise<void> {
  const { name, host, port, alive, timeoutMs, pollMs } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive()) throw new Error(`${name} exited before it listened on ${host}:${port}`);
    const socket = net.connect(port, host);
    try {
      await once(socket, 'connect');
      socket.destroy();
      return;
    } catch {
      socket.destroy();
      if (Date.now() > deadline) throw new Error(`${name} did not listen on ${host}:${port} within ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }
}
