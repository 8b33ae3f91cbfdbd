import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { Daemon } from '../../src/main.ts';
import { headerValue, headerValues, splitHeader } from '../../src/mail/message-headers.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createMailtoAddresses } from '../../src/sender-domains/unsubscribe-mailto-address.ts';
import { createUnsubscribeTokens, type UnsubscribeClaims } from '../../src/sender-domains/unsubscribe-token.ts';
import { createDkimKeyFiles, dkimSignatureTags, verifyWithMailauth, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { inCi, pythonDkimAvailability, verifyWithPythonDkim } from '../helpers/python-dkim.ts';
import { startSmtpSink, type SinkMessage, type SmtpSink } from '../helpers/smtp-sink.ts';
import { submissionClient, testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { outboxEvents, subscribeToEverything } from '../helpers/webhook-events.ts';
import { createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';

/**
 * One-click unsubscribe through a whole daemon (in this process): mail accepted over SMTP and
 * HTTP gets List-Unsubscribe and List-Unsubscribe-Post, one copy per recipient, each signed and
 * verified at a loopback sink by mailauth and python3-dkim; the links delivered then unsubscribe
 * through the daemon's listener and its mailto handler, into the suppression writer it was given.
 */

const python = pythonDkimAvailability();
if (!python.available && inCi) throw new Error(`DKIM verification needs python3-dkim under CI: ${python.reason}`);

const postgres = await requirePostgres();
const SECRET = 'an-unsubscribe-secret-of-at-least-32-characters';
const PASSWORD = 'app-password-for-tests';
const token = generateApiToken();
const tokens = createUnsubscribeTokens(SECRET);

/** What a delivered copy's List-Unsubscribe says. */
function linksOf(message: SinkMessage): { https: string; mailto: string; claims: UnsubscribeClaims; post: string | null } {
  const { header } = splitHeader(message.raw);
  expect(headerValues(header, 'List-Unsubscribe')).toHaveLength(1);
  const value = headerValue(header, 'List-Unsubscribe')!;
  const match = /^<(https:\/\/unsub\.example\.com\/u\/([A-Za-z0-9_-]+))>,\s*<mailto:([^?>]+)\?subject=unsubscribe>$/.exec(value);
  expect(match, value).not.toBeNull();
  const opened = tokens.open(match![2]!);
  if (!opened.ok) throw new Error(`token of ${message.to.join()} does not open: ${opened.reason}`);
  return { https: match![1]!, mailto: match![3]!, claims: opened.claims, post: headerValue(header, 'List-Unsubscribe-Post') };
}

describe('one-click unsubscribe through a running daemon', () => {
  let keys: DkimKeyFiles;
  let records: Record<string, string>;
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;
  let schema: TestSchema | undefined;
  let store: Store;
  let hook: string;

  beforeAll(async () => {
    keys = await createDkimKeyFiles();
    records = { 'rsa1._domainkey.sender.test': keys.rsa.record, 'ed1._domainkey.sender.test': keys.ed25519.record };
  });
  afterAll(() => keys.remove());
  afterEach(async () => {
    for (const stop of [() => daemon?.stop(), () => sink?.close(), () => dir?.remove(), () => schema?.drop()]) await stop();
    schema = undefined;
  });

  /** A daemon on SQLite, or on a PostgreSQL schema of its own (the mailto form reads the message back from the store). */
  async function start(backend: 'sqlite' | 'postgres' = 'sqlite'): Promise<Daemon> {
    dir = await createTempDir('rookery-unsubscribe');
    if (backend === 'postgres') schema = await createTestSchema('unsubscribe-delivery');
    store = schema
      ? createPostgresStore({ url: schema.url, schema: schema.schema, logger: createLogger('silent') })
      : createSqliteStore({ path: dir.file('queue.db'), logger: createLogger('silent') });
    sink = await startSmtpSink();
    // An endpoint of the tenant's, to read the events the outbox holds (no dispatcher runs: webhooks.enabled false).
    await store.migrate();
    hook = await subscribeToEverything(store, 'shop');
    const resolver = createFixtureResolver({
      'dest.test': { mx: [{ exchange: 'mx.dest.test', priority: 10 }] },
      'mx.dest.test': { a: ['127.0.0.1'] },
      ...Object.fromEntries(Object.entries(records).map(([name, txt]) => [name, { txt }])),
    });
    daemon = await startTestDaemon({
      dir,
      sink,
      resolver,
      store,
      config: {
        ips: [{ address: '127.0.0.2' }],
        dkim: { domains: { 'sender.test': { keys: [{ selector: 'rsa1', privateKey: keys.rsa.path }, { selector: 'ed1', privateKey: keys.ed25519.path }] } } },
        smtp: { users: [{ username: 'app', password: PASSWORD, allowedSenders: ['*@sender.test'], tenant: 'shop' }] },
        api: { tokens: [{ name: 'shop', role: 'sender', tenant: 'shop', hash: hashApiToken(token), allowedSenders: ['*@sender.test'] }] },
        tenants: { shop: { senderDomains: ['sender.test'], unsubscribe: { enabled: true } } },
        webhooks: { enabled: false },
        unsubscribe: { listen: { host: '127.0.0.1', port: 0 }, secret: SECRET, publicBaseUrl: 'https://unsub.example.com', mailto: 'unsub.sender.test' },
      },
    });
    return daemon;
  }

  /** The tenant's suppression list as stored, oldest first. */
  async function suppressed() {
    const all = { tenant: 'shop', reason: null, address: null, since: null, until: null, now: null };
    const records = await store.listSuppressions(all, null, 100);
    return records.reverse().map(({ tenant, address, reason, source, createdAt, expiresAt }) => ({ tenant, address, reason, source, createdAt, expiresAt }));
  }

  /** Both signatures of a delivered copy verify in mailauth and python3-dkim, and h= over-signs the unsubscribe fields. */
  async function expectSigned(message: SinkMessage): Promise<void> {
    const byMailauth = await verifyWithMailauth(message.raw, records);
    expect(byMailauth.map((v) => `${v.selector}:${v.result}`).sort()).toEqual(['ed1:pass', 'rsa1:pass']);
    for (const tags of dkimSignatureTags(message.raw)) {
      const names = tags.h!.toLowerCase().split(':');
      expect(names.filter((n) => n === 'list-unsubscribe')).toHaveLength(2);
      expect(names.filter((n) => n === 'list-unsubscribe-post')).toHaveLength(2);
    }
    if (!python.available) return;
    const byPython = await verifyWithPythonDkim(message.raw, records);
    expect(byPython.map((v) => `${v.selector}:${v.valid}`).sort(), JSON.stringify(byPython.map((v) => v.log))).toEqual(['ed1:true', 'rsa1:true']);
  }

  it('splits SMTP mail into one signed copy per recipient, each with its own link; keeps an application’s own List-Unsubscribe', async () => {
    const started = await start();
    const client = submissionClient(started.smtpAddresses()[0]!, 1, { user: 'app', pass: PASSWORD });
    const recipients = ['a@dest.test', 'b@dest.test', 'c@dest.test'];
    const info = await client.send('news@sender.test', recipients, testMessage({ from: 'news@sender.test', to: 'list@sender.test', messageId: '<news-1@sender.test>' }));
    const ids = /^250 2\.0\.0 Ok: queued as ([0-9a-f]{22}) ([0-9a-f]{22}) ([0-9a-f]{22})$/.exec(info.response)!.slice(1);
    expect(new Set(ids).size).toBe(3);

    const own = Buffer.from(
      'From: <news@sender.test>\r\nTo: <list@sender.test>\r\nSubject: own link\r\nMessage-ID: <own-1@sender.test>\r\nList-Unsubscribe: <mailto:leave@sender.test>\r\n\r\nHello.\r\n',
    );
    const ownInfo = await client.send('news@sender.test', ['d@dest.test', 'e@dest.test'], own);
    expect(ownInfo.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9a-f]{22}$/);
    client.close();

    const delivered = await sink!.waitForMessages(4, 20_000);
    const copies = delivered.filter((m) => m.messageId === '<news-1@sender.test>');
    expect(copies.map((m) => m.to).sort()).toEqual([['a@dest.test'], ['b@dest.test'], ['c@dest.test']]);
    for (const copy of copies) {
      const links = linksOf(copy);
      // The token names this copy's recipient and queue id; the mailto address the same queue id.
      expect(links.claims).toMatchObject({ tenant: 'shop', address: copy.to[0], messageId: ids[recipients.indexOf(copy.to[0]!)] });
      expect(links.mailto).toMatch(new RegExp(`^unsub\\+${links.claims.messageId}\\.[a-z2-7]{16}@unsub\\.sender\\.test$`));
      expect(links.post).toBe('List-Unsubscribe=One-Click');
      await expectSigned(copy);
    }
    expect(new Set(copies.map((c) => linksOf(c).https)).size).toBe(3);

    const kept = delivered.find((m) => m.messageId === '<own-1@sender.test>')!;
    expect(kept.to).toEqual(['d@dest.test', 'e@dest.test']);
    const { header } = splitHeader(kept.raw);
    expect(headerValues(header, 'List-Unsubscribe')).toEqual(['<mailto:leave@sender.test>']);
    expect(headerValue(header, 'List-Unsubscribe-Post')).toBeNull();
    expect((await verifyWithMailauth(kept.raw, records)).map((v) => v.result)).toEqual(['pass', 'pass']);
  });

  it.each(['sqlite', 'postgres'] as const)('answers an HTTP send with every copy, and the delivered links unsubscribe by POST and by mail (%s)', async (backend) => {
    if (backend === 'postgres' && !postgres) return;
    const started = await start(backend);
    const api = started.apiAddress();
    const res = await fetch(`http://${api.host}:${api.port}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'news@sender.test', to: ['x@dest.test', 'y@dest.test'], subject: 'News', text: 'Hello.' }),
    });
    expect(res.status).toBe(202);
    const answer = (await res.json()) as { id: string; ids: string[]; recipients: Array<{ address: string; status: string; id: string }> };
    expect(answer.ids).toHaveLength(2);
    expect(answer.id).toBe(answer.ids[0]);
    expect(res.headers.get('location')).toBe(`/v1/messages/${answer.ids[0]}`);
    expect(answer.recipients).toEqual([
      { address: 'x@dest.test', status: 'queued', id: answer.ids[0] },
      { address: 'y@dest.test', status: 'queued', id: answer.ids[1] },
    ]);

    const delivered = await sink!.waitForMessages(2, 20_000);
    const byRecipient = new Map(delivered.map((m) => [m.to[0]!, m]));
    for (const [address, i] of [['x@dest.test', 0], ['y@dest.test', 1]] as const) {
      const copy = byRecipient.get(address)!;
      expect(copy.to).toEqual([address]);
      expect(linksOf(copy).claims).toMatchObject({ tenant: 'shop', address, messageId: answer.ids[i] });
      await expectSigned(copy);
    }

    // The https link of x's copy, sent to the daemon's listener as the TLS proxy would pass it on.
    const { host, port } = started.unsubscribeAddress()!;
    const x = linksOf(byRecipient.get('x@dest.test')!);
    const local = x.https.replace('https://unsub.example.com', `http://${host}:${port}`);
    const page = await fetch(local, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<button type="submit">Unsubscribe</button>');
    expect(await suppressed()).toEqual([]);
    const click = await fetch(local, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(click.status).toBe(200);
    expect(await suppressed()).toEqual([
      { tenant: 'shop', address: 'x@dest.test', reason: 'unsubscribe', source: { kind: 'feedback', channel: 'https', messageId: answer.ids[0], issued: x.claims.issued }, createdAt: expect.any(Number), expiresAt: null },
    ]);

    // y answers by mail: the inbound listener asks the daemon's mailto handler.
    const mailto = started.mailtoUnsubscribe!;
    const y = linksOf(byRecipient.get('y@dest.test')!);
    expect(mailto.accepts(y.mailto)).toBe(true);
    expect(mailto.accepts(y.mailto.toUpperCase())).toBe(true);
    expect(mailto.accepts(y.mailto.replace('unsub.sender.test', 'sender.test'))).toBe(false);
    expect(mailto.accepts(y.mailto.replace(/\.([a-z2-7])/, (_m, c: string) => `.${c === 'a' ? 'b' : 'a'}`))).toBe(false);
    await mailto.handle(y.mailto, Buffer.from('From: <y@dest.test>\r\nSubject: unsubscribe\r\n\r\n'), 1_800_000_000_000);
    expect((await suppressed())[1]).toEqual({ tenant: 'shop', address: 'y@dest.test', reason: 'unsubscribe', source: { kind: 'feedback', channel: 'mailto', messageId: answer.ids[1] }, createdAt: 1_800_000_000_000, expiresAt: null });
    const unsubscribed = (await outboxEvents(store, hook)).filter((e) => e.type === 'recipient.unsubscribed');
    expect(unsubscribed.map((e) => [e.type, e.recipient, e.data?.channel])).toEqual([
      ['recipient.unsubscribed', 'x@dest.test', 'https'],
      ['recipient.unsubscribed', 'y@dest.test', 'mailto'],
    ]);

    // An authentic address whose message the store no longer holds (purged after storage.retention): nothing recorded.
    const purged = createMailtoAddresses(SECRET).address('0'.repeat(22), 'unsub.sender.test');
    expect(mailto.accepts(purged)).toBe(true);
    await mailto.handle(purged, Buffer.alloc(0), 1_800_000_000_000);
    expect(await suppressed()).toHaveLength(2);

    const metrics = await (await fetch(`http://${api.host}:${api.port}/metrics`)).text();
    expect(metrics).toContain('rookery_unsubscribes_refused_total{channel="mailto",reason="expired"} 1');
    expect(metrics).toContain('rookery_unsubscribes_total{channel="https"} 1');
    expect(metrics).toContain('rookery_unsubscribes_total{channel="mailto"} 1');
    // One message handed over, two recipients, two copies signed.
    expect(metrics).toContain('rookery_messages_accepted_total{source="http"} 1');
    expect(metrics).toContain('rookery_recipients_accepted_total 2');
  });
});
