import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/** What only the start can find out (the configuration is fine): the error names the part that failed. */
describe('a start that fails at run time', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(): Promise<{ dir: TempDir; sink: SmtpSink }> {
    const dir = await createTempDir('rookery-daemon-start');
    cleanups.push(() => dir.remove());
    const sink = await startSmtpSink();
    cleanups.push(() => sink.close());
    return { dir, sink };
  }

  async function takenPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    return (server.address() as AddressInfo).port;
  }

  it('names storage when the database cannot be reached', async () => {
    const { dir, sink } = await setup();
    // Nothing listens on port 1 of loopback: the connection is refused at once.
    const config = { storage: { driver: 'postgres', url: 'postgres://rookery@127.0.0.1:1/rookery' } } as const;
    await expect(startTestDaemon({ dir, sink, resolver: createFixtureResolver(), config })).rejects.toThrow('storage: connect ECONNREFUSED 127.0.0.1:1');
  });

  it('names the control API when its port is taken by another process', async () => {
    const { dir, sink } = await setup();
    const port = await takenPort();
    await expect(startTestDaemon({ dir, sink, resolver: createFixtureResolver(), config: { api: { listen: { host: '127.0.0.1', port } } } })).rejects.toThrow(
      `control API: listen EADDRINUSE: address already in use 127.0.0.1:${port}`,
    );
  });
});
