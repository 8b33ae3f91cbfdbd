import net from 'node:net';

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
