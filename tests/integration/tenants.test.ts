import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { TenantDirectory } from '../../src/access/tenants.ts';
import type { ApiRole } from '../../src/config/api-schema.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { TenantLimits } from '../../src/engine/tenant-limits.ts';
import { RookeryError } from '../../src/errors.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createRedisClient } from '../../src/storage/redis-client.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { NewMessage, Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { redisUrl, requirePostgres, requireRedis } from '../helpers/services.ts';
import { APP_PASSWORD, message, queueIdOf, rejections, runCleanups, startHarness } from '../helpers/submission-harness.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { UserDirectory } from '../../src/smtp/user-directory.ts';
import { until } from '../helpers/until.ts';

/**
 * Tenants end to end: the limits shared by two nodes through Redis, the checks at SMTP
 * acceptance, and the API confined to a token's tenant on SQLite and PostgreSQL.
 */

const logger = createLogger('silent');
const redisAvailable = await requireRedis();
const postgres = await requirePostgres();
const MIDNIGHT = Date.parse('2026-11-30T00:00:00.000Z');

afterEach(runCleanups);

async function refusal(promise: Promise<unknown>): Promise<RookeryError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RookeryError);
  return err as RookeryError;
}

describe.skipIf(!redisAvailable)('tenant limits through Redis', () => {
  it('holds two nodes to one rate and one daily quota, with the time to come back', async () => {
    const prefix = `rookery-test:${process.pid}:${randomBytes(4).toString('hex')}:`;
    const dir = await createTempDir('rookery-tenant-limits');
    const clock = manualClock(MIDNIGHT + 10 * 3_600_000);
    const tenant = new TenantDirectory({ acme: { senderDomains: ['*'], rate: { ratePerSecond: 3 / 60, burst: 3 }, dailyQuota: 5 } }).get('acme')!;
    const nodes = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const client = createRedisClient(redisUrl(), logger);
        const store = createSqliteStore({ path: dir.file(`${name}.db`), clock, logger });
        await store.migrate();
        const backend = createPoolBackend({ store, redis: client.redis, keyPrefix: prefix, clock });
        return { limits: new TenantLimits({ ...backend, clock }), close: async () => (await client.close(), await store.close()) };
      }),
    );
    try {
      const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
      await a.limits.admit(tenant, 2);
      await b.limits.admit(tenant, 1);
      // The burst of three is used up over both nodes; one recipient comes back every 20 s.
      const limited = await refusal(b.limits.admit(tenant, 1));
      expect(limited.code).toBe('TENANT_RATE_LIMITED');
      expect(limited.message).toBe('4.7.1 Sending rate of this tenant exceeded, try again later');
      expect(limited.retryAfterMs).toBeGreaterThan(19_000);
      expect(limited.retryAfterMs).toBeLessThanOrEqual(20_000);

      clock.advance(60_000);
      await a.limits.admit(tenant, 2);
      // Five recipients today: the quota is used up until midnight UTC, whatever the rate allows.
      const quota = await refusal(b.limits.admit(tenant, 1));
      expect(quota.code).toBe('TENANT_QUOTA_EXCEEDED');
      expect(quota.retryAfterMs).toBe(MIDNIGHT + 86_400_000 - clock.now());
      // A refusal by the rate took nothing from the quota: the day holds exactly five.
      clock.advance(14 * 3_600_000);
      await a.limits.admit(tenant, 3);
    } finally {
      for (const node of nodes) await node.close();
      const redis = new Redis(redisUrl());
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await dir.remove();
    }
  });
});

