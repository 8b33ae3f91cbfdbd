import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { headerValue, splitHeader } from '../../src/mail/message-headers.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { parseVerpAddress } from '../../src/sender-domains/verp.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * Internationalised mail through a whole daemon (in this process): UTF-8 addresses in the JSON
 * of POST /v1/messages, delivered to a loopback sink that offers SMTPUTF8 and to one that does
 * not (a 5.6.7 bounce, whose RFC 6533 DSN reaches the sender; a domain in U-labels downgraded to
 * its A-label), with VERP return paths that name the UTF-8 recipient's row.
 */

const token = generateApiToken();
const SECRET = 'a-test-secret-of-at-least-32-characters';

describe('internationalised mail through the daemon', () => {
  let dir: TempDir;
  let modern: SmtpSink;
  let legacy: SmtpSink;
  let daemon: Daemon;
  let store: Store;

  afterEach(async () => {
    for (const stop of [() => daemon?.stop(), () => modern?.close(), () => legacy?.close(), () => dir?.remove()]) await stop();
  });

  async function start(): Promise<(body: unknown, path?: string) => Promise<{ status: number; body: any }>> {
    dir = await createTempDir('rookery-utf8-daemon');
    modern = await startSmtpSink();
    legacy = await startSmtpSink({ smtpUtf8: false });
    store = createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    daemon = await startTestDaemon({
      dir,
      sink: modern,
      store,
      resolver: createFixtureResolver({}),
      config: {
        ips: [{ address: '127.0.0.2' }],
        delivery: {
          retry: { initial: 60_000 },
          // acme.test (the sender's, where its DSNs go) and new.test offer SMTPUTF8; old.test and bücher.test do not.
          routes: {
            'acme.test': `127.0.0.1:${modern.port}`,
            'new.test': `127.0.0.1:${modern.port}`,
            'old.test': `127.0.0.1:${legacy.port}`,
            'xn--bcher-kva.test': `127.0.0.1:${legacy.port}`,
          },
        },
        returnPath: { secret: SECRET, domains: { 'acme.test': { domain: 'bounces.acme.test' } } },
        api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'acme-app', role: 'sender', tenant: 'acme', hash: hashApiToken(token), allowedSenders: ['*@acme.test'] }] },
        tenants: { acme: { senderDomains: ['acme.test'] } },
      },
    });
    const { host, port } = daemon.apiAddress();
    return async (body, path = '/v1/messages') => {
      const res = await fetch(`http://${host}:${port}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: await res.json() };
    };
  }

  it('delivers to a server with SMTPUTF8, bounces (5.6.7, with an RFC 6533 DSN) where the server lacks it, and downgrades a domain-only IDN', async () => {
    const api = await start();
    const sent = await api({ from: 'news@acme.test', to: ['jörg@new.test', 'ünï@old.test'], subject: 'Grüße', text: 'Hallo' });
    expect(sent.status, JSON.stringify(sent.body)).toBe(202);
    const id = sent.body.id as string;

    const [delivered] = await modern.waitForMessages(1, 20_000);
    expect(delivered).toMatchObject({ to: ['jörg@new.test'], smtpUtf8: true });
    expect(Buffer.from(headerValue(splitHeader(delivered!.raw).header, 'To')!, 'latin1').toString('utf8')).toBe('jörg@new.test, ünï@old.test');
    // The VERP return path is ASCII and names the UTF-8 recipient's row.
    const ids = parseVerpAddress(delivered!.from, SECRET, { domains: new Set(['bounces.acme.test']) });
    expect(ids).toMatchObject({ messageId: id });

    await until(async () => (await store.listRecipients(id)).every((r) => r.state !== 'queued' && r.state !== 'delivering'), 'the results of both recipients');
    expect(await store.findRecipientForFeedback(ids!.messageId, ids!.recipientId)).toMatchObject({ recipient: 'jörg@new.test', state: 'delivered' });
    const bounced = (await store.listRecipients(id)).find((r) => r.recipient === 'ünï@old.test');
    expect(bounced).toMatchObject({ state: 'bounced', lastOutcome: { disposition: 'permanent', enhanced: '5.6.7', stage: 'mail' } });
    expect(legacy.messages).toHaveLength(0);

    // The DSN reaches the sender's server (which offers SMTPUTF8), about the UTF-8 recipient.
    const [, dsn] = await modern.waitForMessages(2, 20_000);
    expect(dsn).toMatchObject({ from: '', to: ['news@acme.test'] });
    const report = dsn!.raw.toString('utf8');
    expect(report).toContain('Content-Type: message/global-delivery-status');
    expect(report).toContain('Final-Recipient: utf-8; ünï@old.test');
    expect(report).toContain('Status: 5.6.7');
    expect(report).toContain('Content-Type: message/global-headers');

    // Only the domain is internationalised: written as the A-label, envelope and header, no SMTPUTF8 needed.
    const plain = await api({ from: 'news@acme.test', to: ['plain@bücher.test'], subject: 'hello', text: 'hello' });
    expect(plain.status, JSON.stringify(plain.body)).toBe(202);
    const [downgraded] = await legacy.waitForMessages(1, 20_000);
    expect(downgraded!.smtpUtf8).toBe(false);
    expect(downgraded!.commands[1]).toBe('RCPT TO:<plain@xn--bcher-kva.test>');
    expect(headerValue(splitHeader(downgraded!.raw).header, 'To')).toBe('plain@xn--bcher-kva.test');
    const listed = await api(undefined, `/v1/messages?domain=${encodeURIComponent('Bücher.test')}`);
    expect(listed.body.items.map((m: { id: string }) => m.id)).toEqual([plain.body.id]);
  });

  it('refuses an address with a character that is no letter, naming the field', async () => {
    const api = await start();
    const refused = await api({ from: 'news@acme.test', to: ['jö\u3000rg@new.test'], text: 'x' });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'INVALID_REQUEST', errors: [{ path: 'body.to[0]' }] });
    // The decomposed spelling of jörg@ (o + U+0308): one mailbox has one spelling here (NFC).
    const decomposed = await api({ from: 'news@acme.test', to: ['jo\u0308rg@new.test'], text: 'x' });
    expect(decomposed.status).toBe(400);
    expect(decomposed.body).toMatchObject({ code: 'INVALID_REQUEST', errors: [{ path: 'body.to[0]' }] });
    expect((await api({ from: 'jörg@acme.test', to: ['ünï@new.test'], text: 'x' })).status).toBe(202);
  });
});
