import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { buildDsn } from '../../src/engine/dsn.ts';
import { interrupted } from '../../src/engine/transaction-outcomes.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { newMessage } from '../helpers/new-message.ts';

/**
 * GET /v1/messages, GET /v1/messages/{id} and the deferred backlog of GET /v1/queue over real
 * HTTP on loopback, against a SQLite queue and a PostgreSQL one filled the way the engine fills
 * them (claims, recorded attempts, a DSN stored with its bounces).
 */

const logger = createLogger('silent');
const postgres = await requirePostgres();
const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const token = generateApiToken();

/** The session that carried the delivery: MTA-STS enforced, the certificate valid for mx1.dest.test. */
const TLS = { policy: 'mta-sts' as const, version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', verified: true, failure: null };
const DELIVERED: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as ABC', stage: 'dot', bounceClass: 'none', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2', tls: TLS };
const DEFERRED: DeliveryOutcome = { disposition: 'transient', code: 451, enhanced: '4.7.1', response: '451 4.7.1 Greylisted, try later', stage: 'rcpt', bounceClass: 'policy', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.3' };
const BOUNCED: DeliveryOutcome = { disposition: 'permanent', code: 550, enhanced: '5.1.1', response: '550 5.1.1 No such user', stage: 'rcpt', bounceClass: 'unknown-user', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2' };

/** A stored message whose subject and body the API must never show. */
function message(id: string, createdAt: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return newMessage(id, createdAt, { body: Buffer.from(`Subject: secret subject ${id}\r\n\r\nsecret body\r\n`), ...overrides });
}

const backends: Array<{ name: string; skip: boolean; open: (clock: ReturnType<typeof manualClock>) => Promise<{ store: Store; drop(): Promise<void> }> }> = [
  {
    name: 'sqlite',
    skip: false,
    async open(clock) {
      const dir = await createTempDir('rookery-api-messages');
      const store = createSqliteStore({ path: dir.file('queue.db'), clock, logger });
      await store.migrate();
      return { store, drop: () => dir.remove() };
    },
  },
  {
    name: 'postgres',
    skip: !postgres,
    async open(clock) {
      const schema = await createTestSchema('api-messages');
      const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger, poolSize: 2 });
      await store.migrate();
      return { store, drop: () => schema.drop() };
    },
  },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`/v1 message reads on ${backend.name}`, () => {
    const clock = manualClock(T0);
    let store: Store;
    let drop: () => Promise<void>;
    const opened: Array<{ stop(): Promise<void> }> = [];

    beforeAll(async () => {
      ({ store, drop } = await backend.open(clock));
      await fill(store, clock);
    });

    afterEach(async () => {
      for (const item of opened.splice(0).reverse()) await item.stop();
    });

    afterAll(async () => {
      await store.close();
      await drop();
    });

    async function get(path: string, over: Store = store): Promise<{ status: number; type: string | null; body: any; text: string }> {
      const api = createControlApi({
        config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'viewer', role: 'viewer', hash: hashApiToken(token) }], authFailures: { max: 10, window: 60_000 } } },
        store: over,
        clock,
        logger,
        metrics: new Metrics({ processMetrics: false }),
        checks: { storage: () => store.ping() },
        ...apiSources({ store: over }),
      });
      opened.push(api);
      const { host, port } = await api.start();
      const res = await fetch(`http://${host}:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      return { status: res.status, type: res.headers.get('content-type'), body: JSON.parse(text), text };
    }

    it('shows a message: envelope, recipients with their attempts, the DSN sent, never the body', async () => {
      const { status, body, text } = await get('/v1/messages/m-mixed');
      expect(status).toBe(200);
      expect(text).not.toContain('secret');
      expect(body).toMatchObject({
        id: 'm-mixed',
        sender: 'app@sender.test',
        pool: 'bulk',
        size: message('m-mixed', 0).body.length,
        createdAt: '2026-11-30T10:00:00.000Z',
        messageId: '<m-mixed@sender.test>',
        source: 'smtp',
        submitter: 'app',
        clientAddress: '192.0.2.7',
      });
      const [ok, later, gone, cut] = body.recipients;
      expect(ok).toEqual({
        address: 'ok@dest.test',
        domain: 'dest.test',
        state: 'delivered',
        attempts: 1,
        nextAttemptAt: null,
        paused: false,
        updatedAt: '2026-11-30T10:01:00.000Z',
        dsn: null,
        events: [
          {
            at: '2026-11-30T10:01:00.000Z', attempt: 1, disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as ABC',
            stage: 'dot', bounceClass: 'none', remoteHost: 'mx1.dest.test', egressIp: '127.0.0.2', possibleDuplicate: false, tls: TLS,
          },
        ],
        feedback: [],
      });
      expect(later).toMatchObject({ address: 'later@dest.test', state: 'queued', attempts: 1, nextAttemptAt: '2026-11-30T10:11:00.000Z', dsn: null });
      expect(later.events).toMatchObject([{ disposition: 'transient', enhanced: '4.7.1', response: '451 4.7.1 Greylisted, try later', egressIp: '127.0.0.3', tls: null }]);
      expect(gone).toMatchObject({ address: 'gone@dest.test', state: 'bounced', dsn: { id: 'dsn-of-m-mixed', createdAt: '2026-11-30T10:01:00.000Z' } });
      expect(gone.events).toMatchObject([{ disposition: 'permanent', code: 550, enhanced: '5.1.1', remoteHost: 'mx1.dest.test' }]);
      expect(cut).toMatchObject({ address: 'cut@dest.test', state: 'queued', dsn: null });
      expect(cut.events).toMatchObject([{ disposition: 'transient', stage: 'dot', possibleDuplicate: true }]);

      // The DSN is a message of its own, from the null sender to the original sender.
      const dsn = await get('/v1/messages/dsn-of-m-mixed');
      expect(dsn.body).toMatchObject({ sender: '', source: 'dsn', recipients: [{ address: 'app@sender.test', state: 'queued' }] });
    });

    it('answers 404 for an unknown id', async () => {
      const { status, type, body } = await get('/v1/messages/no-such-id');
      expect(status).toBe(404);
      expect(type).toMatch(/^application\/problem\+json/);
      expect(body).toMatchObject({ status: 404, code: 'MESSAGE_NOT_FOUND', instance: '/v1/messages/no-such-id' });
    });

    it('lists messages newest first, filtered, page by page with an opaque cursor', async () => {
      const all = await get('/v1/messages');
      expect(all.body.items.map((m: { id: string }) => m.id)).toEqual(['dsn-of-m-mixed', 'm-new', 'm-other', 'm-mixed']);
      expect(all.body.nextCursor).toBeNull();
      expect(all.text).not.toContain('secret');
      expect(all.body.items[3]).toMatchObject({ id: 'm-mixed', createdAt: '2026-11-30T10:00:00.000Z', recipientStates: { queued: 2, delivering: 0, delivered: 1, bounced: 1 } });

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { items: Array<{ id: string }>; nextCursor: string | null } } = await get(`/v1/messages?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.body.items).toHaveLength(1);
        seen.push(page.body.items[0]!.id);
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(seen).toEqual(['dsn-of-m-mixed', 'm-new', 'm-other', 'm-mixed']);

      const ids = async (query: string) => (await get(`/v1/messages?${query}`)).body.items.map((m: { id: string }) => m.id);
      expect(await ids('state=bounced')).toEqual(['m-mixed']);
      expect(await ids('sender=APP@sender.test&domain=other.test')).toEqual(['m-other']);
      expect(await ids('recipient=gone%40dest.test')).toEqual(['m-mixed']);
      // A DSN goes back through the pool of the message it reports on.
      expect(await ids('pool=bulk')).toEqual(['dsn-of-m-mixed', 'm-mixed']);
      expect(await ids('since=2026-11-30T10:00:30Z&until=2026-11-30T10:00:50%2B00:00')).toEqual(['m-other']);
    });

    it('refuses a malformed cursor and a limit over 1000 with a 400 naming the parameter', async () => {
      for (const cursor of ['not-a-cursor', Buffer.from('[1]').toString('base64url'), 'a%2Bb']) {
        const { status, body } = await get(`/v1/messages?cursor=${cursor}`);
        expect(status, cursor).toBe(400);
        expect(body).toMatchObject({ code: 'INVALID_REQUEST', errors: [{ path: 'querystring.cursor' }] });
      }
      const limit = await get('/v1/messages?limit=1001');
      expect(limit.status).toBe(400);
      expect(limit.body.errors).toMatchObject([{ path: 'querystring.limit' }]);
      // A leap second passes the date-time format but no Date reads it.
      const leap = await get('/v1/messages?since=2016-12-31T23:59:60Z');
      expect(leap.status).toBe(400);
      expect(leap.body.errors).toMatchObject([{ path: 'querystring.since' }]);
      expect((await get('/v1/messages?since=yesterday')).body.errors).toMatchObject([{ path: 'querystring.since' }]);
    });

    it('shows what came back about a recipient after delivery: a complaint, then an asynchronous bounce', async () => {
      // A store of its own: the other tests read the one filled for them.
      const own = await backend.open(manualClock(T0));
      opened.push({ stop: async () => (await own.store.close(), await own.drop()) });
      const store = own.store;
      await store.enqueue([message('m-feedback', T0, { recipients: ['fan@dest.test', 'quiet@dest.test'] })]);
      const claimed = await store.claimDue({ now: T0 + 60_000, limit: 10, owner: 'node-a', leaseMs: 60_000 });
      await store.recordAttempts(claimed.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: DELIVERED, newState: 'delivered', countsAsAttempt: true })));
      const [fan] = await store.listRecipients('m-feedback');
      const base = { messageId: 'm-feedback', recipientId: fan!.recipientId, recipient: 'fan@dest.test', egressIp: '127.0.0.2', code: null, enhanced: null, bounceClass: null };
      await store.recordFeedback({ ...base, kind: 'complaint', at: T0 + 120_000, action: null, diagnostic: 'abuse', reporter: 'feedback@arf.mail.yahoo.test', details: { sourceIp: '127.0.0.2' }, fingerprint: 'f1' });
      await store.recordFeedback({
        ...base, kind: 'bounce', at: T0 + 180_000, action: 'failed', code: 550, enhanced: '5.1.1', diagnostic: '5.1.1 gone', bounceClass: 'unknown-user', reporter: 'relay.dest.test',
        details: { remoteMta: 'mailbox.dest.test' }, fingerprint: 'f2',
      });

      const { body } = await get('/v1/messages/m-feedback', store);
      const [shown, quiet] = body.recipients;
      expect(shown).toMatchObject({ address: 'fan@dest.test', state: 'bounced' });
      expect(shown.feedback).toEqual([
        {
          id: expect.any(Number), kind: 'complaint', at: '2026-11-30T10:02:00.000Z', action: null, code: null, enhanced: null, diagnostic: 'abuse', bounceClass: null,
          reporter: 'feedback@arf.mail.yahoo.test', egressIp: '127.0.0.2', details: { sourceIp: '127.0.0.2' },
        },
        {
          id: expect.any(Number), kind: 'bounce', at: '2026-11-30T10:03:00.000Z', action: 'failed', code: 550, enhanced: '5.1.1', diagnostic: '5.1.1 gone', bounceClass: 'unknown-user',
          reporter: 'relay.dest.test', egressIp: '127.0.0.2', details: { remoteMta: 'mailbox.dest.test' },
        },
      ]);
      expect(quiet).toMatchObject({ state: 'delivered', feedback: [] });
    });

    it('shows the deferred backlog by domain, pool and egress IP, cut to the top groups, with ages', async () => {
      clock.set(T0 + 3_600_000);
      const { body } = await get('/v1/queue?top=1');
      expect(body.counts).toEqual({ queued: 5, delivering: 0, delivered: 1, bounced: 1 });
      // later@ and cut@ of m-mixed (bulk), x@other.test of m-other (default); m-new and the DSN are new mail.
      expect(body.deferred).toEqual({
        count: 3,
        oldestCreatedAt: '2026-11-30T10:00:00.000Z',
        oldestAgeSeconds: 3600,
        byDomain: { groups: [{ key: 'dest.test', count: 2, oldestCreatedAt: '2026-11-30T10:00:00.000Z', oldestAgeSeconds: 3600 }], rest: { groups: 1, count: 1 } },
        byPool: { groups: [{ key: 'bulk', count: 2, oldestCreatedAt: '2026-11-30T10:00:00.000Z', oldestAgeSeconds: 3600 }], rest: { groups: 1, count: 1 } },
        byEgressIp: { groups: [{ key: '127.0.0.3', count: 2, oldestCreatedAt: '2026-11-30T10:00:00.000Z', oldestAgeSeconds: 3600 }], rest: { groups: 1, count: 1 } },
      });
      expect((await get('/v1/queue')).body.deferred.byDomain.groups).toHaveLength(2);
      expect((await get('/v1/queue?top=0')).status).toBe(400);
    });
  });
}

