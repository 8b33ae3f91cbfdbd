import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { freePort } from '../helpers/free-port.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * Reloads of a daemon in this process over real HTTP and real SMTP, where the test needs to act
 * at a given moment of the daemon's life (during its start, while it stops) or to watch one
 * component closely.
 */

const resolver = createFixtureResolver({
  'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] },
  'mx.dest.test': { a: ['127.0.0.1'] },
});

const ADMIN = generateApiToken();
const tokens = [{ name: 'ops', role: 'admin' as const, hash: hashApiToken(ADMIN) }];

describe('reloading a daemon in this process', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(script?: Parameters<typeof startSmtpSink>[0]): Promise<{ dir: TempDir; sink: SmtpSink }> {
    const dir = await createTempDir('rookery-daemon-reload');
    cleanups.push(() => dir.remove());
    const sink = await startSmtpSink(script);
    cleanups.push(() => sink.close());
    return { dir, sink };
  }

  const reloadAt = (port: number) =>
    fetch(`http://127.0.0.1:${port}/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } }).then(async (res) => ({
      status: res.status,
      type: res.headers.get('content-type'),
      body: (await res.json()) as Record<string, unknown>,
    }));

  it('refuses a reload during start-up and once stop began: 503 UNAVAILABLE', async () => {
    let release!: () => void;
    const released = new Promise<undefined>((resolve) => (release = () => resolve(undefined)));
    let reached!: () => void;
    const inFlight = new Promise<void>((resolve) => (reached = resolve));
    const { dir, sink } = await setup({
      script: {
        onData: () => {
          reached();
          return released;
        },
      },
    });
    const port = await freePort();
    // Clear-text passwords are hashed as the SMTP listeners start, after the control API: start-up
    // takes a while after the API answers.
    const users = Array.from({ length: 30 }, (_, i) => ({ username: `user${i}`, password: `secret${i}`, allowedSenders: ['*'] }));
    const config: ConfigInput = { api: { listen: { host: '127.0.0.1', port }, tokens }, smtp: { users }, delivery: { shutdownTimeout: '30s' } };
    let started = false;
    const starting = startTestDaemon({ dir, sink, resolver, config }).then((d) => ((started = true), d));
    cleanups.push(() => starting.then((d) => d.stop()));
    // Before the stop: a held delivery would make it wait for delivery.shutdownTimeout.
    cleanups.push(async () => release());

    let early: Awaited<ReturnType<typeof reloadAt>> | undefined;
    while (!early) early = await reloadAt(port).catch(() => undefined);
    expect(started).toBe(false);
    expect(early).toMatchObject({ status: 503, type: expect.stringContaining('application/problem+json') });
    expect(early.body).toMatchObject({ code: 'UNAVAILABLE', status: 503, detail: expect.stringContaining('the daemon is still starting'), instance: '/v1/reload' });

    const daemon: Daemon = await starting;
    expect(await reloadAt(port)).toMatchObject({ status: 200, body: { changed: [], restartRequired: [], warnings: [] } });

    // A delivery in flight holds the stop (up to delivery.shutdownTimeout) with the API still up.
    await daemon.submit({ sender: 'app@sender.test', recipients: ['user@dest.test'], body: testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: '<held@t>' }), submitter: null, source: 'http', clientAddress: null });
    await inFlight;
    const stopped = daemon.stop();
    const late = await reloadAt(port);
    expect(late).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE', detail: expect.stringContaining('the daemon is stopping') } });
    release();
    await stopped;
  });

  it("a reload's lower shaping.maxConnections holds new deliveries on a path whose connections are open", async () => {
    let release!: () => void;
    const released = new Promise<undefined>((resolve) => (release = () => resolve(undefined)));
    let held = 0;
    let bothHeld!: () => void;
    const holding = new Promise<void>((resolve) => (bothHeld = resolve));
    const { dir, sink } = await setup({
      script: {
        onData: (message) => {
          if (!message.messageId?.startsWith('<held')) return undefined;
          if (++held === 2) bothHeld();
          return released;
        },
      },
    });
    const settings = (maxConnections: number): ConfigInput => ({ api: { listen: { host: '127.0.0.1', port: 0 }, tokens }, ips: [{ address: '127.0.0.2' }], shaping: { default: { maxConnections } } });
    // Room for a third connection, until the reload.
    let current = settings(3);
    const daemon = await startTestDaemon({ dir, sink, resolver, config: current, reread: () => current });
    cleanups.push(() => daemon.stop());
    cleanups.push(async () => release());
    const { host, port } = daemon.apiAddress();
    const send = (tag: string) =>
      daemon.submit({ sender: 'app@sender.test', recipients: ['user@dest.test'], body: testMessage({ from: 'app@sender.test', to: 'user@dest.test', messageId: `<${tag}@t>` }), submitter: null, source: 'http', clientAddress: null });
    /** Egress IP choices made so far: each delivery makes one right before it asks for a connection. */
    const selections = async () => {
      const text = await (await fetch(`http://${host}:${port}/metrics`)).text();
      return Number(/^rookery_selection_seconds_count (\d+)$/m.exec(text)?.[1] ?? 0);
    };

    await send('held1');
    await send('held2');
    await holding;
    expect(sink.connections).toHaveLength(2);

    current = settings(1);
    expect(await reloadAt(port)).toMatchObject({ status: 200, body: { changed: ['shaping'] } });
    await send('after');
    while ((await selections()) < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    // Given time to open a third connection, it has not: two are open, against a limit of one.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.messages).toEqual([]);
    expect(sink.connections).toHaveLength(2);

    release();
    const messages = await sink.waitForMessages(3, 15_000);
    // The first connection released was over the limit and closed; the message waiting took the other.
    const after = messages.find((m) => m.messageId === '<after@t>')!;
    expect(sink.connections).toHaveLength(2);
    expect(messages.filter((m) => m.connectionId === after.connectionId)).toHaveLength(2);
  });
});