describe('tenant limits on one node', () => {
  it('refuses for good a message with more recipients than the rate lets through at once or the day allows', async () => {
    const dir = await createTempDir('rookery-tenant-limits-local');
    const clock = manualClock(MIDNIGHT + 3_600_000);
    const store = createSqliteStore({ path: dir.file('queue.db'), clock, logger });
    try {
      await store.migrate();
      const limits = new TenantLimits({ ...createPoolBackend({ store, clock }), clock });
      const tenants = new TenantDirectory({ small: { senderDomains: ['*'], rate: { ratePerSecond: 10 / 3600, burst: 10 }, dailyQuota: 50 }, quota: { senderDomains: ['*'], dailyQuota: 5 } });
      const tooMany = await refusal(limits.admit(tenants.get('small')!, 11));
      expect(tooMany.code).toBe('TENANT_LIMIT_TOO_SMALL');
      expect(tooMany.responseCode).toBe(554);
      expect(tooMany.message).toBe('5.7.1 Message has 11 recipients; this tenant may send to at most 10 at once');
      expect((await refusal(limits.admit(tenants.get('quota')!, 6))).code).toBe('TENANT_LIMIT_TOO_SMALL');
      // Every recipient costs a token: ten recipients use the hour's ten, the next waits six minutes.
      await limits.admit(tenants.get('small')!, 10);
      const next = await refusal(limits.admit(tenants.get('small')!, 1));
      expect(next.code).toBe('TENANT_RATE_LIMITED');
      expect(next.retryAfterMs).toBe(360_000);
    } finally {
      await store.close();
      await dir.remove();
    }
  });
});

describe('tenants at SMTP acceptance', () => {
  const tenants = { acme: { senderDomains: ['acme.example'], pools: ['acme'], rate: '3/m' } };
  const ips = [{ address: '127.0.0.2', pool: 'acme' }, { address: '127.0.0.3' }];
  const users = [
    { username: 'app', password: APP_PASSWORD, allowedSenders: ['*'], tenant: 'acme' },
    { username: 'other', password: APP_PASSWORD, allowedSenders: ['*'], tenant: 'beta' },
  ];

  it("refuses a sender domain not the tenant's at MAIL FROM, records the tenant and its pool, and answers 451 4.7.1 past its rate", async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users }, { config: { ips, tenants: { ...tenants, beta: { senderDomains: ['beta.example'] } } } });
    const client = await h.connect();
    await client.ehlo();
    expect((await client.authPlain('app', APP_PASSWORD)).code).toBe(235);
    const wrong = await client.send('MAIL FROM:<ceo@beta.example>');
    expect(wrong.code).toBe(553);
    expect(wrong.text).toBe('5.7.1 Sender domain not allowed for this tenant');
    expect(await rejections(h.metrics, 'TENANT_SENDER_NOT_ALLOWED')).toBe(1);

    expect((await client.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<a@dest.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<b@dest.example>')).code).toBe(250);
    const first = await client.data(message('news@acme.example', 'a@dest.example'));
    expect(first.code).toBe(250);
    const info = await h.store.getMessageInfo(queueIdOf(first.text));
    expect(info).toMatchObject({ tenant: 'acme', pool: 'acme', submitter: 'app' });

    // Three recipients a minute: two are taken, a message to two more is refused for now.
    expect((await client.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<c@dest.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<d@dest.example>')).code).toBe(250);
    const limited = await client.data(message('news@acme.example', 'c@dest.example'));
    expect(limited.code).toBe(451);
    expect(limited.text).toBe('4.7.1 Sending rate of this tenant exceeded, try again later');
    expect(await rejections(h.metrics, 'TENANT_RATE_LIMITED')).toBe(1);
    expect((await h.store.countByState()).queued).toBe(2);
    const accepted = await h.metrics.tenantRecipientsAccepted.get();
    expect(accepted.values).toEqual([expect.objectContaining({ labels: { tenant: 'acme' }, value: 2 })]);

    // The session goes on: a message within what is left is accepted.
    expect((await client.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
    expect((await client.send('RCPT TO:<e@dest.example>')).code).toBe(250);
    expect((await client.data(message('news@acme.example', 'e@dest.example'))).code).toBe(250);
  });

  it("refuses a From or Sender address outside the tenant's domains, so a tenant cannot send as another", async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users }, { config: { ips, tenants: { ...tenants, beta: { senderDomains: ['beta.example'] } } } });
    const client = await h.connect();
    await client.ehlo();
    expect((await client.authPlain('app', APP_PASSWORD)).code).toBe(235);
    for (const author of ['From: CEO <ceo@beta.example>\r\nTo: <a@dest.example>\r\n', 'From: <news@acme.example>\r\nSender: <ceo@beta.example>\r\n']) {
      expect((await client.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
      expect((await client.send('RCPT TO:<a@dest.example>')).code).toBe(250);
      const refused = await client.data(Buffer.from(`${author}Subject: hello\r\n\r\nHello.\r\n`));
      expect(refused.code).toBe(553);
      expect(refused.text).toBe('5.7.1 From or Sender header address not allowed for this tenant');
    }
    expect((await h.store.countByState()).queued).toBe(0);
  });

  it('refuses a session whose user a reload removed at MAIL, RCPT and DATA, from a trusted network too', async () => {
    const h = await startHarness({ listeners: [{ host: '127.0.0.1', port: 0, tls: 'none' }], users, trustedNetworks: ['127.0.0.1/32'] }, { config: { ips, tenants: { ...tenants, beta: { senderDomains: ['beta.example'] } } } });
    const early = await h.connect();
    const late = await h.connect();
    for (const client of [early, late]) {
      await client.ehlo();
      expect((await client.authPlain('app', APP_PASSWORD)).code).toBe(235);
    }
    expect((await late.send('MAIL FROM:<news@acme.example>')).code).toBe(250);
    expect((await late.send('RCPT TO:<a@dest.example>')).code).toBe(250);
    // The reload: app is gone, its tenant's limits no longer reach its sessions.
    const { smtpUsers } = resolveConfig({ smtp: { users: [users[1]!] }, tenants: { ...tenants, beta: { senderDomains: ['beta.example'] } }, ips }, { source: 'test', env: {} });
    h.server.replaceUsers(await UserDirectory.create(smtpUsers));
    expect((await early.send('MAIL FROM:<news@acme.example>')).code).toBe(554);
    const data = await late.data(message('news@acme.example', 'a@dest.example'));
    expect(data.code).toBe(554);
    expect((await h.store.countByState()).queued).toBe(0);
  });
});

const TOKENS = Object.fromEntries(
  (
    [
      ['root', 'admin', null],
      ['staff', 'viewer', null],
      ['acme-sender', 'sender', 'acme'],
      ['acme-ops', 'operator', 'acme'],
      ['acme-viewer', 'viewer', 'acme'],
      ['beta-sender', 'sender', 'beta'],
      ['slow-sender', 'sender', 'slow'],
    ] as const
  ).map(([name, role, tenant]) => {
    const token = generateApiToken();
    const sends = role === 'sender' ? { allowedSenders: ['*'] } : {};
    return [name, { token, config: { name, role: role as ApiRole, hash: hashApiToken(token), ...sends, ...(tenant ? { tenant } : {}) } }];
  }),
);

const API_CONFIG = {
  ips: [{ address: '127.0.0.2', pool: 'acme' }, { address: '127.0.0.3' }, { address: '127.0.0.4', pool: 'beta' }],
  tenants: {
    acme: { senderDomains: ['acme.example', '*.acme.example'], pools: ['acme'] },
    beta: { senderDomains: ['beta.example'], pools: ['beta'] },
    slow: { senderDomains: ['slow.example'], rate: '1/h' },
  },
  returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'acme.example': {}, 'beta.example': {}, 'mail.acme.example': {} } },
};

