import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ApiTokenConfig } from '../../src/config/api-schema.ts';
import { createControlApi } from '../../src/control-api/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createStore } from '../../src/storage/create-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The audit log of the /v1 API over real HTTP on loopback, against a SQLite queue: what is
 * recorded (mutating requests, failed authentications) and what is not (reads, the token
 * itself), and GET /v1/audit with its filters and pages. Entries are written after the answer,
 * so the tests wait for them.
 */

const logLines: string[] = [];
const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));

function tokenFor(name: string, role: ApiTokenConfig['role'], tenant?: string): { token: string; config: ApiTokenConfig } {
  const token = generateApiToken();
  return { token, config: { name, role, hash: hashApiToken(token), ...(tenant ? { tenant } : {}) } };
}
const ADMIN = tokenFor('audit-admin', 'admin');
const OPERATOR = tokenFor('ops-laptop', 'operator');
const VIEWER = tokenFor('dashboard', 'viewer');
const SOURCES_CONFIG = { returnPath: { secret: 'a-test-secret-of-at-least-32-characters', domains: { 'example.com': {} } } };
const T0 = Date.parse('2026-11-30T10:00:00.000Z');

interface AuditItem {
  id: number;
  at: string;
  actor: string | null;
  tenant: string | null;
  clientAddress: string;
  method: string;
  route: string;
  target: string | null;
  change: unknown;
  status: number;
  outcome: string;
}
interface AuditPage {
  items: AuditItem[];
  nextCursor: string | null;
}

let dir: TempDir;
let store: Store;
let clock: ManualClock;
const opened: Array<{ stop(): Promise<void> }> = [];

beforeAll(async () => {
  dir = await createTempDir('rookery-api-audit');
});
beforeEach(async () => {
  clock = manualClock(T0);
  // A fresh queue per test: each test reads the whole log.
  store = await createStore({ driver: 'sqlite', path: dir.file(`queue-${Math.random().toString(36).slice(2)}.db`) }, { logger, clock });
  await store.migrate();
});
afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await item.stop();
  await store.close();
});
afterAll(async () => {
  await dir.remove();
});

