import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A loopback port free right now, for programs that must be told a port rather than report the
 * one they bound (smtp-sink, Postfix). Another process could take it before they bind it; they
 * then fail to start, loudly.
 */
export async function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer().listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
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
    const socket = connect(port, host);
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
