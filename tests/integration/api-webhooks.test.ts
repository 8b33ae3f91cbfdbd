import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ApiTokenConfig } from '../../src/config/api-schema.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { WEBHOOK_RETRY_WINDOW_MS } from '../../src/storage/webhook-outbox.ts';
import { webhookBody } from '../../src/webhooks/payload.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * /v1/webhooks over real HTTP on loopback, against a SQLite store: who may register, read and
 * change which endpoints (a tenant's token its own tenant's only), the secret answered once and
 * never shown, logged or audited again, the URL rule, enabling and disabling, the delivery history
 * and replays.
 */

const logLines: string[] = [];
const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));

function tokenFor(name: string, role: ApiTokenConfig['role'], tenant?: string): { token: string; config: ApiTokenConfig } {
  const token = generateApiToken();
  return { token, config: { name, role, hash: hashApiToken(token), ...(tenant ? { tenant } : {}) } };
}
const ADMIN = tokenFor('admin-token', 'admin');
const OPERATOR = tokenFor('ops', 'operator');
const VIEWER = tokenFor('dashboard', 'viewer');
const ACME = tokenFor('acme-app', 'sender', 'acme');
const ACME_OPS = tokenFor('acme-ops', 'operator', 'acme');
const BETA = tokenFor('beta-app', 'sender', 'beta');
const CONFIG = { tenants: { acme: { senderDomains: ['acme.example'] }, beta: { senderDomains: ['beta.example'] } } };
const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const HOOK = { url: 'https://hooks.acme.example/rookery?key=abc', eventTypes: ['recipient.bounced', 'message.accepted'], description: 'CRM' };

let dir: TempDir;
let store: Store;
let clock: ManualClock;
let due: number;
const opened: Array<{ stop(): Promise<void> }> = [];

beforeEach(async () => {
  dir = await createTempDir('rookery-api-webhooks');
  clock = manualClock(T0);
  store = createSqliteStore({ path: dir.file('queue.db'), clock, logger });
  await store.migrate();
  due = 0;
  logLines.length = 0;
});

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.stop();
  await store.close();
  await dir.remove();
});

async function startApi(allowPrivateNetworks = false, maxEndpointsPerTenant = 10) {
  const api = createControlApi({
    config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [ADMIN, OPERATOR, VIEWER, ACME, ACME_OPS, BETA].map((t) => t.config), authFailures: { max: 100, window: 60_000 } } },
    store,
    clock,
    ...apiSources({ store, config: CONFIG, clock }),
    webhooks: { allowPrivateNetworks, maxEndpointsPerTenant, onDue: () => void (due += 1) },
    logger,
    metrics: new Metrics({ processMetrics: false }),
    checks: { storage: () => store.ping() },
  });
  opened.push(api);
  const { host, port } = await api.start();
  return async (method: string, path: string, token: { token: string }, body?: unknown) => {
    const res = await fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
}

