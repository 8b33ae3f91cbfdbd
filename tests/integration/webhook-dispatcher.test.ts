import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import type { WebhookDelivery, WebhookEventType } from '../../src/storage/webhook-outbox.ts';
import { WebhookDispatcher } from '../../src/webhooks/dispatcher.ts';
import { createHttpPoster, type HttpPoster } from '../../src/engine/http-poster.ts';
import { createWebhookThread, type WebhookThreadSettings } from '../../src/webhooks/dispatcher-thread.ts';
import { createWebhookSender, type WebhookSender } from '../../src/webhooks/webhook-sender.ts';
import { newWebhookId, newWebhookSecret } from '../../src/webhooks/signature.ts';
import { WebhookMetrics } from '../../src/webhooks/webhook-metrics.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';
import { createScratchDatabase, createTestSchema, type TestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

/**
 * The dispatcher against a real receiver on loopback that verifies every POST with the Standard
 * Webhooks reference library, over a real SQLite outbox (and PostgreSQL for two nodes): signed
 * deliveries, the per-endpoint cap, retries with backoff under a manual clock, disabling after
 * three days of failures, replay, the SSRF rule, and a stop that loses nothing.
 */

const postgres = await requirePostgres();

const opened: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close();
});

interface Rig {
  store: Store;
  /** The SQLite file of the store (the default rig's), for a dispatcher thread's own connection. */
  path: string | null;
  clock: ManualClock;
  receiver: WebhookReceiver;
  logs: Array<Record<string, unknown>>;
  metrics: WebhookMetrics;
  registry: Registry;
  dispatcher(options?: { concurrency?: number; allowPrivateNetworks?: boolean; owner?: string; store?: Store; poster?: HttpPoster; sender?: WebhookSender; random?: () => number }): WebhookDispatcher;
  endpoint(eventTypes?: WebhookEventType[], url?: string, maxEventsPerRequest?: number): Promise<{ id: string; secret: string }>;
  events(count: number, prefix?: string): Promise<void>;
  deliveries(webhookId: string): Promise<WebhookDelivery[]>;
}

async function rig(storeFactory?: (clock: ManualClock) => Promise<Store>): Promise<Rig> {
  const clock = manualClock(Date.now());
  const { logger, logs } = capturingLogger('debug');
  let store: Store;
  let path: string | null = null;
  if (storeFactory) {
    store = await storeFactory(clock);
  } else {
    const dir: TempDir = await createTempDir('rookery-webhook-dispatcher');
    path = dir.file('queue.db');
    store = createSqliteStore({ path, clock, logger });
    await store.migrate();
    opened.push(() => dir.remove());
  }
  opened.push(() => store.close());
  const receiver = await startWebhookReceiver();
  opened.push(() => receiver.close());
  const registry = new Registry();
  const metrics = new WebhookMetrics(registry);
  return {
    store,
    path,
    clock,
    receiver,
    logs,
    metrics,
    registry,
    dispatcher(options = {}) {
      const poster = options.poster ?? createHttpPoster({ timeoutMs: 5_000, allowPrivateNetworks: options.allowPrivateNetworks ?? true });
      const dispatcher = new WebhookDispatcher({
        store: options.store ?? store,
        sender: options.sender ?? createWebhookSender({ poster }),
        clock,
        logger,
        metrics,
        owner: options.owner ?? 'node-a',
        concurrency: options.concurrency ?? 4,
        timeoutMs: 5_000,
        pollMs: 20,
        random: options.random ?? (() => 0),
      });
      opened.push(() => poster.close());
      opened.push(() => dispatcher.stop());
      return dispatcher;
    },
    async endpoint(eventTypes = ['recipient.complained'], url, maxEventsPerRequest = 1) {
      const id = newWebhookId();
      const secret = newWebhookSecret();
      await store.createWebhook({ id, tenant: 'acme', url: url ?? receiver.url(`/${id}`), eventTypes, description: null, maxEventsPerRequest, secret, createdAt: clock.now() });
      receiver.verifyWith(secret, `/${id}`);
      return { id, secret };
    },
    async events(count, prefix = 'r') {
      const at = clock.now();
      await store.recordWebhookEvents(
        Array.from({ length: count }, (_, i) => ({ type: 'recipient.complained' as const, tenant: 'acme', messageId: `q-${prefix}${i}`, recipient: `${prefix}${i}@dest.test`, at, egressIp: '192.0.2.10', data: { feedbackType: 'abuse' } })),
      );
    },
    deliveries: (webhookId) => store.listWebhookDeliveries(webhookId, { state: null, after: null, limit: 1000 }),
  };
}