const T0 = Date.parse('2026-11-30T10:00:00.000Z');

function stored(id: string, tenant: string | null, minutes: number): NewMessage {
  const at = T0 + minutes * 60_000;
  return { id, sender: 'news@acme.example', recipients: ['u@dest.example'], messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'), submitter: null, tenant, source: 'smtp', clientAddress: null, createdAt: at, dueAt: at, pool: 'default' };
}

const backends = [
  {
    name: 'sqlite',
    skip: false,
    async open() {
      const dir = await createTempDir('rookery-tenants-api');
      const store = createSqliteStore({ path: dir.file('queue.db'), clock: manualClock(T0), logger });
      return { store, drop: () => dir.remove() };
    },
  },
  {
    name: 'postgres',
    skip: !postgres,
    async open() {
      const schema = await createTestSchema('tenants-api');
      const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock: manualClock(T0), logger, poolSize: 2 });
      return { store, drop: () => schema.drop() };
    },
  },
];

for (const backend of backends) {
  describe.skipIf(backend.skip)(`the API confined to a token's tenant on ${backend.name}`, () => {
    let store: Store;
    let drop: () => Promise<void>;
    let call: (name: string, path: string, method?: string, body?: object) => Promise<{ status: number; body: any; retryAfter: string | null }>;
    let rawSend: (name: string, from: string, message: string) => Promise<{ status: number; body: any }>;
    let stop: () => Promise<void>;

    beforeAll(async () => {
      ({ store, drop } = await backend.open());
      await store.migrate();
      await store.enqueue([stored('m-acme-1', 'acme', 1), stored('m-beta-1', 'beta', 2), stored('m-none-1', null, 3), stored('m-acme-2', 'acme', 4)]);
      const api = createControlApi({
        config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: Object.values(TOKENS).map((t) => t.config), authFailures: { max: 100, window: 60_000 } } },
        store,
        logger,
        metrics: new Metrics({ processMetrics: false }),
        checks: { storage: () => store.ping() },
        ...apiSources({ store, config: API_CONFIG }),
      });
      const { host, port } = await api.start();
      stop = () => api.stop();
      call = async (name, path, method = 'GET', body) => {
        const headers: Record<string, string> = { authorization: `Bearer ${TOKENS[name]!.token}`, ...(body ? { 'content-type': 'application/json' } : {}) };
        const res = await fetch(`http://${host}:${port}${path}`, { method, headers, body: body && JSON.stringify(body) });
        return { status: res.status, body: await res.json(), retryAfter: res.headers.get('retry-after') };
      };
      rawSend = async (name, from, message) => {
        const query = new URLSearchParams({ from, to: 'u@dest.example' });
        const headers = { authorization: `Bearer ${TOKENS[name]!.token}`, 'content-type': 'message/rfc822' };
        const res = await fetch(`http://${host}:${port}/v1/messages?${query}`, { method: 'POST', headers, body: message });
        return { status: res.status, body: await res.json() };
      };
    });

    afterAll(async () => {
      await stop();
      await store.close();
      await drop();
    });

    it("lists a tenant's own messages only, newest first, and lets others filter by tenant", async () => {
      const ids = async (name: string, query = '') => ((await call(name, `/v1/messages${query}`)).body.items as Array<{ id: string }>).map((m) => m.id);
      expect(await ids('acme-sender')).toEqual(['m-acme-2', 'm-acme-1']);
      expect(await ids('acme-viewer', '?limit=1')).toEqual(['m-acme-2']);
      expect(await ids('beta-sender')).toEqual(['m-beta-1']);
      expect(await ids('staff')).toEqual(['m-acme-2', 'm-none-1', 'm-beta-1', 'm-acme-1']);
      expect(await ids('root', '?tenant=beta')).toEqual(['m-beta-1']);
      expect(await ids('acme-sender', '?tenant=acme')).toEqual(['m-acme-2', 'm-acme-1']);
      const other = await call('acme-sender', '/v1/messages?tenant=beta');
      expect(other.status).toBe(403);
      expect(other.body.code).toBe('FORBIDDEN');
      // The cursor of a confined page continues within the tenant.
      const first = await call('acme-sender', '/v1/messages?limit=1');
      expect(await ids('acme-sender', `?limit=1&cursor=${encodeURIComponent(first.body.nextCursor)}`)).toEqual(['m-acme-1']);
    });

    it("answers another tenant's message as unknown", async () => {
      expect((await call('acme-sender', '/v1/messages/m-acme-1')).body).toMatchObject({ id: 'm-acme-1', tenant: 'acme' });
      const foreign = await call('acme-sender', '/v1/messages/m-beta-1');
      expect(foreign.status).toBe(404);
      expect(foreign.body.code).toBe('MESSAGE_NOT_FOUND');
      expect((await call('acme-viewer', '/v1/messages/m-none-1')).status).toBe(404);
      expect((await call('staff', '/v1/messages/m-beta-1')).body.tenant).toBe('beta');
    });

    it("shows a tenant the IPs of its pools and its sender domains, and refuses it what tenants share", async () => {
      const addresses = async (name: string) => ((await call(name, '/v1/ips')).body.ips as Array<{ address: string }>).map((ip) => ip.address);
      expect(await addresses('acme-viewer')).toEqual(['127.0.0.2']);
      expect(await addresses('staff')).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
      expect((await call('acme-ops', '/v1/ips/127.0.0.2')).status).toBe(200);
      expect((await call('acme-ops', '/v1/ips/127.0.0.4')).status).toBe(404);
      const domains = async (name: string) => ((await call(name, '/v1/domains')).body.domains as Array<{ domain: string }>).map((d) => d.domain);
      expect(await domains('acme-viewer')).toEqual(['acme.example', 'mail.acme.example']);
      expect(await domains('staff')).toEqual(['acme.example', 'beta.example', 'mail.acme.example']);

      for (const [method, path] of [
        ['GET', '/v1/queue'],
        ['POST', '/v1/ips/127.0.0.2/resume'],
        ['DELETE', '/v1/ips/127.0.0.2/weight'],
        ['POST', '/v1/domains/acme.example/check'],
      ] as const) {
        const refused = await call('acme-ops', path, method);
        expect(refused.status, `${method} ${path}`).toBe(403);
        expect(refused.body.detail).toMatch(/^A token of tenant "acme" may not/);
      }
      expect((await call('staff', '/v1/queue')).status).toBe(200);
    });

    it("sends for the token's tenant: from its domains and pools, within its rate", async () => {
      const send = (name: string, from: string, extra: object = {}) => call(name, '/v1/messages', 'POST', { from, to: 'u@dest.example', subject: 'hello', text: 'Hello.', ...extra });
      const sent = await send('acme-sender', 'news@mail.acme.example');
      expect(sent.status).toBe(202);
      expect((await call('acme-sender', `/v1/messages/${sent.body.id}`)).body).toMatchObject({ tenant: 'acme', pool: 'acme', submitter: 'acme-sender' });
      expect((await call('beta-sender', `/v1/messages/${sent.body.id}`)).status).toBe(404);

      const foreign = await send('acme-sender', 'ceo@beta.example');
      expect(foreign).toMatchObject({ status: 403, body: { code: 'TENANT_SENDER_NOT_ALLOWED' } });
      // A whole message: its envelope is the tenant's, its From another tenant's.
      const raw = await rawSend('acme-sender', 'news@acme.example', 'From: CEO <ceo@beta.example>\r\nTo: <u@dest.example>\r\nSubject: hello\r\n\r\nHello.\r\n');
      expect(raw).toMatchObject({ status: 403, body: { code: 'TENANT_SENDER_NOT_ALLOWED', detail: 'From or Sender header address not allowed for this tenant' } });
      // A pool outside the tenant's is refused when asked for by name.
      expect((await send('acme-sender', 'news@acme.example', { pool: 'beta' })).body.code).toBe('POOL_NOT_ALLOWED');

      // One recipient an hour. A message refused for its pool takes none of it; the first that
      // goes takes it, and the next is told when to come back.
      expect((await send('slow-sender', 'a@slow.example', { pool: 'beta' })).body.code).toBe('POOL_NOT_ALLOWED');
      expect((await send('slow-sender', 'a@slow.example')).status).toBe(202);
      const limited = await send('slow-sender', 'a@slow.example');
      expect(limited).toMatchObject({ status: 429, body: { code: 'TENANT_RATE_LIMITED' } });
      expect(Number(limited.retryAfter)).toBeGreaterThan(3_500);
      expect(Number(limited.retryAfter)).toBeLessThanOrEqual(3_600);
    });

    it('filters the audit log by tenant', async () => {
      await call('acme-ops', '/v1/ips/127.0.0.2/resume', 'POST');
      // The trail is written after the answer.
      let entries: Array<{ actor: string; tenant: string; status: number }> = [];
      await until(async () => (entries = (await call('root', '/v1/audit?tenant=acme&actor=acme-ops')).body.items).length > 0, 'the audit entry');
      expect(entries.every((e) => e.tenant === 'acme' && e.actor === 'acme-ops' && e.status === 403)).toBe(true);
      expect(((await call('root', '/v1/audit?tenant=acme')).body.items as Array<{ tenant: string }>).every((e) => e.tenant === 'acme')).toBe(true);
      expect((await call('root', '/v1/audit?tenant=beta')).body.items).toEqual([]);
    });
  });
}
