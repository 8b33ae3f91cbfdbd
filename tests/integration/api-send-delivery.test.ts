import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { createDkimKeyFiles, verifyWithMailauth, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { inCi, pythonDkimAvailability, verifyWithPythonDkim } from '../helpers/python-dkim.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * Mail sent over the HTTP API by a whole daemon (in this process): signed at acceptance, chosen
 * an egress IP, delivered to a loopback sink, and verified there by two DKIM implementations. A
 * scheduled message waits for its time.
 */

const python = pythonDkimAvailability();
if (!python.available && inCi) throw new Error(`DKIM verification needs python3-dkim under CI: ${python.reason}`);

const token = generateApiToken();

describe('sending over HTTP through a running daemon', () => {
  let keys: DkimKeyFiles;
  let records: Record<string, string>;
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: Daemon;
  let post: (path: string, body: string | Buffer, contentType?: string, key?: string) => Promise<{ status: number; body: any; headers: Headers }>;

  beforeAll(async () => void (keys = await createDkimKeyFiles()));
  afterAll(() => keys.remove());
  afterEach(async () => {
    // In reverse order of start().
    for (const stop of [() => daemon?.stop(), () => sink?.close(), () => dir?.remove()]) await stop();
  });

  /** A daemon signing for sender.test with an RSA and an Ed25519 key, its MX the sink. */
  async function start(): Promise<void> {
    records = { 'rsa1._domainkey.sender.test': keys.rsa.record, 'ed1._domainkey.sender.test': keys.ed25519.record };
    dir = await createTempDir('rookery-api-delivery');
    sink = await startSmtpSink();
    const resolver = createFixtureResolver({
      'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] },
      'mx.dest.test': { a: ['127.0.0.1'] },
      ...Object.fromEntries(Object.entries(records).map(([name, txt]) => [name, { txt }])),
    });
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver,
      config: {
        ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'bulk' }],
        dkim: { domains: { 'sender.test': { keys: [{ selector: 'rsa1', privateKey: keys.rsa.path }, { selector: 'ed1', privateKey: keys.ed25519.path }] } } },
        api: { tokens: [{ name: 'shop', role: 'sender', tenant: 'shop', hash: hashApiToken(token), allowedSenders: ['*@sender.test'], pools: ['bulk'] }] },
        tenants: { shop: { senderDomains: ['sender.test'] } },
      },
    });
    const { host, port } = daemon.apiAddress();
    post = async (path, body, contentType = 'application/json', key) => {
      const res = await fetch(`http://${host}:${port}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': contentType, ...(key ? { 'idempotency-key': key } : {}) },
        body,
      });
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
  }

  it('delivers JSON, raw and batched messages, each signed by both keys, from the pool asked for', async () => {
    await start();
    const logo = Buffer.alloc(5000, 0x89);
    const json = await post(
      '/v1/messages',
      JSON.stringify({
        from: { name: 'Shop', address: 'orders@sender.test' },
        to: 'buyer@dest.test',
        bcc: 'archive@dest.test',
        subject: 'Your order №4711',
        text: 'Thank you.',
        html: '<p>Thank you. <img src="cid:logo"></p>',
        attachments: [{ filename: 'logo.png', contentType: 'image/png', content: logo.toString('base64'), cid: 'logo' }],
        headers: { 'Message-ID': '<order-4711@sender.test>' },
      }),
    );
    expect(json.status, JSON.stringify(json.body)).toBe(202);
    const raw = await post('/v1/messages?from=orders@sender.test&to=buyer@dest.test&pool=bulk', 'From: orders@sender.test\nTo: buyer@dest.test\nSubject: raw\nMessage-ID: <raw@sender.test>\n\nraw body\n', 'message/rfc822');
    expect(raw.status, JSON.stringify(raw.body)).toBe(202);
    const batch = await post(
      '/v1/messages/batch',
      JSON.stringify({ messages: [1, 2, 3].map((n) => ({ from: 'news@sender.test', to: `reader${n}@dest.test`, subject: `News ${n}`, text: `Issue ${n}`, headers: { 'Message-ID': `<news-${n}@sender.test>` } })) }),
    );
    expect(batch.body).toMatchObject({ accepted: 3, failed: 0 });

    const messages = await sink.waitForMessages(5, 20_000);
    expect(messages.map((m) => m.messageId).sort()).toEqual(['<news-1@sender.test>', '<news-2@sender.test>', '<news-3@sender.test>', '<order-4711@sender.test>', '<raw@sender.test>']);
    for (const message of messages) {
      const byMailauth = await verifyWithMailauth(message.raw, records);
      expect(byMailauth.map((v) => `${v.selector}:${v.result}`).sort(), message.messageId!).toEqual(['ed1:pass', 'rsa1:pass']);
      if (!python.available) continue;
      const byPython = await verifyWithPythonDkim(message.raw, records);
      expect(byPython.map((v) => `${v.selector}:${v.valid}`).sort(), message.messageId!).toEqual(['ed1:true', 'rsa1:true']);
    }
    // The Bcc recipient is in the envelope (one transaction to their common site), not in the message.
    const order = messages.find((m) => m.messageId === '<order-4711@sender.test>')!;
    expect(order).toMatchObject({ from: 'orders@sender.test', to: ['buyer@dest.test', 'archive@dest.test'] });
    expect(order.raw.toString()).not.toMatch(/^Bcc:|archive@/im);
    expect(order.raw.includes(Buffer.from(logo.toString('base64').slice(0, 76)))).toBe(true);
    // The raw message left from the bulk pool's IP, the others from the default pool's.
    const byId = new Map(messages.map((m) => [m.messageId, m.remoteAddress]));
    expect(byId.get('<raw@sender.test>')).toBe('127.0.0.3');
    expect(byId.get('<news-1@sender.test>')).toBe('127.0.0.2');
    expect(messages.find((m) => m.messageId === '<raw@sender.test>')!.raw.includes(Buffer.from('raw body\r\n'))).toBe(true);
  });

  it('holds a scheduled message until its time, and sends a message retried under its key once', async () => {
    await start();
    const sendAt = new Date(Date.now() + 2_000);
    const scheduled = await post('/v1/messages', JSON.stringify({ from: 'app@sender.test', to: 'later@dest.test', subject: 'later', text: 'x', sendAt: sendAt.toISOString() }));
    expect(scheduled.body.sendAt).toBe(sendAt.toISOString());
    const request = JSON.stringify({ from: 'app@sender.test', to: 'once@dest.test', subject: 'once', text: 'x' });
    const answers = await Promise.all([1, 2, 3].map(() => post('/v1/messages', request, 'application/json', 'retry-me')));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);

    const delivered = await sink.waitForMessages(2, 20_000);
    const later = delivered.find((m) => m.to.includes('later@dest.test'))!;
    expect(later.receivedAt).toBeGreaterThanOrEqual(sendAt.getTime());
    expect(delivered.filter((m) => m.to.includes('once@dest.test'))).toHaveLength(1);
    // Time for a second copy to show up, were there one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sink.messages.filter((m) => m.to.includes('once@dest.test'))).toHaveLength(1);
  });
});
