import { connect, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { createControlApi, type ControlApi, type ControlApiDeps } from '../../src/control-api/server.ts';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import { RookeryError } from '../../src/errors.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createStore } from '../../src/storage/create-store.ts';
import { createRedisClient, type RedisClient } from '../../src/storage/redis-client.ts';
import { RECIPIENT_STATES, type Store } from '../../src/storage/store.ts';
import { apiSources } from '../helpers/api-sources.ts';
import { redisUrl, requireRedis } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

const redisAvailable = await requireRedis();

/** Every log line the API and the Redis client write, to check what they say and what they hide. */
const logLines: string[] = [];
const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }));

let dir: TempDir;
let store: Store;
const opened: Array<{ stop(): Promise<void> } | { close(): Promise<void> }> = [];

beforeAll(async () => {
  dir = await createTempDir('rookery-control-api');
  store = await createStore({ driver: 'sqlite', path: dir.file('queue.db') }, { logger, clock: systemClock });
  await store.migrate();
});

afterEach(async () => {
  for (const item of opened.splice(0).reverse()) await ('stop' in item ? item.stop() : item.close());
});

afterAll(async () => {
  await store.close();
  await dir.remove();
});

/** Starts a control API on a free loopback port with real dependencies; closed after each test. */
async function startApi(overrides: Partial<ControlApiDeps> = {}, register?: (api: ControlApi) => void) {
  const api = createControlApi({
    config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], authFailures: { max: 10, window: 60_000 } } },
    store,
    ...apiSources({ store }),
    logger,
    metrics: new Metrics(),
    checks: { storage: () => store.ping() },
    ...overrides,
  });
  opened.push(api);
  register?.(api);
  const address = await api.start();
  const url = (path: string) => `http://${address.host}:${address.port}${path}`;
  return { api, address, url };
}