/** A metric's value (a histogram's: the series whose name ends in `suffix`, e.g. _count). */
async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}, suffix?: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find(
    (v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l) && (suffix === undefined || (v as { metricName?: string }).metricName === name + suffix),
  );
  return value?.value ?? 0;
}

/** Answers each POST after 100 ms with `status`, counting the most POSTs open at once. */
function slowReceiver(receiver: WebhookReceiver, status: number): { most: number } {
  const seen = { most: 0 };
  let open = 0;
  receiver.answer(async () => {
    seen.most = Math.max(seen.most, ++open);
    await new Promise((resolve) => setTimeout(resolve, 100));
    open -= 1;
    return status;
  });
  return seen;
}

describe('webhook dispatcher', () => {
  it('POSTs every event signed (verified by the reference library), as its delivery id, at most `concurrency` at a time per endpoint', async () => {
    const r = await rig();
    const hook = await r.endpoint();
    await r.events(20);
    const inFlight = slowReceiver(r.receiver, 200);
    await r.dispatcher().start();
    await r.receiver.waitFor(20);
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded as delivered');

    expect(r.receiver.received.map((p) => p.verifyError)).toEqual(Array(20).fill(null));
    expect(inFlight.most).toBe(4);
    const deliveries = await r.deliveries(hook.id);
    expect(new Set(r.receiver.received.map((p) => p.id))).toEqual(new Set(deliveries.map((d) => d.id)));
    const byRecipient = new Map(r.receiver.received.map((p) => [p.payload!.data.recipient, p]));
    expect(byRecipient.get('r7@dest.test')!.payload).toEqual({
      type: 'recipient.complained',
      timestamp: new Date(r.clock.now()).toISOString(),
      data: { feedbackType: 'abuse', messageId: 'q-r7', recipient: 'r7@dest.test', tenant: 'acme', tags: [], metadata: {}, egressIp: '192.0.2.10', reply: null, attempt: null, bounceClass: null },
    });
    expect(Math.abs(Number(r.receiver.received[0]!.timestamp) - Date.now() / 1000)).toBeLessThan(300);
    expect(deliveries.every((d) => d.attempts === 1 && d.lastStatus === 200 && d.finishedAt === r.clock.now())).toBe(true);
    expect(await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'delivered' })).toBe(20);
    expect(await metricValue(r.registry, 'rookery_webhook_delivery_seconds', {}, '_count')).toBe(20);
    expect(JSON.stringify(r.logs)).not.toContain(hook.secret);
  });

  it('POSTs an endpoint taking several events per request a signed JSON array of each waiting event with its delivery id; a failed batch is retried whole, as itself', async () => {
    const r = await rig();
    const hook = await r.endpoint(['recipient.complained'], undefined, 50);
    r.receiver.answer((_req, n) => (n === 1 ? 503 : 204));
    const t0 = r.clock.now();
    await r.events(120);
    // Jitter as in the daemon: the failed batch's rows still come due together.
    const dispatcher = r.dispatcher({ concurrency: 1, random: Math.random });
    await dispatcher.start();
    await r.receiver.waitFor(3);
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.attempts === 1), 'the first attempts recorded');

    const batches = r.receiver.received.map((p) => ({ id: p.id, items: p.payload as unknown as Array<{ id: string; type: string; timestamp: string; data: Record<string, unknown> }> }));
    expect(r.receiver.received.map((p) => p.verifyError)).toEqual([null, null, null]);
    expect(batches.map((b) => b.items.length)).toEqual([50, 50, 20]);
    expect(batches.every((b) => /^batch_[\w-]{24}$/.test(b.id))).toBe(true);
    const deliveries = await r.deliveries(hook.id);
    const byId = new Map(deliveries.map((d) => [d.id, d]));
    const items = batches.flatMap((b) => b.items);
    expect(new Set(items.map((i) => i.id))).toEqual(new Set(byId.keys()));
    const sample = items.find((i) => i.data.recipient === 'r7@dest.test')!;
    expect(sample).toEqual({
      id: deliveries.find((d) => d.event.recipient === 'r7@dest.test')!.id,
      type: 'recipient.complained',
      timestamp: new Date(t0).toISOString(),
      data: { feedbackType: 'abuse', messageId: 'q-r7', recipient: 'r7@dest.test', tenant: 'acme', tags: [], metadata: {}, egressIp: '192.0.2.10', reply: null, attempt: null, bounceClass: null },
    });
    const failed = new Set(batches[0]!.items.map((i) => i.id));
    expect(deliveries.filter((d) => d.state === 'pending').map((d) => d.id).sort()).toEqual([...failed].sort());
    const retryAt = deliveries.find((d) => failed.has(d.id))!.nextAttemptAt;
    expect(retryAt).toBeGreaterThan(t0 + 7_999);
    expect(retryAt).toBeLessThanOrEqual(t0 + 10_000);
    expect(deliveries.filter((d) => failed.has(d.id)).every((d) => d.lastStatus === 503 && d.nextAttemptAt === retryAt)).toBe(true);
    expect(r.logs.filter((l) => l.event === 'webhooks.delivery.retry')).toEqual([expect.objectContaining({ webhook: hook.id, request: batches[0]!.id, deliveries: 50, status: 503 })]);

    // The failed batch, due again together, goes as it went: the same webhook-id and body.
    r.clock.set(retryAt);
    dispatcher.wake();
    await r.receiver.waitFor(4);
    expect(r.receiver.received[3]).toMatchObject({ id: r.receiver.received[0]!.id, body: r.receiver.received[0]!.body, verifyError: null });
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded as delivered');
    expect(await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'delivered' })).toBe(120);
    expect(await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'retry' })).toBe(50);
    expect(await metricValue(r.registry, 'rookery_webhook_delivery_seconds', {}, '_count')).toBe(4);

    // Alone, an event is not held back for others: it comes at once, an array of one.
    await r.events(1, 'lone');
    dispatcher.wake();
    await r.receiver.waitFor(5);
    expect(r.receiver.received[4]!.verifyError).toBeNull();
    expect((r.receiver.received[4]!.payload as unknown as unknown[]).map((i) => (i as { data: { recipient: string } }).data.recipient)).toEqual(['lone0@dest.test']);
  });

  it('keeps two batches of a busy endpoint in flight: the next is claimed while one is sent', async () => {
    const r = await rig();
    const hook = await r.endpoint(['recipient.complained'], undefined, 100);
    await r.events(400);
    const inFlight = slowReceiver(r.receiver, 204);
    await r.dispatcher({ concurrency: 8 }).start();
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded as delivered');
    expect(r.receiver.received.map((p) => (p.payload as unknown as unknown[]).length)).toEqual([100, 100, 100, 100]);
    expect(inFlight.most).toBe(2);
  });

  it('keeps a batch within 256 KiB: large events go in more requests, each event once', async () => {
    const r = await rig();
    const hook = await r.endpoint(['recipient.complained'], undefined, 100);
    const at = r.clock.now();
    await r.store.recordWebhookEvents(
      Array.from({ length: 60 }, (_, i) => ({ type: 'recipient.complained' as const, tenant: 'acme', messageId: null, recipient: `big${i}@dest.test`, at, egressIp: null, data: { note: 'x'.repeat(15_000) } })),
    );
    await r.dispatcher({ concurrency: 1 }).start();
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded as delivered');
    const sizes = r.receiver.received.map((p) => Buffer.byteLength(p.body));
    expect(r.receiver.received.every((p) => p.verifyError === null)).toBe(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(256 * 1024);
    expect(sizes.length).toBe(4);
    const recipients = r.receiver.received.flatMap((p) => (p.payload as unknown as Array<{ data: { recipient: string } }>).map((i) => i.data.recipient));
    expect(recipients.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `big${i}@dest.test`).sort());
  });

  it('retries a failed POST after its backoff, with the same webhook-id, and records it delivered when the receiver answers 2xx', async () => {
    const r = await rig();
    const hook = await r.endpoint();
    r.receiver.answer((_req, n) => (n === 1 ? 500 : 200));
    const t0 = r.clock.now();
    await r.events(1);
    const dispatcher = r.dispatcher();
    await dispatcher.start();
    await r.receiver.waitFor(1);
    await until(async () => (await r.deliveries(hook.id))[0]!.attempts === 1, 'the failure recorded');
    expect((await r.deliveries(hook.id))[0]).toMatchObject({ state: 'pending', attempts: 1, lastStatus: 500, lastError: 'HTTP 500: status 500', nextAttemptAt: t0 + 10_000 });
    expect(await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'retry' })).toBe(1);

    // Not due yet: nothing is sent, however often the dispatcher looks.
    r.clock.advance(9_999);
    for (let i = 0; i < 5; i++) dispatcher.wake(), await new Promise((resolve) => setTimeout(resolve, 30));
    expect(r.receiver.received).toHaveLength(1);

    r.clock.advance(1);
    dispatcher.wake();
    await r.receiver.waitFor(2);
    const [first, second] = r.receiver.received;
    expect(second!.id).toBe(first!.id);
    expect(second!.body).toBe(first!.body);
    expect([first!.verifyError, second!.verifyError]).toEqual([null, null]);
    await until(async () => (await r.deliveries(hook.id))[0]!.state === 'delivered', 'the retry recorded');
    expect((await r.deliveries(hook.id))[0]).toMatchObject({ attempts: 2, lastStatus: 200, lastError: null, finishedAt: t0 + 10_000 });
    expect((await r.store.getWebhook(hook.id))!.failingSince).toBeNull();
  });

  it('disables an endpoint that failed for three days, holds its other deliveries, and sends them (and a replay) once it is enabled again', async () => {
    const r = await rig();
    const hook = await r.endpoint();
    let status = 503;
    r.receiver.answer(() => status);
    const t0 = r.clock.now();
    await r.events(1, 'first');
    const dispatcher = r.dispatcher();
    await dispatcher.start();

    // Each retry falls due as the clock moves to it; the last is at three days after the event.
    let attempts = 0;
    for (;;) {
      attempts += 1;
      await until(async () => (await r.deliveries(hook.id)).some((d) => d.attempts === attempts), `attempt ${attempts} recorded`);
      const [first] = (await r.deliveries(hook.id)).filter((d) => d.event.recipient === 'first0@dest.test');
      if (first!.state !== 'pending') break;
      if (first!.nextAttemptAt === first!.retryUntil) await r.events(1, 'later');
      r.clock.set(first!.nextAttemptAt);
      dispatcher.wake();
    }
    expect(attempts).toBeGreaterThan(15);
    const deliveries = await r.deliveries(hook.id);
    const first = deliveries.find((d) => d.event.recipient === 'first0@dest.test')!;
    const later = deliveries.find((d) => d.event.recipient === 'later0@dest.test')!;
    expect(first).toMatchObject({ state: 'failed', finishedAt: t0 + 3 * 86_400_000, lastStatus: 503 });
    expect(r.logs.filter((l) => l.event === 'webhooks.delivery.failed')).toEqual([expect.objectContaining({ level: 40, webhook: hook.id, request: first.id, deliveries: 1, givenUp: [first.id] })]);
    expect(later).toMatchObject({ state: 'held', attempts: 1 });
    expect(await r.store.getWebhook(hook.id)).toMatchObject({ enabled: false, disabledReason: 'every delivery failed for 72 hours', disabledAt: t0 + 3 * 86_400_000, failingSince: t0 });
    expect(r.logs.filter((l) => l.event === 'webhooks.endpoint.disabled')).toEqual([
      expect.objectContaining({ level: 50, webhook: hook.id, tenant: 'acme', url: r.receiver.url(`/${hook.id}`), failingSince: new Date(t0).toISOString() }),
    ]);
    r.metrics.show(await r.store.webhookOutboxStats());
    expect(await metricValue(r.registry, 'rookery_webhook_endpoints_disabled')).toBe(1);
    expect(await metricValue(r.registry, 'rookery_webhook_outbox_held')).toBe(1);
    expect(await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'failed' })).toBe(1);
    expect(r.receiver.received.every((p) => p.verifyError === null)).toBe(true);

    // Enabled again: the held delivery goes at once; the failed one when replayed, as itself.
    status = 200;
    const sent = r.receiver.received.length;
    await r.store.updateWebhook(hook.id, { enabled: true }, r.clock.now());
    dispatcher.wake();
    await r.receiver.waitFor(sent + 1);
    expect(r.receiver.received.at(-1)!.id).toBe(later.id);
    await r.store.replayWebhookDelivery(hook.id, first.id, r.clock.now());
    dispatcher.wake();
    await r.receiver.waitFor(sent + 2);
    expect(r.receiver.received.at(-1)).toMatchObject({ id: first.id, verifyError: null });
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'both delivered');
  });

  it('refuses loopback and private addresses, in the URL or after DNS, unless private networks are allowed', async () => {
    const r = await rig();
    const literal = await r.endpoint(undefined, `http://127.0.0.1:${r.receiver.port}/literal`);
    const named = await r.endpoint(undefined, `http://localhost:${r.receiver.port}/named`);
    await r.events(1);
    await r.dispatcher({ allowPrivateNetworks: false }).start();
    await until(async () => [...(await r.deliveries(literal.id)), ...(await r.deliveries(named.id))].every((d) => d.attempts === 1), 'both attempts recorded');
    expect(r.receiver.received).toEqual([]);
    expect((await r.deliveries(literal.id))[0]!.lastError).toBe('127.0.0.1 is loopback: refused (webhooks.allowPrivateNetworks)');
    expect((await r.deliveries(named.id))[0]!.lastError).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), which is loopback: refused/);

    // A name that resolves to a private address when it is used (DNS rebinding) is refused too;
    // with private networks allowed, the same lookup reaches the receiver.
    const rebinding = (_host: string, options: object, callback: (...args: unknown[]) => void) =>
      (options as { all?: boolean }).all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4);
    const url = `http://hooks.rebind.test:${r.receiver.port}/rebind`;
    const guarded = createHttpPoster({ timeoutMs: 5_000, allowPrivateNetworks: false, lookup: rebinding as never });
    const open = createHttpPoster({ timeoutMs: 5_000, allowPrivateNetworks: true, lookup: rebinding as never });
    opened.push(() => guarded.close(), () => open.close());
    expect(await guarded.post(url, {}, '{}')).toMatchObject({ status: null, error: 'hooks.rebind.test resolves to 127.0.0.1, which is loopback: refused (webhooks.allowPrivateNetworks)' });
    expect(r.receiver.received).toEqual([]);
    expect(await open.post(url, {}, '{}')).toMatchObject({ status: 204, error: null });
    expect(r.receiver.received.map((p) => p.path)).toEqual(['/rebind']);
  });

  it('reads at most a few KiB of an answer, follows no redirect, and gives up on a receiver that does not answer in time', async () => {
    const r = await rig();
    const poster = createHttpPoster({ timeoutMs: 300, allowPrivateNetworks: true });
    opened.push(() => poster.close());
    r.receiver.answer(async (req) => {
      if (req.path === '/slow') await new Promise((resolve) => setTimeout(resolve, 1_000));
      return req.path === '/moved' ? 301 : 200;
    });
    expect(await poster.post(r.receiver.url('/moved'), {}, '{}')).toMatchObject({ status: 301, error: 'HTTP 301: status 301' });
    expect(await poster.post(r.receiver.url('/slow'), {}, '{}')).toMatchObject({ status: null, error: 'no answer within 300 ms' });
    expect(await poster.post('http://127.0.0.1:1/', {}, '{}')).toMatchObject({ status: null, error: expect.stringMatching(/ECONNREFUSED/) });

    // A receiver answering with a body far larger than the cap: the connection is dropped once
    // the cap is passed, before the receiver could write it all.
    let finishedWriting: boolean | null = null;
    const chatty = createServer((req, res) => {
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.on('close', () => (finishedWriting = res.writableFinished));
      const chunk = 'x'.repeat(65_536);
      const write = (left: number): void => {
        if (left === 0) return void res.end();
        if (res.write(chunk)) return write(left - 1);
        res.once('drain', () => write(left - 1));
      };
      write(256);
    });
    await new Promise<void>((resolve) => chatty.listen(0, '127.0.0.1', resolve));
    opened.push(() => new Promise((resolve) => chatty.close(resolve)));
    const answer = await poster.post(`http://127.0.0.1:${(chatty.address() as AddressInfo).port}/`, {}, '{}');
    expect(answer).toMatchObject({ status: 500, error: `HTTP 500: ${'x'.repeat(200)}` });
    await until(() => finishedWriting !== null, 'the receiver to see its connection end');
    expect(finishedWriting).toBe(false);
  });

  it('dispatches from a thread of its own as the daemon does: its own connection to the store, signed, recorded, counted, the address rule applied there', async () => {
    const r = await rig();
    const { logger } = capturingLogger('silent');
    const allowed = await r.endpoint();
    const refused = await r.endpoint(undefined, `http://127.0.0.1:${r.receiver.port}/refused`);
    r.receiver.verifyWith(refused.secret, '/refused');
    await r.events(10);
    const settings: WebhookThreadSettings = { storage: { driver: 'sqlite', path: r.path! }, owner: 'node-t', concurrency: 4, timeoutMs: 5_000, allowPrivateNetworks: true, logLevel: 'silent' };
    const open = createWebhookThread({ settings, metrics: r.metrics, logger });
    opened.push(() => open.stop());
    await open.start();
    await r.receiver.waitFor(20);
    expect(r.receiver.received.map((p) => p.verifyError)).toEqual(Array(20).fill(null));
    await until(async () => [...(await r.deliveries(allowed.id)), ...(await r.deliveries(refused.id))].every((d) => d.state === 'delivered'), 'all 20 recorded');
    // What the thread counted reaches the daemon's registry.
    await until(async () => (await metricValue(r.registry, 'rookery_webhook_deliveries_total', { outcome: 'delivered' })) === 20, 'the 20 counted');
    await open.stop();

    const guarded = createWebhookThread({ settings: { ...settings, allowPrivateNetworks: false }, metrics: r.metrics, logger });
    opened.push(() => guarded.stop());
    await r.events(1, 'late');
    await guarded.start();
    const failed = async () => [...(await r.deliveries(allowed.id)), ...(await r.deliveries(refused.id))].filter((d) => d.event.recipient === 'late0@dest.test');
    await until(async () => (await failed()).every((d) => d.attempts === 1), 'both tried once');
    expect((await failed()).map((d) => d.lastError)).toEqual(Array(2).fill('127.0.0.1 is loopback: refused (webhooks.allowPrivateNetworks)'));
    expect(r.receiver.received).toHaveLength(20);
  });

  it('starts the dispatcher thread again when it dies, and the new one sends what the dead one had claimed', async () => {
    const r = await rig();
    const { logger, logs } = capturingLogger('info');
    const hook = await r.endpoint();
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    r.receiver.answer(async () => (await answered, 200));
    await r.events(3);
    const thread = createWebhookThread({
      settings: { storage: { driver: 'sqlite', path: r.path! }, owner: 'node-t', concurrency: 4, timeoutMs: 5_000, allowPrivateNetworks: true, logLevel: 'silent' },
      metrics: r.metrics,
      logger,
      workerFile: new URL('../fixtures/workers/dying-webhook-worker.ts', import.meta.url),
    });
    opened.push(() => thread.stop());
    await thread.start();
    // Every delivery claimed and in flight, then the thread dies (this one, when woken).
    await r.receiver.waitFor(3);
    expect((await r.deliveries(hook.id)).map((d) => d.state)).toEqual(['delivering', 'delivering', 'delivering']);
    thread.wake();
    await until(() => logs.some((l) => l.event === 'webhooks.thread.restart'), 'the restart logged');
    answer();
    // The new thread gives the dead one's claims back and sends them again.
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'all delivered by the new thread', 15_000);
    expect(logs.find((l) => l.event === 'webhooks.thread.restart')).toMatchObject({ level: 50, why: 'exited with code 3', inMs: 1_000 });
    expect(r.receiver.received.length).toBeGreaterThanOrEqual(6);
  });

  it('stops without losing a claimed delivery: the POST in flight is recorded, those waiting are given back', async () => {
    const r = await rig();
    const hook = await r.endpoint();
    await r.events(3);
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    r.receiver.answer(async () => (await answered, 200));
    const dispatcher = r.dispatcher({ concurrency: 1 });
    await dispatcher.start();
    await r.receiver.waitFor(1);
    expect(dispatcher.inProgress).toBe(3);
    const stopped = dispatcher.stop();
    setTimeout(answer, 50);
    await stopped;
    const states = (await r.deliveries(hook.id)).map((d) => d.state).sort();
    expect(states).toEqual(['delivered', 'pending', 'pending']);
    expect((await r.deliveries(hook.id)).filter((d) => d.state === 'pending').every((d) => d.attempts === 0)).toBe(true);
    expect(r.receiver.received).toHaveLength(1);
  });

  it('shares one outbox between two dispatchers without sending an event twice', async () => {
    const r = await rig();
    const hook = await r.endpoint();
    await r.events(60);
    await Promise.all([r.dispatcher({ owner: 'node-a' }).start(), r.dispatcher({ owner: 'node-b' }).start()]);
    await r.receiver.waitFor(60);
    await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded');
    expect(r.receiver.received).toHaveLength(60);
    expect(new Set(r.receiver.received.map((p) => p.id)).size).toBe(60);
  });

  describe.skipIf(!postgres)('on PostgreSQL', () => {
    it('dispatches from a thread of its own, which loads the PostgreSQL store itself', async () => {
      const scratch = await createScratchDatabase(undefined, 'webhook_thread');
      opened.push(() => scratch.drop());
      const { logger } = capturingLogger('silent');
      const r = await rig(async (clock) => {
        const store = createPostgresStore({ url: scratch.url, clock, logger, poolSize: 4 });
        await store.migrate();
        return store;
      });
      const hook = await r.endpoint();
      await r.events(5);
      const settings: WebhookThreadSettings = { storage: { driver: 'postgres', url: scratch.url }, owner: 'node-t', concurrency: 4, timeoutMs: 5_000, allowPrivateNetworks: true, logLevel: 'silent' };
      const thread = createWebhookThread({ settings, metrics: r.metrics, logger });
      opened.push(() => thread.stop());
      await thread.start();
      await r.receiver.waitFor(5);
      expect(r.receiver.received.map((p) => p.verifyError)).toEqual(Array(5).fill(null));
      await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'all 5 recorded');
    });

    it('shares one outbox between two nodes (two stores, two dispatchers) without sending an event twice', async () => {
      let schema!: TestSchema;
      const { logger } = capturingLogger('silent');
      const open = async (clock: ManualClock) => {
        const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger, poolSize: 4 });
        await store.migrate();
        return store;
      };
      schema = await createTestSchema('webhook-dispatcher');
      opened.push(() => schema.drop());
      const r = await rig(open);
      const other = await open(r.clock);
      opened.push(() => other.close());
      const hook = await r.endpoint();
      await r.events(100);
      await Promise.all([r.dispatcher({ owner: 'node-a' }).start(), r.dispatcher({ owner: 'node-b', store: other }).start()]);
      await r.receiver.waitFor(100);
      await until(async () => (await r.deliveries(hook.id)).every((d) => d.state === 'delivered'), 'every delivery recorded');
      expect(r.receiver.received).toHaveLength(100);
      expect(new Set(r.receiver.received.map((p) => p.id)).size).toBe(100);
      expect(r.receiver.received.every((p) => p.verifyError === null)).toBe(true);
    });
  });
});
