import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver, type FixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/** Six domains, each on an MX host of its own (six destination sites), all on the sink's address. */
const DOMAINS = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((name) => `${name}.test`);
function sixSites(): FixtureResolver {
  return createFixtureResolver(
    Object.fromEntries(DOMAINS.flatMap((domain) => [
      [domain, { mx: [{ exchange: `mx.${domain}`, priority: 10 }] }],
      [`mx.${domain}`, { a: ['127.0.0.1'] }],
    ])),
  );
}

describe('delivery slots', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
    daemon = undefined;
  });

  it('never runs more delivery jobs at once than delivery.concurrency, with messages to several sites each', async () => {
    dir = await createTempDir();
    let inData = 0;
    let most = 0;
    sink = await startSmtpSink({
      script: {
        onData: async () => {
          most = Math.max(most, ++inData);
          await new Promise((resolve) => setTimeout(resolve, 100));
          inData--;
          return undefined;
        },
      },
    });
    daemon = await startTestDaemon({ dir, sink, resolver: sixSites(), config: { delivery: { concurrency: 2 } } });
    const client = submissionClient(daemon.smtpAddresses()[0]!, 4);
    await Promise.all(
      Array.from({ length: 4 }, (_, i) => {
        const to = DOMAINS.slice(i, i + 3).map((domain) => `user${i}@${domain}`);
        return client.send('app@sender.test', to, testMessage({ from: 'app@sender.test', to: to[0]!, messageId: `<slots${i}@app.test>` }));
      }),
    );
    client.close();

    await sink.waitForRecipients(12, 15_000);
    expect(most).toBe(2);
    const delivered = sink.messages.flatMap((m) => m.to);
    expect(delivered).toHaveLength(12);
    expect(new Set(delivered).size).toBe(12);
  });

  it('sends nothing for a message still being routed when the daemon stops; the next start delivers it once', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    const resolver = sixSites();
    // The MX lookup of d1.test answers only when the test lets it, after stop() has begun.
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    let asked!: () => void;
    const lookedUp = new Promise<void>((resolve) => (asked = resolve));
    const slowResolver: FixtureResolver = {
      ...resolver,
      resolveMx: async (domain) => {
        if (domain === 'd1.test') {
          asked();
          await answered;
        }
        return resolver.resolveMx(domain);
      },
    };
    daemon = await startTestDaemon({ dir, sink, resolver: slowResolver });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    await client.send('app@sender.test', ['late@d1.test'], testMessage({ from: 'app@sender.test', to: 'late@d1.test', messageId: '<routing@app.test>' }));
    client.close();
    await lookedUp;

    // The daemon stops its SMTP listeners, then the scheduler; the lookup answers once both have begun.
    const smtp = daemon.smtpAddresses()[0]!;
    const stopped = daemon.stop();
    while (await accepts(smtp)) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    answer();
    await stopped;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.messages).toHaveLength(0);

    daemon = await startTestDaemon({ dir, sink, resolver });
    await sink.waitForMessages(1, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.messages.map((m) => m.to)).toEqual([['late@d1.test']]);
  });
});

/** True while something accepts TCP connections at the address. */
function accepts(address: { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(address.port, address.host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