function redisClient(url: string): RedisClient {
  const client = createRedisClient(url, logger);
  opened.push(client);
  return client;
}

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('GET /healthz', () => {
  it('answers 200 while the process runs', async () => {
    const { url } = await startApi({ checks: { storage: () => Promise.reject(new Error('down')) } });
    const res = await fetch(url('/healthz'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});

describe('GET /readyz', () => {
  it('answers 200 when storage answers', async () => {
    const { url } = await startApi();
    const res = await fetch(url('/readyz'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { storage: { ok: true } } });
  });

  it.skipIf(!redisAvailable)('answers 200 when storage and Redis answer', async () => {
    const redis = redisClient(redisUrl());
    const { url } = await startApi({ checks: { storage: () => store.ping(), redis: () => redis.ping() } });
    const res = await fetch(url('/readyz'));
    expect(await res.json()).toEqual({ status: 'ready', checks: { storage: { ok: true }, redis: { ok: true } } });
    expect(res.status).toBe(200);
  });

  it('answers 503 naming Redis when Redis is unreachable, without its password', async () => {
    const port = await closedPort();
    const redis = redisClient(`redis://:hunter2-secret@127.0.0.1:${port}/0`);
    const { url } = await startApi({ checks: { storage: () => store.ping(), redis: () => redis.ping() } });
    const res = await fetch(url('/readyz'));
    const text = await res.text();
    expect(res.status).toBe(503);
    const body = JSON.parse(text) as { status: string; checks: Record<string, { ok: boolean; error?: string }> };
    expect(body.status).toBe('not-ready');
    expect(body.checks.storage).toEqual({ ok: true });
    expect(body.checks.redis!.ok).toBe(false);
    expect(body.checks.redis!.error).toBe(`redis unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(text).not.toContain('hunter2');
    expect(logLines.join('')).not.toContain('hunter2');
    expect(logLines.some((line) => line.includes('"event":"redis.error"'))).toBe(true);
  });

  it('answers 503 naming storage when the store is closed', async () => {
    const broken = await createStore({ driver: 'sqlite', path: dir.file('closed.db') }, { logger, clock: systemClock });
    await broken.migrate();
    await broken.close();
    const { url } = await startApi({ checks: { storage: () => broken.ping() } });
    const res = await fetch(url('/readyz'));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; checks: { storage: { ok: boolean; error: string } } };
    expect(body.status).toBe('not-ready');
    expect(body.checks.storage.ok).toBe(false);
    expect(body.checks.storage.error.length).toBeGreaterThan(0);
  });

  it('masks credentials that a failing check puts in its message', async () => {
    const { url } = await startApi({
      checks: { storage: () => Promise.reject(new Error('connect to postgres://rookery:pa55word@db.internal:5432/q failed')) },
    });
    const res = await fetch(url('/readyz'));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { checks: { storage: { error: string } } };
    expect(body.checks.storage.error).toBe('connect to postgres://***@db.internal:5432/q failed');
  });

  it('answers 503 for a check that never answers, once its time is up', async () => {
    const { url } = await startApi({ checks: { storage: () => new Promise<void>(() => {}) }, checkTimeoutMs: 200 });
    const res = await fetch(url('/readyz'));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not-ready', checks: { storage: { ok: false, error: 'no answer within 200ms' } } });
  });

  it('answers 503 once shutdown has begun, whatever the checks say', async () => {
    let shuttingDown = false;
    const { url } = await startApi({ isShuttingDown: () => shuttingDown });
    expect((await fetch(url('/readyz'))).status).toBe(200);
    shuttingDown = true;
    const res = await fetch(url('/readyz'));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'shutting-down', checks: {} });
    expect((await fetch(url('/healthz'))).status).toBe(200);
  });

  /** The answer to `request` (`GET path` by default) arriving on a kept-alive connection while the API closes (a request in progress holds it open). */
  async function answerWhileClosing(path: string, overrides: Partial<ControlApiDeps> = {}, request = `GET ${path} HTTP/1.1\r\nHost: api\r\n\r\n`): Promise<{ head: string; body: string }> {
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const inProgress = new Promise<void>((resolve) => (reached = resolve));
    const { api, address } = await startApi(overrides, ({ app }) => {
      app.get('/held', async () => {
        reached();
        await held;
        return { done: true };
      });
    });
    const socket = connect(address.port, address.host);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('GET /held HTTP/1.1\r\nHost: api\r\n\r\n');
    await inProgress;
    const stopped = api.stop();
    socket.write(request);
    // Parsed and answered behind the request in progress, whose answer goes first.
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await stopped;
    await ended;
    const [first, second = ''] = received.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    const [head = '', body = ''] = second.split('\r\n\r\n');
    return { head, body };
  }

  it('answers a request that arrives while it closes with a 503 problem document', async () => {
    const { head, body } = await answerWhileClosing('/healthz');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(head).toMatch(/\r\nretry-after: 30(\r\n|$)/i);
    expect(head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(JSON.parse(body)).toMatchObject({ status: 503, title: expect.any(String), detail: expect.stringMatching(/stopping/), instance: '/healthz' });
  });

  it('leaves a /v1 request refused while it closes out of the audit trail, credentials or not', async () => {
    const token = generateApiToken();
    const config = { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [{ name: 'ops', role: 'admin' as const, hash: hashApiToken(token) }], authFailures: { max: 10, window: 60_000 } } };
    const body = '{}';
    const request = `POST /v1/queue/pause HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const { head } = await answerWhileClosing('/v1/queue/pause', { config }, request);
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    // The audit hooks write after the answer; give them the time they would take.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await store.listAudit({ actor: null, route: '/v1/queue/pause', status: null, outcome: null, since: null, until: null, tenant: null }, null, 10)).toEqual([]);
  });

  it('answers /readyz while it closes as /readyz does', async () => {
    const { head, body } = await answerWhileClosing('/readyz', { isShuttingDown: () => true });
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(JSON.parse(body)).toEqual({ status: 'shutting-down', checks: {} });
  });
});

describe('GET /metrics', () => {
  it('serves the registry in the Prometheus text format, gauges refreshed from the store first', async () => {
    const metrics = new Metrics();
    metrics.messagesAccepted.inc({ source: 'smtp' });
    await store.enqueue([
      {
        id: 'metrics-test-1',
        sender: 'app@example.test',
        recipients: ['a@example.net', 'b@example.net'],
        messageIdHeader: '<m1@example.test>',
        body: Buffer.from('Subject: x\r\n\r\nhello\r\n'),
        submitter: null,
        source: 'smtp',
        clientAddress: '127.0.0.1',
        pool: 'default',
        createdAt: Date.now(),
        dueAt: Date.now(),
      },
    ]);
    const { url } = await startApi({
      metrics,
      beforeMetrics: async () => {
        const counts = await store.countByState();
        for (const state of RECIPIENT_STATES) metrics.queueDepth.set({ state }, counts[state]);
      },
    });
    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(metrics.registry.contentType);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE rookery_messages_accepted_total counter');
    expect(text).toContain('rookery_messages_accepted_total{source="smtp"} 1');
    expect(text).toContain('rookery_queue_recipients{state="queued"} 2');
    expect(text).toContain('rookery_process_cpu_seconds_total');
  });

  it('shows each readiness check as rookery_dependency_ready, and leaves the store reads alone while storage fails its check', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let refreshed = 0;
    const port = await closedPort();
    const redis = redisClient(`redis://127.0.0.1:${port}/0`);
    let storageUp = true;
    const { url } = await startApi({
      metrics,
      checks: { storage: () => (storageUp ? store.ping() : Promise.reject(new Error('disk full'))), redis: () => redis.ping() },
      beforeMetrics: async () => void refreshed++,
    });
    let text = await (await fetch(url('/metrics'))).text();
    expect(text).toContain('rookery_dependency_ready{dependency="storage"} 1');
    expect(text).toContain('rookery_dependency_ready{dependency="redis"} 0');
    expect(refreshed).toBe(1);

    storageUp = false;
    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(200);
    text = await res.text();
    expect(text).toContain('rookery_dependency_ready{dependency="storage"} 0');
    expect(refreshed).toBe(1);
  });

  it('still serves metrics when refreshing the gauges fails, and logs why', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.dsnsGenerated.inc(3);
    const { url } = await startApi({ metrics, beforeMetrics: () => Promise.reject(new Error('store is down')) });
    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('rookery_dsns_generated_total 3');
    expect(logLines.some((line) => line.includes('"event":"metrics.refresh.failed"') && line.includes('store is down'))).toBe(true);
  });
});

describe('errors', () => {
  it('answers unknown routes with a 404 problem document', async () => {
    const { url } = await startApi();
    const res = await fetch(url('/nope?x=1'));
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toEqual({
      type: 'urn:rookery:problem:not-found',
      title: 'Route not found',
      status: 404,
      detail: 'Route GET /nope not found',
      code: 'NOT_FOUND',
      instance: '/nope',
    });
  });

  it('maps a RookeryError to its HTTP status and message', async () => {
    const { url } = await startApi({}, ({ app }) => {
      app.get('/test/relay', async () => {
        throw new RookeryError('RELAY_DENIED');
      });
      app.get('/test/busy', async () => {
        throw new RookeryError('STORAGE_FAILED', 'Queue unavailable, try again later');
      });
      app.get('/test/later', async () => {
        throw new RookeryError('SHUTTING_DOWN', undefined, { retryAfterMs: 2_500 });
      });
    });
    const relay = await fetch(url('/test/relay'));
    expect(relay.status).toBe(403);
    expect(await relay.json()).toEqual({
      type: 'urn:rookery:problem:relay-denied',
      title: 'Relay access denied',
      status: 403,
      detail: 'Relay access denied',
      code: 'RELAY_DENIED',
      instance: '/test/relay',
    });
    const busy = await fetch(url('/test/busy'));
    expect(busy.status).toBe(503);
    expect(await busy.json()).toMatchObject({ status: 503, code: 'STORAGE_FAILED', detail: 'Queue unavailable, try again later' });
    expect(busy.headers.get('retry-after')).toBeNull();
    // A refusal that passes with time says when, in whole seconds.
    const later = await fetch(url('/test/later'));
    expect(later.status).toBe(503);
    expect(later.headers.get('retry-after')).toBe('3');
  });

  it('keeps the message of client errors and hides the details of unexpected ones', async () => {
    const { url } = await startApi({}, ({ app }) => {
      app.post('/test/echo', async (request) => request.body);
      app.get('/test/bug', async () => {
        throw new Error('internal detail: /var/lib/rookery/secret.key');
      });
    });
    const bad = await fetch(url('/test/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const badBody = (await bad.json()) as { status: number; code: string; detail: string };
    expect(badBody.status).toBe(400);
    expect(badBody.code).toBe('BAD_REQUEST');
    expect(badBody.detail.length).toBeGreaterThan(0);

    const bug = await fetch(url('/test/bug'));
    expect(bug.status).toBe(500);
    const text = await bug.text();
    expect(JSON.parse(text)).toEqual({
      type: 'urn:rookery:problem:internal',
      title: 'Internal server error',
      status: 500,
      detail: 'Internal server error',
      code: 'INTERNAL',
      instance: '/test/bug',
    });
    expect(text).not.toContain('secret.key');
    expect(logLines.some((line) => line.includes('"event":"api.error"') && line.includes('"component":"api"'))).toBe(true);
  });
});

describe('lifecycle', () => {
  it('start and stop are safe to call twice; a stopped API no longer listens', async () => {
    const { api, address, url } = await startApi();
    expect(await api.start()).toEqual(address);
    expect(address.port).toBeGreaterThan(0);
    expect((await fetch(url('/healthz'))).status).toBe(200);
    await Promise.all([api.stop(), api.stop()]);
    await api.stop();
    await expect(fetch(url('/healthz'))).rejects.toThrow();
    await expect(api.start()).rejects.toThrow(/stopped/);
  });

  it('can be stopped without ever starting', async () => {
    const api = createControlApi({
      config: { api: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], authFailures: { max: 10, window: 60_000 } } },
      store,
      ...apiSources({ store }),
      logger,
      metrics: new Metrics({ processMetrics: false }),
      checks: { storage: () => store.ping() },
    });
    await api.stop();
    await api.stop();
  });
});