describe('/v1/webhooks', () => {
  it('registers an endpoint for the tenant of the token: its secret is answered once, then never shown, logged or audited', async () => {
    const call = await startApi();
    const created = await call('POST', '/v1/webhooks', ACME, HOOK);
    expect(created.status).toBe(201);
    const { secret, ...view } = created.body;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(view).toEqual({
      id: expect.stringMatching(/^wh_[0-9a-f]{24}$/),
      tenant: 'acme',
      url: HOOK.url,
      eventTypes: ['message.accepted', 'recipient.bounced'],
      description: 'CRM',
      maxEventsPerRequest: 1,
      enabled: true,
      disabledReason: null,
      disabledAt: null,
      failingSince: null,
      createdAt: '2026-11-30T10:00:00.000Z',
      updatedAt: '2026-11-30T10:00:00.000Z',
    });
    expect((await store.getWebhook(view.id))!.secret).toBe(secret);
    expect(await call('GET', `/v1/webhooks/${view.id}`, ACME)).toEqual({ status: 200, body: view });
    expect(await call('GET', '/v1/webhooks', ACME)).toEqual({ status: 200, body: { items: [view], nextCursor: null } });

    const rotated = await call('POST', `/v1/webhooks/${view.id}/rotate-secret`, ACME);
    expect(rotated).toEqual({ status: 200, body: { id: view.id, secret: expect.stringMatching(/^whsec_/) } });
    expect(rotated.body.secret).not.toBe(secret);
    expect((await store.getWebhook(view.id))!.secret).toBe(rotated.body.secret);

    await until(async () => (await store.listAudit({ actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10)).length === 2, 'both requests audited');
    const audit = await store.listAudit({ actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    expect(audit.map((a) => [a.actor, a.route, a.target, a.status])).toEqual([
      ['acme-app', '/v1/webhooks/:id/rotate-secret', view.id, 200],
      ['acme-app', '/v1/webhooks', view.id, 201],
    ]);
    expect(audit[1]!.change).toEqual({ after: view });
    for (const s of [secret, rotated.body.secret]) {
      expect(JSON.stringify(audit)).not.toContain(s.slice(6));
      expect(logLines.join('')).not.toContain(s.slice(6));
    }
  });

  it("confines a tenant's token to its own tenant's endpoints; a token of no tenant manages every one, and alone those of no tenant", async () => {
    const call = await startApi();
    const acme = (await call('POST', '/v1/webhooks', ACME, HOOK)).body;
    const beta = await call('POST', '/v1/webhooks', ADMIN, { ...HOOK, tenant: 'beta' });
    expect(beta).toMatchObject({ status: 201, body: { tenant: 'beta' } });
    const none = await call('POST', '/v1/webhooks', ADMIN, HOOK);
    expect(none).toMatchObject({ status: 201, body: { tenant: null } });
    expect(await call('POST', '/v1/webhooks', ADMIN, { ...HOOK, tenant: 'nobody' })).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', errors: [{ path: 'body.tenant' }] } });
    expect(await call('POST', '/v1/webhooks', ACME, { ...HOOK, tenant: 'beta' })).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });

    // Another tenant's endpoint, or one of no tenant, is unknown to a tenant's token, whatever it asks.
    for (const id of [beta.body.id, none.body.id]) {
      for (const [method, path, body] of [
        ['GET', `/v1/webhooks/${id}`],
        ['PATCH', `/v1/webhooks/${id}`, { enabled: false }],
        ['DELETE', `/v1/webhooks/${id}`],
        ['POST', `/v1/webhooks/${id}/rotate-secret`],
        ['GET', `/v1/webhooks/${id}/deliveries`],
        ['POST', `/v1/webhooks/${id}/deliveries/msg_x/replay`],
        ['POST', `/v1/webhooks/${id}/replay`, { since: '2026-01-01T00:00:00Z' }],
      ] as const) {
        expect(await call(method, path, ACME, body), `${method} ${path}`).toMatchObject({ status: 404, body: { code: 'WEBHOOK_NOT_FOUND' } });
      }
    }
    expect((await store.getWebhook(beta.body.id))!.enabled).toBe(true);
    const ids = async (token: { token: string }, query = '') => ((await call('GET', `/v1/webhooks${query}`, token)).body.items as Array<{ id: string }>).map((e) => e.id);
    expect(await ids(ACME)).toEqual([acme.id]);
    expect(await ids(ACME_OPS)).toEqual([acme.id]);
    expect(await ids(BETA)).toEqual([beta.body.id]);
    expect(await call('GET', '/v1/webhooks?tenant=beta', ACME)).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect((await ids(ADMIN)).sort()).toEqual([acme.id, beta.body.id, none.body.id].sort());
    expect(await ids(OPERATOR, '?tenant=beta')).toEqual([beta.body.id]);
    expect(await call('GET', `/v1/webhooks/${acme.id}`, ADMIN)).toMatchObject({ status: 200 });

    // Roles: operators read, only admin and sender change; a viewer sees none of it.
    expect(await call('POST', '/v1/webhooks', OPERATOR, HOOK)).toMatchObject({ status: 403 });
    expect(await call('PATCH', `/v1/webhooks/${acme.id}`, ACME_OPS, { enabled: false })).toMatchObject({ status: 403 });
    expect(await call('GET', '/v1/webhooks', VIEWER)).toMatchObject({ status: 403 });

    // Pages by id.
    const first = await call('GET', '/v1/webhooks?limit=2', ADMIN);
    expect(first.body.items).toHaveLength(2);
    const second = await call('GET', `/v1/webhooks?limit=2&cursor=${first.body.nextCursor}`, ADMIN);
    expect(second.body).toMatchObject({ items: [expect.anything()], nextCursor: null });
    expect(await call('GET', '/v1/webhooks?cursor=bm9wZQ', ADMIN)).toMatchObject({ status: 400, body: { errors: [{ path: 'querystring.cursor' }] } });
  });

  it('refuses an endpoint past webhooks.maxEndpointsPerTenant, counting each tenant alone', async () => {
    const call = await startApi(false, 2);
    for (let i = 0; i < 2; i++) expect((await call('POST', '/v1/webhooks', ACME, HOOK)).status).toBe(201);
    expect(await call('POST', '/v1/webhooks', ACME, HOOK)).toMatchObject({ status: 409, body: { code: 'WEBHOOK_LIMIT_REACHED', detail: expect.stringContaining('tenant "acme" has 2') } });
    expect((await call('POST', '/v1/webhooks', BETA, HOOK)).status).toBe(201);
  });

  it('refuses URLs that are not http(s), hold credentials or name this network, unless private networks are allowed', async () => {
    const call = await startApi();
    const refused = async (url: string, pattern: RegExp) => {
      const res = await call('POST', '/v1/webhooks', ADMIN, { ...HOOK, url });
      expect(res, url).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST', errors: [{ path: 'body.url', message: expect.stringMatching(pattern) }] } });
    };
    await refused('http://127.0.0.1:8025/v1/reload', /loopback/);
    await refused('http://[::1]:9000/', /loopback/);
    await refused('http://169.254.169.254/latest/meta-data/', /link-local/);
    await refused('http://10.0.0.5/hook', /private/);
    await refused('http://localhost:9000/', /this machine/);
    await refused('ftp://hooks.example.com/', /http or https/);
    await refused('https://user:secret@hooks.example.com/', /credentials/);
    expect(await call('POST', '/v1/webhooks', ADMIN, { ...HOOK, eventTypes: ['recipient.opened'] })).toMatchObject({ status: 400, body: { errors: [{ path: 'body.eventTypes[0]' }] } });
    expect(await call('POST', '/v1/webhooks', ADMIN, { ...HOOK, eventTypes: [] })).toMatchObject({ status: 400 });
    const id = (await call('POST', '/v1/webhooks', ADMIN, HOOK)).body.id;
    expect(await call('PATCH', `/v1/webhooks/${id}`, ADMIN, { url: 'http://192.168.1.1/' })).toMatchObject({ status: 400, body: { errors: [{ path: 'body.url' }] } });
    expect(await call('PATCH', `/v1/webhooks/${id}`, ADMIN, {})).toMatchObject({ status: 400 });

    const permissive = await startApi(true);
    expect(await permissive('POST', '/v1/webhooks', ADMIN, { ...HOOK, url: 'http://127.0.0.1:9000/hook' })).toMatchObject({ status: 201 });
  });

  it('takes the events per request an endpoint asks for, from 1 to 100, and changes it', async () => {
    const call = await startApi();
    const created = await call('POST', '/v1/webhooks', ACME, { ...HOOK, maxEventsPerRequest: 25 });
    expect(created).toMatchObject({ status: 201, body: { maxEventsPerRequest: 25 } });
    expect((await store.getWebhook(created.body.id))!.maxEventsPerRequest).toBe(25);
    expect(await call('PATCH', `/v1/webhooks/${created.body.id}`, ACME, { maxEventsPerRequest: 100 })).toMatchObject({ status: 200, body: { maxEventsPerRequest: 100 } });
    expect(await call('GET', `/v1/webhooks/${created.body.id}`, ACME)).toMatchObject({ status: 200, body: { maxEventsPerRequest: 100 } });
    for (const bad of [0, 101, 2.5, 'ten', null]) {
      expect(await call('POST', '/v1/webhooks', ACME, { ...HOOK, maxEventsPerRequest: bad }), String(bad)).toMatchObject({ status: 400, body: { errors: [{ path: 'body.maxEventsPerRequest' }] } });
      expect(await call('PATCH', `/v1/webhooks/${created.body.id}`, ACME, { maxEventsPerRequest: bad }), String(bad)).toMatchObject({ status: 400, body: { errors: [{ path: 'body.maxEventsPerRequest' }] } });
    }
    expect((await store.getWebhook(created.body.id))!.maxEventsPerRequest).toBe(100);
  });

  it('changes an endpoint, disables it with the caller named (deliveries held) and enables it again (deliveries due)', async () => {
    const call = await startApi();
    const id = (await call('POST', '/v1/webhooks', ACME, HOOK)).body.id;
    await store.recordWebhookEvents([{ type: 'recipient.bounced', tenant: 'acme', messageId: null, recipient: 'a@dest.test', at: T0, egressIp: null }]);
    clock.set(T0 + 60_000);
    const off = await call('PATCH', `/v1/webhooks/${id}`, ACME, { enabled: false, description: null, eventTypes: ['recipient.bounced', 'recipient.complained'] });
    expect(off).toMatchObject({
      status: 200,
      body: { enabled: false, disabledReason: 'disabled by acme-app', disabledAt: '2026-11-30T10:01:00.000Z', description: null, eventTypes: ['recipient.bounced', 'recipient.complained'], updatedAt: '2026-11-30T10:01:00.000Z' },
    });
    expect((await store.listWebhookDeliveries(id, { state: null, after: null, limit: 10 })).map((d) => d.state)).toEqual(['held']);
    expect(due).toBe(1); // the registration's: a dispatcher with no endpoint before starts

    clock.set(T0 + 120_000);
    const on = await call('PATCH', `/v1/webhooks/${id}`, ACME, { enabled: true, url: 'https://hooks.acme.example/v2' });
    expect(on).toMatchObject({ status: 200, body: { enabled: true, disabledReason: null, disabledAt: null, url: 'https://hooks.acme.example/v2' } });
    // Due (it was before the endpoint was disabled), with a retry window from the enabling.
    expect((await store.listWebhookDeliveries(id, { state: null, after: null, limit: 10 })).map((d) => [d.state, d.nextAttemptAt <= T0 + 120_000, d.retryUntil])).toEqual([['pending', true, T0 + 120_000 + WEBHOOK_RETRY_WINDOW_MS]]);
    expect(due).toBe(2);

    await until(async () => (await store.listAudit({ actor: null, route: '/v1/webhooks/:id', status: null, outcome: null, since: null, until: null, tenant: null }, null, 10)).length === 2, 'the changes audited');
    const [enabled] = await store.listAudit({ actor: null, route: '/v1/webhooks/:id', status: null, outcome: null, since: null, until: null, tenant: null }, null, 10);
    expect(enabled!.change).toMatchObject({ before: { enabled: false, url: HOOK.url }, after: { enabled: true, url: 'https://hooks.acme.example/v2' } });
  });

  it('shows the delivery history newest first, with the payload as sent, by state and cursor, and replays one or a range', async () => {
    const call = await startApi();
    const id = (await call('POST', '/v1/webhooks', ACME, HOOK)).body.id;
    for (let i = 0; i < 3; i++) {
      clock.set(T0 + i * 1000);
      await store.recordWebhookEvents([{ type: 'recipient.bounced', tenant: 'acme', messageId: `q${i}`, recipient: `r${i}@dest.test`, at: clock.now(), egressIp: '192.0.2.1', reply: { code: 550, enhanced: '5.1.1', text: 'no such user' } }]);
    }
    const page1 = await call('GET', `/v1/webhooks/${id}/deliveries?limit=2`, ACME);
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((d: { payload: { data: { recipient: string } } }) => d.payload.data.recipient)).toEqual(['r2@dest.test', 'r1@dest.test']);
    const [stored] = await store.listWebhookDeliveries(id, { state: null, after: null, limit: 1 });
    expect(page1.body.items[0]).toEqual({
      id: stored!.id,
      type: 'recipient.bounced',
      state: 'pending',
      attempts: 0,
      nextAttemptAt: '2026-11-30T10:00:02.000Z',
      retryUntil: new Date(T0 + 2000 + WEBHOOK_RETRY_WINDOW_MS).toISOString(),
      lastAttemptAt: null,
      lastStatus: null,
      lastError: null,
      finishedAt: null,
      createdAt: '2026-11-30T10:00:02.000Z',
      payload: JSON.parse(webhookBody(stored!.event)),
    });
    const page2 = await call('GET', `/v1/webhooks/${id}/deliveries?limit=2&cursor=${page1.body.nextCursor}`, ACME);
    expect(page2.body).toMatchObject({ items: [{ payload: { data: { recipient: 'r0@dest.test' } } }], nextCursor: null });
    expect(await call('GET', `/v1/webhooks/${id}/deliveries?cursor=${encodeURIComponent(page1.body.nextCursor.slice(1))}`, ACME)).toMatchObject({ status: 400 });

    // Two sent and given up, then replayed: one by id, the other with a range of failed ones.
    clock.set(T0 + 10_000);
    const claimed = await store.claimWebhookDeliveries({ now: clock.now(), limit: 2, perWebhook: 2, skip: [], owner: 'test', leaseMs: 30_000 });
    await store.recordWebhookAttempts(claimed.map((c) => ({ id: c.id, token: c.token, webhookId: id, ok: false, status: 410, error: 'HTTP 410', at: clock.now(), nextAttemptAt: null })), WEBHOOK_RETRY_WINDOW_MS);
    expect((await call('GET', `/v1/webhooks/${id}/deliveries?state=failed`, ACME)).body.items).toHaveLength(2);
    clock.set(T0 + 20_000);
    const one = await call('POST', `/v1/webhooks/${id}/deliveries/${claimed[0]!.id}/replay`, ACME);
    expect(one).toMatchObject({ status: 200, body: { id: claimed[0]!.id, state: 'pending', attempts: 1, lastStatus: 410, nextAttemptAt: '2026-11-30T10:00:20.000Z', finishedAt: null } });
    expect(await call('POST', `/v1/webhooks/${id}/deliveries/msg_unknown/replay`, ACME)).toMatchObject({ status: 404, body: { code: 'WEBHOOK_DELIVERY_NOT_FOUND' } });
    expect(await call('POST', `/v1/webhooks/${id}/replay`, ACME, { since: '2026-11-30T00:00:00Z', state: 'failed' })).toEqual({ status: 200, body: { replayed: 1, limited: false } });
    expect(await call('POST', `/v1/webhooks/${id}/replay`, ACME, { since: '2026-11-30T10:00:05Z' })).toEqual({ status: 200, body: { replayed: 0, limited: false } });
    expect(await call('POST', `/v1/webhooks/${id}/replay`, ACME, { since: 'yesterday' })).toMatchObject({ status: 400, body: { errors: [{ path: 'body.since' }] } });
    expect(due).toBe(3);
    expect((await call('GET', `/v1/webhooks/${id}/deliveries?state=pending`, OPERATOR)).body.items).toHaveLength(3);
  });

  it('deletes an endpoint with its history', async () => {
    const call = await startApi();
    const id = (await call('POST', '/v1/webhooks', BETA, HOOK)).body.id;
    await store.recordWebhookEvents([{ type: 'message.accepted', tenant: 'beta', messageId: 'q', recipient: null, at: T0, egressIp: null }]);
    expect(await call('DELETE', `/v1/webhooks/${id}`, BETA)).toMatchObject({ status: 200, body: { id, tenant: 'beta', url: HOOK.url } });
    expect(await call('GET', `/v1/webhooks/${id}`, BETA)).toMatchObject({ status: 404, body: { code: 'WEBHOOK_NOT_FOUND' } });
    expect(await call('DELETE', `/v1/webhooks/${id}`, BETA)).toMatchObject({ status: 404 });
    expect(await store.listWebhookDeliveries(id, { state: null, after: null, limit: 10 })).toEqual([]);
  });
});
