import { once } from 'node:events';
import { createServer } from 'node:net';

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
