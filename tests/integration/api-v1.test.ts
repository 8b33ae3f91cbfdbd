import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import rateLimit from '@fastify/rate-limit';
import { Validator } from '@seriousme/openapi-schema-validator';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken, TokenDirectory } from '../../src/access/api-token.ts';
import { systemClock } from '../../src/clock.ts';
import type { ApiRole, ApiTokenConfig } from '../../src/config/api-schema.ts';
import { registerErrorHandlers } from '../../src/control-api/error-handler.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { protectV1Routes, type FailureLimiter } from '../../src/control-api/v1/auth.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createStore } from '../../src/storage/create-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/**
 * The /v1 contract over real HTTP on loopback, against a SQLite queue: bearer tokens, roles,
 * the lockout of failed authentications, problem documents and the OpenAPI document.
 */

const logLines: string[] = [];
const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));

/** One token per role (a sender always sends for a tenant), and another of a tenant. */
const TOKENS: Record<string, { token: string; config: ApiTokenConfig }> = Object.fromEntries(
  (['admin', 'operator', 'sender', 'viewer'] as const).map((role) => {
    const token = generateApiToken();
    return [role, { token, config: { name: `${role}-token`, role, hash: hashApiToken(token), allowedSenders: ['*@example.com'], ...(role === 'sender' ? { tenant: 'acme' } : {}) } }];
  }),
);
const tenantToken = generateApiToken();
const TENANT_TOKEN: ApiTokenConfig = { name: 'acme-app', role: 'sender', tenant: 'acme', hash: hashApiToken(tenantToken) };
/** An operator of a tenant: its role reaches the queue operations, its tenant confines them. */
const tenantOperator = generateApiToken();
const TENANT_OPERATOR: ApiTokenConfig = { name: 'acme-ops', role: 'operator', tenant: 'acme', hash: hashApiToken(tenantOperator) };

/** The address GET /v1/suppressions/{address} reads: on the list of mail of no tenant and on acme's. */
const SUPPRESSED_ADDRESS = 'known-suppressed@example.net';

/** The message DELETE /v1/messages/{id} cancels (enqueued before the tests). */
const CANCELLED_MESSAGE_ID = 'api-v1-cancelled';
/** A webhook endpoint of tenant acme with one delivery (`{deliveryId}`), and one DELETE removes (made again before each test). */
const KNOWN_WEBHOOK_ID = 'wh_apiv1known';
const DELETED_WEBHOOK_ID = 'wh_apiv1deleted';
let knownDeliveryId = '';

/**
 * Who gets 2xx on which route: written out here, apart from the table in the source, so a
 * change there that loosens or tightens a route shows up as a failing row. `tenant`: a token of
 * a tenant may call the route too (for its own tenant, with `tenant.body` when given); without
 * it, such a token is refused whatever its role.
 */