/**
 * m-mixed (bulk pool): one recipient delivered, one deferred, one bounced with a DSN, one cut
 * after the final dot (possible duplicate); m-other: deferred at another domain and IP; m-new:
 * not tried yet.
 */
async function fill(store: Store, clock: ReturnType<typeof manualClock>): Promise<void> {
  const mixed = message('m-mixed', T0, { pool: 'bulk', recipients: ['ok@dest.test', 'later@dest.test', 'gone@dest.test', 'cut@dest.test'] });
  await store.enqueue([mixed, message('m-other', T0 + 40_000, { recipients: ['x@other.test'] })]);
  clock.set(T0 + 60_000);
  const claimed = await store.claimDue({ now: clock.now(), limit: 10, owner: 'node-a', leaseMs: 60_000 });
  const lease = (rcpt: string) => {
    const c = claimed.find((row) => row.recipient === rcpt)!;
    return { recipientId: c.recipientId, token: c.token };
  };
  const retryAt = T0 + 660_000;
  const dsn = await buildDsn({ reportingMta: 'mta.test', original: mixed, failed: [{ recipient: 'gone@dest.test', outcome: BOUNCED }], now: clock.now(), id: 'dsn-of-m-mixed' });
  await store.recordAttempts(
    [
      { ...lease('ok@dest.test'), outcome: DELIVERED, newState: 'delivered', countsAsAttempt: true },
      { ...lease('later@dest.test'), outcome: DEFERRED, newState: 'queued', nextAttemptAt: retryAt, countsAsAttempt: true },
      { ...lease('gone@dest.test'), outcome: BOUNCED, newState: 'bounced', countsAsAttempt: true },
      { ...lease('cut@dest.test'), outcome: { ...interrupted('dot', 'mx1.dest.test', '127.0.0.3') }, newState: 'queued', nextAttemptAt: retryAt, countsAsAttempt: true },
      { ...lease('x@other.test'), outcome: { ...DEFERRED, remoteHost: 'mx.other.test', egressIp: '127.0.0.4' }, newState: 'queued', nextAttemptAt: retryAt, countsAsAttempt: true },
    ],
    [{ message: dsn, reports: [lease('gone@dest.test').recipientId] }],
  );
  await store.enqueue([message('m-new', T0 + 50_000, { recipients: ['n@dest.test'], dueAt: T0 + 900_000 })]);
}
