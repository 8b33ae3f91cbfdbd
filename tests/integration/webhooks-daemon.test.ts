import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

/**
 * Webhooks end to end through a whole daemon (in this process): an application registers an
 * endpoint over the API, sends a message over HTTP, and its receiver gets message.accepted and
 * recipient.delivered, each verified with the reference library, while the message is delivered
 * to a loopback sink.
 */

const token = generateApiToken();

describe('webhooks of a running daemon', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let receiver: WebhookReceiver;
  let daemon: Daemon;

  afterEach(async () => {
    for (const stop of [() => daemon?.stop(), () => receiver?.close(), () => sink?.close(), () => dir?.remove()]) await stop();
  });

  it('announces a message sent over HTTP as accepted, then delivered, signed, with its tags and metadata', async () => {
    dir = await createTempDir('rookery-webhooks-daemon');
    sink = await startSmtpSink();
    receiver = await startWebhookReceiver();
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver: createFixtureResolver({ 'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] }, 'mx.dest.test': { a: ['127.0.0.1'] } }),
      config: {
        ips: [{ address: '127.0.0.2' }],
        api: { tokens: [{ name: 'shop', role: 'sender', tenant: 'shop', hash: hashApiToken(token), allowedSenders: ['*@sender.test'] }] },
        tenants: { shop: { senderDomains: ['sender.test'] } },
        // The receiver is on loopback.
        webhooks: { allowPrivateNetworks: true },
      },
    });
    const { host, port } = daemon.apiAddress();
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`http://${host}:${port}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };

    const hook = await post('/v1/webhooks', { url: receiver.url('/shop'), eventTypes: ['message.accepted', 'recipient.delivered'] });
    expect(hook.status).toBe(201);
    receiver.verifyWith(hook.body.secret);
    const sent = await post('/v1/messages', { from: 'orders@sender.test', to: 'buyer@dest.test', subject: 'Order 4711', text: 'Thanks.', tags: ['order'], metadata: { orderId: '4711' } });
    expect(sent.status).toBe(202);
    const messageId = sent.body.id as string;

    await receiver.waitFor(2);
    await until(() => sink.messages.length === 1, 'the message at the sink');
    expect(receiver.received.map((p) => p.verifyError)).toEqual([null, null]);
    const byType = Object.fromEntries(receiver.received.map((p) => [p.payload!.type, p.payload!]));
    expect(byType['message.accepted']!.data).toEqual({
      sender: 'orders@sender.test',
      recipients: ['buyer@dest.test'],
      messageId,
      recipient: null,
      tenant: 'shop',
      tags: ['order'],
      metadata: { orderId: '4711' },
      egressIp: null,
      reply: null,
      attempt: null,
      bounceClass: null,
    });
    expect(byType['recipient.delivered']!.data).toMatchObject({
      messageId,
      recipient: 'buyer@dest.test',
      tenant: 'shop',
      tags: ['order'],
      metadata: { orderId: '4711' },
      egressIp: '127.0.0.2',
      reply: { code: 250, enhanced: expect.stringMatching(/^2\./), remoteHost: 'mx.dest.test' },
      attempt: 1,
      bounceClass: 'none',
    });
    // The history says both were delivered.
    const delivered = async () => {
      const res = await fetch(`http://${host}:${port}/v1/webhooks/${hook.body.id}/deliveries?state=delivered`, { headers: { authorization: `Bearer ${token}` } });
      return ((await res.json()) as { items: Array<{ id: string }> }).items.map((d) => d.id).sort();
    };
    await until(async () => (await delivered()).length === 2, 'both recorded delivered');
    expect(await delivered()).toEqual(receiver.received.map((p) => p.id).sort());
  });

  it('sends the events waiting in the store at start, with nothing to wake it', async () => {
    dir = await createTempDir('rookery-webhooks-daemon');
    sink = await startSmtpSink();
    receiver = await startWebhookReceiver();
    // Written by an earlier run (or another node) of the same database: an endpoint and an event due.
    const earlier = createSqliteStore({ path: testDaemonConfig({ dir: dir.path }).storage!.path!, logger: createLogger('silent') });
    await earlier.migrate();
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    await earlier.createWebhook({ id: 'wh_earlier', tenant: null, url: receiver.url('/earlier'), eventTypes: ['recipient.bounced'], description: null, secret, createdAt: Date.now() });
    await earlier.recordWebhookEvents([{ type: 'recipient.bounced', tenant: null, messageId: null, recipient: 'gone@dest.test', at: Date.now(), egressIp: null }]);
    await earlier.close();
    receiver.verifyWith(secret);

    daemon = await startTestDaemon({ dir, sink, resolver: createFixtureResolver({}), config: { webhooks: { allowPrivateNetworks: true } } });
    await receiver.waitFor(1);
    expect(receiver.received.map((p) => [p.verifyError, p.payload!.type, p.payload!.data.recipient])).toEqual([[null, 'recipient.bounced', 'gone@dest.test']]);
  });
});