const EXPECTED: Array<{
  route: string;
  /** The path called, for a route with parameters. */
  path?: string;
  /** A JSON body to send. */
  body?: object;
  allowed: readonly ApiRole[];
  tenant?: { body?: object };
  /** A body that is not JSON (the suppression import's CSV), instead of `body`. */
  raw?: { contentType: string; body: string };
}> = [
  { route: 'GET /v1/whoami', allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'GET /v1/queue', allowed: ['admin', 'operator', 'viewer'] },
  { route: 'GET /v1/messages', allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'GET /v1/messages/{id}', allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'DELETE /v1/messages/{id}', path: `/v1/messages/${CANCELLED_MESSAGE_ID}`, allowed: ['admin', 'operator'], tenant: {} },
  { route: 'GET /v1/queue/pauses', allowed: ['admin', 'operator', 'viewer'], tenant: {} },
  {
    route: 'POST /v1/queue/pause',
    body: { scope: { domain: 'role-test.invalid' }, for: '1h', reason: 'role test' },
    allowed: ['admin', 'operator'],
    tenant: { body: { scope: { tenant: 'acme' }, for: '1h', reason: 'role test' } },
  },
  { route: 'POST /v1/queue/resume', body: { scope: { domain: 'role-test.invalid' } }, allowed: ['admin', 'operator'], tenant: { body: { scope: { tenant: 'acme' } } } },
  { route: 'POST /v1/queue/retry', body: { scope: { pool: 'default' } }, allowed: ['admin', 'operator'], tenant: { body: { scope: { tenant: 'acme' } } } },
  {
    route: 'POST /v1/queue/bounce',
    body: { scope: { domain: 'role-test.invalid' }, reason: 'role test', dsn: false },
    allowed: ['admin', 'operator'],
    tenant: { body: { scope: { tenant: 'acme' }, reason: 'role test', dsn: false } },
  },
  { route: 'POST /v1/messages', body: { from: 'app@example.com', to: 'user@example.net', subject: 'role test', text: 'x' }, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'POST /v1/messages/batch', body: { messages: [{ from: 'app@example.com', to: 'user@example.net', subject: 'role test', text: 'x' }] }, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'GET /v1/ips', allowed: ['admin', 'operator', 'viewer'], tenant: {} },
  { route: 'GET /v1/ips/{address}', path: '/v1/ips/2001:db8::7', allowed: ['admin', 'operator', 'viewer'], tenant: {} },
  { route: 'GET /v1/domains', allowed: ['admin', 'operator', 'viewer'], tenant: {} },
  { route: 'POST /v1/domains/{domain}/check', path: '/v1/domains/example.com/check', allowed: ['admin', 'operator'] },
  { route: 'POST /v1/ips/{address}/suspend', path: '/v1/ips/127.0.0.2/suspend', body: { provider: 'gmail', for: '1h', reason: 'role test' }, allowed: ['admin', 'operator'] },
  { route: 'POST /v1/ips/{address}/resume', path: '/v1/ips/127.0.0.2/resume', body: {}, allowed: ['admin', 'operator'] },
  { route: 'PUT /v1/ips/{address}/weight', path: '/v1/ips/127.0.0.2/weight', body: { weight: 50, reason: 'role test' }, allowed: ['admin', 'operator'] },
  { route: 'DELETE /v1/ips/{address}/weight', path: '/v1/ips/127.0.0.2/weight', allowed: ['admin', 'operator'] },
  { route: 'POST /v1/ips/{address}/warmup', path: '/v1/ips/127.0.0.2/warmup', body: { plan: 'conservative', reason: 'role test' }, allowed: ['admin', 'operator'] },
  { route: 'DELETE /v1/ips/{address}/warmup', path: '/v1/ips/127.0.0.2/warmup', allowed: ['admin', 'operator'] },
  { route: 'GET /v1/explain', path: '/v1/explain?sender=a@example.com&recipient=b@example.net', allowed: ['admin', 'operator', 'viewer'] },
  { route: 'GET /v1/audit', allowed: ['admin'] },
  { route: 'POST /v1/reload', allowed: ['admin'] },
  { route: 'GET /v1/suppressions', allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'GET /v1/suppressions/export', path: '/v1/suppressions/export?format=ndjson', allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'GET /v1/suppressions/{address}', path: `/v1/suppressions/${SUPPRESSED_ADDRESS}`, allowed: ['admin', 'operator', 'sender', 'viewer'], tenant: {} },
  { route: 'POST /v1/suppressions', body: { address: 'role-test@example.net' }, allowed: ['admin', 'operator', 'sender'], tenant: {} },
  { route: 'POST /v1/suppressions/import', raw: { contentType: 'text/csv', body: 'address\nrole-import@example.net\n' }, allowed: ['admin', 'operator', 'sender'], tenant: {} },
  { route: 'DELETE /v1/suppressions/{address}', path: '/v1/suppressions/role-test@example.net', allowed: ['admin', 'operator'], tenant: {} },
  { route: 'POST /v1/webhooks', body: { url: 'https://hooks.example.com/role-test', eventTypes: ['message.accepted'] }, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'GET /v1/webhooks', allowed: ['admin', 'operator', 'sender'], tenant: {} },
  { route: 'GET /v1/webhooks/{id}', path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}`, allowed: ['admin', 'operator', 'sender'], tenant: {} },
  { route: 'PATCH /v1/webhooks/{id}', path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}`, body: { description: 'role test' }, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'DELETE /v1/webhooks/{id}', path: `/v1/webhooks/${DELETED_WEBHOOK_ID}`, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'POST /v1/webhooks/{id}/rotate-secret', path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}/rotate-secret`, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'GET /v1/webhooks/{id}/deliveries', path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}/deliveries`, allowed: ['admin', 'operator', 'sender'], tenant: {} },
  {
    route: 'POST /v1/webhooks/{id}/deliveries/{deliveryId}/replay',
    path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}/deliveries/{deliveryId}/replay`,
    allowed: ['admin', 'sender'],
    tenant: {},
  },
  { route: 'POST /v1/webhooks/{id}/replay', path: `/v1/webhooks/${KNOWN_WEBHOOK_ID}/replay`, body: { since: '2020-01-01T00:00:00Z' }, allowed: ['admin', 'sender'], tenant: {} },
  { route: 'GET /v1/recipients/{address}', path: `/v1/recipients/${SUPPRESSED_ADDRESS}`, allowed: ['admin', 'operator'], tenant: {} },
  { route: 'DELETE /v1/recipients/{address}', path: '/v1/recipients/role-erased@example.net', allowed: ['admin'] },
];
/** The message `{id}` stands for in the routes above (enqueued before the tests, sent for the sender's tenant). */
const KNOWN_MESSAGE_ID = 'api-v1-known';
/** The request a row of EXPECTED makes: its method and the path called. */
const requestOf = (e: (typeof EXPECTED)[number]) => (e.path ? `${e.route.split(' ')[0]} ${e.path}` : e.route);
/** What the /v1/ips and /v1/domains rows report on: two egress IPs (one IPv6) and a sender domain; the tenant of the tenants' tokens. */
const SOURCES_CONFIG = {
  ips: [{ address: '127.0.0.2' }, { address: '2001:db8::7', pool: 'v6' }],
  tenants: { acme: { senderDomains: ['example.com'] } },
  returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'example.com': {} } },
};
const ROLES: readonly ApiRole[] = ['admin', 'operator', 'sender', 'viewer'];

let dir: TempDir;
let store: Store;
const opened: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  dir = await createTempDir('rookery-api-v1');
  store = await createStore({ driver: 'sqlite', path: dir.file('queue.db') }, { logger, clock: systemClock });
  await store.migrate();
  const now = Date.now();
  const known = { sender: 'a@example.com', recipients: ['b@example.net'], messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'), submitter: null, tenant: 'acme', source: 'smtp' as const, clientAddress: null, createdAt: now, dueAt: now, pool: 'default' };
  await store.enqueue([{ ...known, id: KNOWN_MESSAGE_ID }, { ...known, id: CANCELLED_MESSAGE_ID }]);
  const suppressed = { address: SUPPRESSED_ADDRESS, reason: 'manual' as const, source: null, createdAt: now, expiresAt: null };
  await store.addSuppressions([{ ...suppressed, tenant: null }, { ...suppressed, tenant: 'acme' }]);
  const hook = { tenant: 'acme', url: 'https://hooks.example.com/known', eventTypes: ['recipient.complained' as const], description: null, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: now };
  await store.createWebhook({ ...hook, id: KNOWN_WEBHOOK_ID });
  await store.recordWebhookEvents([{ type: 'recipient.complained', tenant: 'acme', messageId: KNOWN_MESSAGE_ID, recipient: 'b@example.net', at: now, egressIp: null }]);
  knownDeliveryId = (await store.listWebhookDeliveries(KNOWN_WEBHOOK_ID, { state: null, after: null, limit: 1 }))[0]!.id;
});

beforeEach(async () => {
  if (await store.getWebhook(DELETED_WEBHOOK_ID)) return;
  await store.createWebhook({ id: DELETED_WEBHOOK_ID, tenant: 'acme', url: 'https://hooks.example.com/gone', eventTypes: ['message.accepted'], description: null, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', createdAt: Date.now() });
});

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.stop();
});

afterAll(async () => {
  await store.close();
  await dir.remove();
});

async function startApi(options: { tokens?: ApiTokenConfig[]; authFailures?: { max: number; window: number } } = {}) {
  const api = createControlApi({
    config: {
      api: {
        listen: { host: '127.0.0.1', port: 0 },
        tokens: options.tokens ?? [...Object.values(TOKENS).map((t) => t.config), TENANT_TOKEN, TENANT_OPERATOR],
        authFailures: options.authFailures ?? { max: 100, window: 60_000 },
      },
    },
    store,
    ...apiSources({ store, config: SOURCES_CONFIG }),
    logger,
    metrics: new Metrics({ processMetrics: false }),
    checks: { storage: () => store.ping() },
  });
  opened.push(api);
  const { host, port } = await api.start();
  const call = (route: string, token?: string, init: RequestInit = {}) => {
    const [method, pattern] = route.split(' ') as [string, string];
    const path = pattern.replace('{id}', KNOWN_MESSAGE_ID).replace('{deliveryId}', knownDeliveryId);
    const headers = new Headers(init.headers);
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
    return fetch(`http://${host}:${port}${path}`, { ...init, method, headers });
  };
  return { call };
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  errors?: Array<{ path: string; message: string }>;
}