async function startApi(options: { store?: Store; authFailures?: { max: number; window: number } } = {}) {
  const s = options.store ?? store;
  const api = createControlApi({
    config: {
      api: {
        listen: { host: '127.0.0.1', port: 0 },
        tokens: [ADMIN.config, OPERATOR.config, VIEWER.config],
        authFailures: options.authFailures ?? { max: 100, window: 60_000 },
      },
    },
    store: s,
    clock,
    ...apiSources({ store: s, config: SOURCES_CONFIG, clock }),
    logger,
    metrics: new Metrics({ processMetrics: false }),
    checks: { storage: () => s.ping() },
  });
  opened.push(api);
  const { host, port } = await api.start();
  const call = (method: string, path: string, token?: string) =>
    fetch(`http://${host}:${port}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const audit = async (query = ''): Promise<AuditPage> => {
    const res = await call('GET', `/v1/audit${query}`, ADMIN.token);
    expect(res.status).toBe(200);
    return (await res.json()) as AuditPage;
  };
  return { call, audit };
}

/** Waits until the store holds `n` entries (they are written once the answer has gone). */
async function entries(n: number): Promise<void> {
  const all = { actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null };
  await until(async () => (await store.listAudit(all, null, 1000)).length >= n, `${n} audit entries`);
}

describe('recording', () => {
  it('records a POST with its actor, tenant, address, route, target and result', async () => {
    const { call, audit } = await startApi();
    expect((await call('POST', '/v1/domains/EXAMPLE.com/check', OPERATOR.token)).status).toBe(200);
    await entries(1);
    const { items } = await audit();
    expect(items).toEqual([
      {
        id: expect.any(Number),
        at: '2026-11-30T10:00:00.000Z',
        actor: 'ops-laptop',
        tenant: null,
        clientAddress: '127.0.0.1',
        method: 'POST',
        route: '/v1/domains/:domain/check',
        target: 'example.com',
        change: null,
        status: 200,
        outcome: 'OK',
      },
    ]);
  });

  it('records refused POSTs with their problem code (an unknown domain, a role that may not), but not one without credentials', async () => {
    const { call, audit } = await startApi();
    expect((await call('POST', '/v1/domains/example.com/check')).status).toBe(401);
    expect((await call('POST', '/v1/domains/unknown.example/check', ADMIN.token)).status).toBe(404);
    expect((await call('POST', '/v1/domains/example.com/check', VIEWER.token)).status).toBe(403);
    await entries(2);
    const { items } = await audit();
    // Anyone reaching the port could fill the log with requests that name nobody.
    expect(items.map((e) => [e.actor, e.target, e.status, e.outcome])).toEqual([
      ['dashboard', '/v1/domains/example.com/check', 403, 'FORBIDDEN'],
      ['audit-admin', 'unknown.example', 404, 'NOT_FOUND'],
    ]);
  });

  it('records a wrong token with the client address and never the token; reads without credentials and good reads are not recorded', async () => {
    const { call, audit } = await startApi();
    const wrong = generateApiToken();
    expect((await call('GET', '/v1/whoami', wrong)).status).toBe(401);
    expect((await call('GET', '/v1/queue')).status).toBe(401);
    expect((await call('GET', '/v1/whoami', VIEWER.token)).status).toBe(200);
    expect((await call('GET', '/v1/queue', VIEWER.token)).status).toBe(200);
    await entries(1);
    const page = await audit();
    expect(page.items).toEqual([
      expect.objectContaining({ actor: null, tenant: null, clientAddress: '127.0.0.1', method: 'GET', route: '/v1/whoami', target: '/v1/whoami', status: 401, outcome: 'AUTH_FAILED' }),
    ]);
    expect(JSON.stringify(page)).not.toContain(wrong);
    expect(JSON.stringify(page)).not.toContain(hashApiToken(wrong).slice(7));
  });

  it('records each lockout answer (429) after too many wrong tokens', async () => {
    const { call, audit } = await startApi({ authFailures: { max: 2, window: 60_000 } });
    for (let i = 0; i < 3; i++) await call('GET', '/v1/whoami', generateApiToken());
    await entries(3);
    const { items } = await audit('?route=/v1/whoami');
    expect(items.map((e) => [e.status, e.outcome])).toEqual([
      [429, 'AUTH_LOCKED'],
      [401, 'AUTH_FAILED'],
      [401, 'AUTH_FAILED'],
    ]);
  });

  it('answers the request when the audit log cannot be written, and logs why', async () => {
    const broken = await createStore({ driver: 'sqlite', path: dir.file('broken.db') }, { logger, clock });
    await broken.migrate();
    const { call } = await startApi({ store: broken });
    await broken.close();
    // The domain check needs no store: only its audit entry fails.
    expect((await call('POST', '/v1/domains/example.com/check', OPERATOR.token)).status).toBe(200);
    await until(() => logLines.some((line) => line.includes('"event":"api.audit.failed"')), 'the api.audit.failed line');
  });
});

describe('GET /v1/audit', () => {
  it('filters by actor, route, status, outcome, since and until, newest first', async () => {
    const { call, audit } = await startApi();
    await call('POST', '/v1/domains/example.com/check', OPERATOR.token); // 10:00
    clock.advance(60_000);
    await call('POST', '/v1/domains/example.com/check', ADMIN.token); // 10:01
    clock.advance(60_000);
    await call('POST', '/v1/domains/nowhere.example/check', OPERATOR.token); // 10:02, 404
    clock.advance(60_000);
    await call('GET', '/v1/queue', 'rk_wrong'); // 10:03, 401
    await entries(4);
    const targets = async (query: string) => (await audit(query)).items.map((e) => `${e.actor ?? '-'} ${e.target}`);

    expect(await targets('')).toEqual(['- /v1/queue', 'ops-laptop nowhere.example', 'audit-admin example.com', 'ops-laptop example.com']);
    expect(await targets('?actor=ops-laptop')).toEqual(['ops-laptop nowhere.example', 'ops-laptop example.com']);
    expect(await targets('?route=/v1/domains/:domain/check&status=200')).toEqual(['audit-admin example.com', 'ops-laptop example.com']);
    expect(await targets('?outcome=NOT_FOUND')).toEqual(['ops-laptop nowhere.example']);
    expect(await targets('?status=401')).toEqual(['- /v1/queue']);
    expect(await targets('?since=2026-11-30T10:01:00Z&until=2026-11-30T10:03:00Z')).toEqual(['ops-laptop nowhere.example', 'audit-admin example.com']);
  });

  it('pages by an opaque cursor, and refuses a cursor it did not give out', async () => {
    const { call, audit } = await startApi();
    for (let i = 0; i < 5; i++) {
      await call('POST', `/v1/domains/d${i}.example/check`, ADMIN.token);
      await entries(i + 1);
    }
    const seen: string[] = [];
    let page = await audit('?limit=2');
    const pages = [page.items.length];
    seen.push(...page.items.map((e) => e.target!));
    while (page.nextCursor) {
      page = await audit(`?limit=2&cursor=${page.nextCursor}`);
      pages.push(page.items.length);
      seen.push(...page.items.map((e) => e.target!));
    }
    expect(pages).toEqual([2, 2, 1]);
    expect(seen).toEqual(['d4.example', 'd3.example', 'd2.example', 'd1.example', 'd0.example']);

    for (const cursor of ['not-a-cursor', Buffer.from(JSON.stringify([T0, 'msg-1'])).toString('base64url')]) {
      const res = await call('GET', `/v1/audit?cursor=${cursor}`, ADMIN.token);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'INVALID_REQUEST', errors: [{ path: 'querystring.cursor' }] });
    }
  });

  it('shows the before and after a route recorded, whatever their shape', async () => {
    const { audit } = await startApi();
    const change = { before: { weight: 100, paused: false }, after: { weight: 0, paused: true, reason: ['manual', null] } };
    await store.recordAudit({ at: T0, actor: 'ops-laptop', tenant: null, clientAddress: '192.0.2.7', method: 'PATCH', route: '/v1/ips/:address', target: '203.0.113.7', change, status: 200, outcome: 'OK' });
    expect((await audit()).items).toEqual([expect.objectContaining({ method: 'PATCH', target: '203.0.113.7', change })]);
  });

  it('is for admin tokens only, and its own reads are not recorded', async () => {
    const { call, audit } = await startApi();
    expect((await call('GET', '/v1/audit', OPERATOR.token)).status).toBe(403);
    expect((await call('GET', '/v1/audit', VIEWER.token)).status).toBe(403);
    await audit();
    // The 403s are reads by valid tokens: nothing to record.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await audit()).items).toEqual([]);
  });
});
