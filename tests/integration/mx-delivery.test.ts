import { afterEach, describe, expect, it } from 'vitest';
import { parseVerpAddress } from '../../src/sender-domains/verp.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * The internet's DNS, as far as these tests need it. mx-dead points at 127.0.0.6, where nothing
 * listens on the sink's port, so delivery must fall back to the next MX. alpha.test and
 * beta.test are hosted on one MX set (one destination site).
 */
const resolver = createFixtureResolver({
  'dest.test': { mx: [{ exchange: 'mx-live.dest.test', priority: 20 }, { exchange: 'mx-dead.dest.test', priority: 10 }] },
  'sender.test': { mx: [{ exchange: 'mx-live.dest.test', priority: 10 }] },
  'nullmx.test': { mx: [{ exchange: '', priority: 0 }] },
  'mx-live.dest.test': { a: ['127.0.0.1'] },
  'mx-dead.dest.test': { a: ['127.0.0.6'] },
  'implicit.test': { a: ['127.0.0.1'] },
  'alpha.test': { mx: [{ exchange: 'mx.hoster.test', priority: 10 }] },
  'beta.test': { mx: [{ exchange: 'mx.hoster.test', priority: 10 }] },
  'mx.hoster.test': { a: ['127.0.0.1'] },
});

describe('delivery through MX lookup', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await sink?.close();
    await dir?.remove();
  });

  it('follows MX preference with fallback, uses the implicit MX, and bounces a null-MX domain with a DSN', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    daemon = await startTestDaemon({ dir, sink, resolver });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    for (const to of ['user@dest.test', 'user@implicit.test', 'user@nullmx.test']) {
      await client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId: `<${to}>` }));
    }
    client.close();

    // Two deliveries and the DSN for the null-MX recipient, sent back to app@sender.test.
    await sink.waitForMessages(3, 15_000);
    const to = (address: string) => sink!.messages.filter((m) => m.to.includes(address));
    expect(to('user@dest.test')).toHaveLength(1);
    expect(to('user@implicit.test')).toHaveLength(1);
    expect(to('user@nullmx.test')).toHaveLength(0);
    const dsn = to('app@sender.test');
    expect(dsn).toHaveLength(1);
    expect(dsn[0]!.from).toBe('');
    const report = dsn[0]!.raw.toString();
    expect(report).toMatch(/Final-Recipient: rfc822; ?user@nullmx\.test/i);
    expect(report).toMatch(/Status: 5\.1\.10/);
  });

  it('gives each recipient its own VERP return path when the sender domain has one', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    const secret = 'a-test-secret-of-at-least-32-characters';
    daemon = await startTestDaemon({ dir, sink, resolver, config: { returnPath: { secret, domains: { 'sender.test': {} } } } });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    const to = ['a@dest.test', 'b@dest.test', 'c@dest.test'];
    await client.send('app@sender.test', to, testMessage({ from: 'app@sender.test', to: to[0]!, messageId: '<verp@app.test>' }));
    client.close();

    await sink.waitForMessages(3, 15_000);
    // One transaction per recipient, each from its own tagged return path at bounces.sender.test.
    expect(sink.messages.map((m) => m.to.length)).toEqual([1, 1, 1]);
    const ids = sink.messages.map((m) => parseVerpAddress(m.from, secret, { domains: new Set(['bounces.sender.test']) }));
    expect(ids.every((id) => id !== null)).toBe(true);
    expect(new Set(ids.map((id) => id!.messageId)).size).toBe(1);
    expect(new Set(ids.map((id) => id!.recipientId)).size).toBe(3);
    expect(sink.messages.every((m) => m.from.endsWith('@bounces.sender.test'))).toBe(true);
  });

  it('sends the recipients of two domains on one MX set in one transaction, and other sites alongside', async () => {
    dir = await createTempDir();
    sink = await startSmtpSink();
    daemon = await startTestDaemon({ dir, sink, resolver });
    const client = submissionClient(daemon.smtpAddresses()[0]!);
    const to = ['a@alpha.test', 'b@implicit.test', 'c@beta.test'];
    await client.send('app@sender.test', to, testMessage({ from: 'app@sender.test', to: to[0]!, messageId: '<sites@app.test>' }));
    client.close();

    await sink.waitForMessages(2, 15_000);
    expect(sink.messages.map((m) => m.to).sort()).toEqual([['a@alpha.test', 'c@beta.test'], ['b@implicit.test']]);
    // One connection per site, one transaction each.
    expect(sink.connections.map((c) => c.transactions)).toEqual([1, 1]);
  });

  it("holds two domains on one MX set to one path's maxConnections together", async () => {
    dir = await createTempDir();
    // Slow enough at the final dot that deliveries overlap and would open more connections if they could.
    sink = await startSmtpSink({ script: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 20)) } });
    daemon = await startTestDaemon({ dir, sink, resolver, config: { shaping: { default: { maxConnections: 1 } } } });
    const client = submissionClient(daemon.smtpAddresses()[0]!, 4);
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        const to = `user${i}@${i % 2 ? 'alpha' : 'beta'}.test`;
        return client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId: `<shared${i}@app.test>` }));
      }),
    );
    client.close();

    await sink.waitForMessages(12, 15_000);
    expect(sink.connections).toHaveLength(1);
    expect(sink.connections[0]!.transactions).toBe(12);
  });
});