async function expectProblem(res: Response, status: number, code: string): Promise<ProblemBody> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as ProblemBody;
  expect(body).toMatchObject({ status, code, type: `urn:rookery:problem:${code.toLowerCase().replaceAll('_', '-')}` });
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.detail.length).toBeGreaterThan(0);
  return body;
}

describe('roles', () => {
  const cases = EXPECTED.flatMap((e) => ROLES.map((role) => ({ route: e.route, request: requestOf(e), body: e.body, raw: e.raw, role, status: e.allowed.includes(role) ? '2xx' : '403' })));
  const initOf = (body: object | undefined, raw: (typeof EXPECTED)[number]['raw']): RequestInit =>
    raw ? { body: raw.body, headers: { 'content-type': raw.contentType } } : body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {};

  it.each(cases)('$role on $route gets $status', async ({ request, body, raw, role, status }) => {
    const { call } = await startApi();
    const init = initOf(body, raw);
    const res = await call(request, TOKENS[role]!.token, init);
    if (status === '403') await expectProblem(res, 403, 'FORBIDDEN');
    else expect(res.status, await res.clone().text()).toBeGreaterThanOrEqual(200), expect(res.status).toBeLessThan(300);
  });

  // A token of a tenant whose role reaches every operator route: `tenant` decides.
  const tenantCases = EXPECTED.filter((e) => e.allowed.includes('operator')).map((e) => ({ route: e.route, request: requestOf(e), body: e.tenant?.body ?? e.body, raw: e.raw, status: e.tenant ? 200 : 403 }));

  it.each(tenantCases)("a tenant's operator on $route gets $status", async ({ request, body, raw, status }) => {
    const { call } = await startApi();
    const init = initOf(body, raw);
    const res = await call(request, tenantOperator, init);
    if (status === 403) expect((await expectProblem(res, 403, 'FORBIDDEN')).detail).toMatch(/^A token of tenant "acme" may not /);
    else expect(res.status).toBe(status);
  });

  it('covers every /v1 route of the OpenAPI document', async () => {
    const { call } = await startApi();
    const doc = (await (await call('GET /openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual(EXPECTED.map((e) => e.route).sort());
  });
});

describe('GET /v1/whoami', () => {
  it("answers the calling token's name, role and tenant", async () => {
    const { call } = await startApi();
    const admin = await call('GET /v1/whoami', TOKENS.admin!.token);
    expect(admin.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await admin.json()).toEqual({ name: 'admin-token', role: 'admin', tenant: null });
    expect(await (await call('GET /v1/whoami', tenantToken)).json()).toEqual({ name: 'acme-app', role: 'sender', tenant: 'acme' });
  });
});

describe('GET /v1/queue', () => {
  it('counts recipients by state from the store', async () => {
    const { call } = await startApi();
    const before = (await (await call('GET /v1/queue', TOKENS.viewer!.token)).json()) as { counts: Record<string, number> };
    expect(Object.keys(before.counts).sort()).toEqual(['bounced', 'delivered', 'delivering', 'queued']);
    const now = Date.now();
    const message = { id: `api-v1-${now}`, sender: 'a@example.com', recipients: ['b@example.net', 'c@example.net'], messageIdHeader: null };
    await store.enqueue([{ ...message, body: Buffer.from('Subject: x\r\n\r\nx\r\n'), submitter: null, source: 'smtp', clientAddress: null, createdAt: now, dueAt: now, pool: 'default' }]);
    const after = (await (await call('GET /v1/queue', TOKENS.viewer!.token)).json()) as { counts: Record<string, number> };
    expect(after.counts.queued).toBe(before.counts.queued! + 2);
    expect(after.counts).toEqual(await store.countByState());
  });
});

describe('authentication', () => {
  it('answers 401 with WWW-Authenticate without a token, with a wrong one, and with another scheme', async () => {
    const { call } = await startApi();
    const none = await call('GET /v1/queue');
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="rookery"');
    await expectProblem(none, 401, 'AUTH_REQUIRED');

    const wrong = await call('GET /v1/queue', generateApiToken());
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="rookery", error="invalid_token"');
    const body = await expectProblem(wrong, 401, 'AUTH_FAILED');
    expect(body.instance).toBe('/v1/queue');

    const basic = await call('GET /v1/queue', undefined, { headers: { authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` } });
    await expectProblem(basic, 401, 'AUTH_REQUIRED');
  });

  it('guards the HEAD routes Fastify adds for each GET like the GET itself', async () => {
    const { call } = await startApi();
    for (const e of EXPECTED.filter((e) => e.route.startsWith('GET '))) {
      const route = requestOf(e).replace(/^GET /, 'HEAD ');
      expect((await call(route)).status, route).toBe(401);
      expect((await call(route, generateApiToken())).status, route).toBe(401);
      // Viewer where it may read; /v1/audit is admin only.
      const allowed = e.allowed.includes('viewer') ? 'viewer' : e.allowed[0]!;
      expect((await call(route, TOKENS[allowed]!.token)).status, route).toBe(200);
    }
  });

  it('refuses every /v1 request when no token is configured', async () => {
    const { call } = await startApi({ tokens: [] });
    await expectProblem(await call('GET /v1/whoami'), 401, 'AUTH_REQUIRED');
    await expectProblem(await call('GET /v1/whoami', generateApiToken()), 401, 'AUTH_FAILED');
  });

  it('checks the token before the request: an unauthenticated bad request is 401, not 400', async () => {
    const { call } = await startApi();
    await expectProblem(await call('GET /v1/queue?bogus=1'), 401, 'AUTH_REQUIRED');
  });

  it('keeps /healthz, /readyz, /metrics and /openapi.json open', async () => {
    const { call } = await startApi();
    for (const route of ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /openapi.json']) {
      const res = await call(route);
      expect(res.status, route).toBe(200);
      // Read to the end: an answer left unread (the OpenAPI document is larger than a socket's
      // buffers) keeps its connection busy, and open after the API stops.
      await res.arrayBuffer();
    }
    expect(await (await call('GET /healthz')).json()).toEqual({ status: 'ok' });
  });

  it('locks an address out of further guesses after too many wrong tokens, with Retry-After; a right token still passes', async () => {
    const { call } = await startApi({ authFailures: { max: 3, window: 60_000 } });
    for (let i = 0; i < 3; i++) await expectProblem(await call('GET /v1/whoami', generateApiToken()), 401, 'AUTH_FAILED');
    const locked = await call('GET /v1/whoami', generateApiToken());
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = await expectProblem(locked, 429, 'AUTH_LOCKED');
    expect(body.detail).toContain(`retry in ${retryAfter}s`);
    // Whoever shares the address (every local process, every client behind one proxy) keeps
    // working with a right token: the lock stops guesses, not the holders of tokens.
    expect((await call('GET /v1/whoami', TOKENS.admin!.token)).status).toBe(200);
    await expectProblem(await call('GET /v1/whoami'), 401, 'AUTH_REQUIRED');
    // The open routes are no part of it.
    expect((await call('GET /healthz')).status).toBe(200);
  });

  it('counts only failures, and takes guesses again once the window has passed', async () => {
    const { call } = await startApi({ authFailures: { max: 2, window: 1_000 } });
    for (let i = 0; i < 5; i++) expect((await call('GET /v1/whoami', TOKENS.viewer!.token)).status).toBe(200);
    await call('GET /v1/whoami', 'rk_wrong1');
    await call('GET /v1/whoami', 'rk_wrong2');
    await expectProblem(await call('GET /v1/whoami', 'rk_wrong3'), 429, 'AUTH_LOCKED');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await expectProblem(await call('GET /v1/whoami', 'rk_wrong4'), 401, 'AUTH_FAILED');
  });

  it('refuses to start with a /v1 route registered beside the guarded plugin', async () => {
    const api = createControlApi({
      config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], authFailures: { max: 10, window: 60_000 } } },
      store,
      ...apiSources({ store }),
      logger,
      metrics: new Metrics({ processMetrics: false }),
      checks: { storage: () => store.ping() },
    });
    api.app.get('/v1/beside', async () => ({ open: true }));
    await expect(api.start()).rejects.toThrow('GET /v1/beside is registered outside the /v1 plugin');
    await api.stop().catch(() => {});
  });

  it('never logs a token, right or wrong', async () => {
    const { call } = await startApi();
    const wrong = generateApiToken();
    await call('GET /v1/whoami', TOKENS.admin!.token);
    await call('GET /v1/whoami', wrong);
    const log = logLines.join('');
    expect(log).toContain('"event":"api.auth.failed"');
    expect(log).not.toContain(wrong);
    expect(log).not.toContain(TOKENS.admin!.token);
    for (const { config } of Object.values(TOKENS)) expect(log).not.toContain(config.hash.slice(7));
  });
});

describe('validation', () => {
  it('answers a request that fails its schema with a 400 problem naming the path', async () => {
    const { call } = await startApi();
    const body = await expectProblem(await call('GET /v1/queue?bogus=1&other=2', TOKENS.admin!.token), 400, 'INVALID_REQUEST');
    expect(body.errors).toEqual([
      { path: 'querystring.bogus', message: 'unknown property' },
      { path: 'querystring.other', message: 'unknown property' },
    ]);
    expect(body.detail).toBe('querystring.bogus: unknown property; querystring.other: unknown property');
    expect(body.instance).toBe('/v1/queue');
  });

  it("answers what Node's HTTP parser refuses with a problem too: header fields too large (431) and a request it cannot read (400)", async () => {
    const { call } = await startApi();
    const { port } = new URL((await call('GET /healthz')).url);
    const exchange = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(request));
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk));
        socket.on('close', () => resolve(answer));
        socket.on('error', reject);
      });
    const problemOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as ProblemBody;
    const large = await exchange(`GET /v1/queue HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(large).toMatch(/^HTTP\/1\.1 431 /);
    expect(large).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(problemOf(large)).toMatchObject({ status: 431, code: 'BAD_REQUEST', type: 'urn:rookery:problem:bad-request' });
    const garbled = await exchange('HELO example.com\r\n\r\n');
    expect(garbled).toMatch(/^HTTP\/1\.1 400 /);
    expect(problemOf(garbled)).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
  });

  it('answers an unknown /v1 route with a 404 problem', async () => {
    const { call } = await startApi();
    await expectProblem(await call('GET /v1/nope', TOKENS.admin!.token), 404, 'NOT_FOUND');
  });
});

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document generated from the routes', async () => {
    const { call } = await startApi();
    const res = await call('GET /openapi.json');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const doc = (await res.json()) as Record<string, any>;
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.openapi).toBe('3.1.0');

    expect(doc.components.securitySchemes).toEqual({ bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer' }) });
    expect(doc.components.schemas.Problem.required).toEqual(['type', 'title', 'status', 'detail', 'code']);
    // Only the versioned routes: the probes and the document itself are not part of the contract.
    expect(Object.keys(doc.paths).sort()).toEqual([...new Set(EXPECTED.map((e) => e.route.split(' ')[1]))].sort());
    for (const [path, operations] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.security, where).toEqual([{ bearerAuth: [] }]);
        // 200, 202 for a send (stored, delivered later), or 201 for a webhook endpoint made; JSON but
        // for a file (the suppression export).
        const ok = op.responses['200'] ?? op.responses['202'] ?? op.responses['201'];
        expect((ok.content['application/json'] ?? ok.content['text/csv']).schema, where).toBeTypeOf('object');
        for (const status of ['400', '401', '403', '429']) {
          expect(op.responses[status].content['application/problem+json'].schema, `${where} ${status}`).toEqual({ $ref: '#/components/schemas/Problem' });
        }
      }
    }
    expect(doc.paths['/v1/queue'].get.responses['200'].content['application/json'].schema.properties.counts.required).toEqual([
      'queued',
      'delivering',
      'delivered',
      'bounced',
    ]);
    expect(doc.paths['/v1/whoami'].get.responses['200'].content['application/json'].schema.properties.role.enum).toEqual(['admin', 'operator', 'sender', 'viewer']);
    // A send takes JSON or a whole message, and says what Idempotency-Key does.
    const send = doc.paths['/v1/messages'].post;
    expect(Object.keys(send.requestBody.content).sort()).toEqual(['application/json', 'message/rfc822']);
    expect(send.requestBody.content['application/json'].schema.required).toEqual(['from']);
    expect(send.parameters.find((p: { name: string }) => p.name === 'idempotency-key')).toMatchObject({ in: 'header' });
    expect(send.responses['422'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
    expect(doc.components.schemas.Problem.properties.code.enum).toEqual(expect.arrayContaining(['IDEMPOTENCY_KEY_REUSED', 'POOL_NOT_ALLOWED']));
  });
});

describe('a route that not every role may call', () => {
  /** The auth hooks of the daemon with a table of the test's own, in front of a real listener. */
  async function startGuarded(table: Record<string, readonly ApiRole[]>, register: (app: FastifyInstance) => void) {
    const app = Fastify();
    registerErrorHandlers(app);
    await app.register(rateLimit, { global: false });
    app.register(async (v1) => {
      const failures = v1.createRateLimit({ max: 5, timeWindow: 60_000 }) as FailureLimiter;
      const tokens = new TokenDirectory(Object.values(TOKENS).map((t) => t.config));
      protectV1Routes(v1, { tokens: () => tokens, failures, routeRoles: (method, url) => table[`${method} ${url}`] }, new WeakSet());
      register(v1);
    });
    opened.push({ stop: () => app.close() });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    return (method: string, path: string, token: string) => fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  }

  it('answers 403 with the roles that may, and 2xx to them', async () => {
    const call = await startGuarded({ 'GET /v1/admin-only': ['admin', 'operator'] }, (app) => app.get('/v1/admin-only', async () => ({ ok: true })));
    expect((await call('GET', '/v1/admin-only', TOKENS.admin!.token)).status).toBe(200);
    expect((await call('GET', '/v1/admin-only', TOKENS.operator!.token)).status).toBe(200);
    const body = await expectProblem(await call('GET', '/v1/admin-only', TOKENS.viewer!.token), 403, 'FORBIDDEN');
    expect(body.detail).toBe('Role "viewer" may not GET /v1/admin-only; allowed: admin, operator');
    await expectProblem(await call('GET', '/v1/admin-only', TOKENS.sender!.token), 403, 'FORBIDDEN');
  });

  it('checks the roles of the method asked, on a route of several methods', async () => {
    const call = await startGuarded({ 'GET /v1/things': ['viewer', 'admin'], 'DELETE /v1/things': ['admin'] }, (app) =>
      app.route({ method: ['GET', 'DELETE'], url: '/v1/things', handler: async () => ({ ok: true }) }),
    );
    expect((await call('GET', '/v1/things', TOKENS.viewer!.token)).status).toBe(200);
    await expectProblem(await call('DELETE', '/v1/things', TOKENS.viewer!.token), 403, 'FORBIDDEN');
    expect((await call('DELETE', '/v1/things', TOKENS.admin!.token)).status).toBe(200);
  });

  it('refuses to register a /v1 route that the table does not list', async () => {
    await expect(startGuarded({}, (app) => app.get('/v1/unlisted', async () => ({})))).rejects.toThrow(
      'GET /v1/unlisted is not in the /v1 role table',
    );
  });
});
