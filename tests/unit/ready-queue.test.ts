import { describe, expect, it } from 'vitest';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import type { Shaping } from '../../src/ippool/shaping.ts';
import { manualClock } from '../helpers/manual-clock.ts';

const SHAPING: Record<string, Shaping> = {
  other: { maxConnections: 1, maxMessagesPerConnection: 100, messageRate: { ratePerSecond: 10, burst: 10 }, connectionRate: { ratePerSecond: 10, burst: 1 } },
  gmail: { maxConnections: 2, maxMessagesPerConnection: 50, messageRate: { ratePerSecond: 2, burst: 2 }, connectionRate: { ratePerSecond: 10, burst: 1 } },
};

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Ready queues over `shaping`, read at each use as the daemon reads the configuration in effect. */
function readyQueues(shaping: () => Record<string, Shaping> = () => SHAPING) {
  const clock = manualClock(1_000_000);
  const queues = new ReadyQueues({ shaping: (provider) => shaping()[provider]!, limiter: new LocalRateLimiter(), clock, idleConnectionTimeout: 1_000, deadSite: { interval: 60_000, maxInterval: 600_000 } });
  return { clock, queues };
}

const path = (ip: string | null, site = 'mx.dest.test', provider = 'other') => ({ ip, site, provider });

describe('ready queues', () => {
  it("hold each path to its provider's connection limit, apart from every other path", async () => {
    const { queues } = readyQueues();
    const first = await queues.acquire(path('127.0.0.2'), () => true);
    expect(first.queue.key).toBe('127.0.0.2->mx.dest.test');
    expect(first.queue.maxMessagesPerConnection).toBe(100);
    let second: Awaited<ReturnType<typeof queues.acquire>> | undefined;
    void queues.acquire(path('127.0.0.2'), () => true).then((taken) => (second = taken));
    // Another IP, another site: other paths with slots of their own.
    const otherIp = await queues.acquire(path('127.0.0.3'), () => true);
    const otherSite = await queues.acquire(path('127.0.0.2', 'mx.other.test'), () => true);
    const defaultSource = await queues.acquire(path(null), () => true);
    expect(defaultSource.queue.key).toBe('default->mx.dest.test');
    await tick();
    expect(second).toBeUndefined();
    expect(queues.stats()).toMatchObject({ paths: 4, open: 4, waiting: 1 });

    first.lease.release(null);
    await tick();
    expect(second?.queue).toBe(first.queue);
    for (const taken of [second!, otherIp, otherSite, defaultSource]) taken.lease.release(null);
    // Nothing open and nobody waiting: every queue is forgotten.
    expect(queues.stats()).toEqual({ paths: 0, open: 0, idle: 0, waiting: 0 });
  });

  it("take a reload's shaping on a path that stays busy: a lower connection limit holds new acquires, a new message limit applies at once", async () => {
    let shaping = SHAPING;
    const { queues } = readyQueues(() => shaping);
    const gmail = path('127.0.0.2', 'aspmx.l.google.com', 'gmail');
    const first = await queues.acquire(gmail, () => true);
    const second = await queues.acquire(gmail, () => true);

    // The reload: gmail gets one connection per path and 10 messages per connection.
    shaping = { ...SHAPING, gmail: { ...SHAPING.gmail!, maxConnections: 1, maxMessagesPerConnection: 10 } };
    expect(first.queue.maxMessagesPerConnection).toBe(10);
    let third: Awaited<ReturnType<typeof queues.acquire>> | undefined;
    void queues.acquire(gmail, () => true).then((taken) => (third = taken));
    await tick();
    expect(third).toBeUndefined();
    // A slot freed above the new limit is not handed on: one is still open.
    second.lease.release(null);
    await tick();
    expect(third).toBeUndefined();
    expect(queues.stats()).toMatchObject({ open: 1, waiting: 1 });

    first.lease.release(null);
    await tick();
    expect(third?.queue).toBe(first.queue);
    third!.lease.release(null);
    expect(queues.stats()).toEqual({ paths: 0, open: 0, idle: 0, waiting: 0 });
  });

  it('open new connections on a path no faster than its connection rate', async () => {
    const { clock, queues } = readyQueues();
    const { queue, lease } = await queues.acquire(path('127.0.0.2'), () => true);
    await queue.beforeConnect();
    let opened = false;
    const next = queue.beforeConnect().then(() => (opened = true));
    await tick();
    expect(opened).toBe(false);
    clock.advance(100);
    await next;
    lease.release(null);
  });

  it("take a path's messages from its provider's message rate", async () => {
    const { clock, queues } = readyQueues();
    const gmail = path('127.0.0.2', 'aspmx.l.google.com', 'gmail');
    const now = clock.now();
    // A transaction larger than the bucket (2) takes the whole bucket.
    expect(await queues.takeMessages(gmail, 5, now)).toMatchObject({ allowed: true });
    expect(await queues.takeMessages(gmail, 1, now)).toMatchObject({ allowed: false, retryAfterMs: 500 });
    // Every path has its own bucket.
    expect(await queues.takeMessages({ ...gmail, ip: '127.0.0.3' }, 2, now)).toMatchObject({ allowed: true });
    expect(await queues.takeMessages(path('127.0.0.2'), 10, now)).toMatchObject({ allowed: true });
    // Asking does not make a queue.
    expect(queues.stats().paths).toBe(0);
  });

  it('take nothing on a path that cannot reach its site until its probe time: the pool chooses another IP', async () => {
    const { clock, queues } = readyQueues();
    const down = path('127.0.0.2');
    const outcome = { disposition: 'transient', code: null, enhanced: '4.4.1', response: 'connection refused', stage: 'connect', bounceClass: 'connection', remoteHost: null, egressIp: '127.0.0.2' } as const;
    queues.health.failed(down, { outcome, hops: [], hostname: 'mta.test' });
    expect(await queues.takeMessages(down, 1, clock.now())).toEqual({ allowed: false, retryAfterMs: 60_000 });
    expect(await queues.takeMessages(path('127.0.0.3'), 1, clock.now())).toMatchObject({ allowed: true });
    queues.health.connected(down);
    expect(await queues.takeMessages(down, 1, clock.now())).toMatchObject({ allowed: true });
  });

  it("let a path's message rate and health be read without taking a message or marking the path wanted (GET /v1/explain)", async () => {
    const { clock, queues } = readyQueues();
    const gmail = path('127.0.0.2', 'aspmx.l.google.com', 'gmail');
    const now = clock.now();
    for (let i = 0; i < 5; i++) expect(await queues.peekMessages(gmail, now)).toEqual({ allowed: true, retryAfterMs: 0, down: null });
    expect(await queues.takeMessages(gmail, 2, now)).toMatchObject({ allowed: true });
    expect(await queues.peekMessages(gmail, now)).toEqual({ allowed: false, retryAfterMs: 500, down: null });

    const down = path('127.0.0.3');
    const outcome = { disposition: 'transient', code: null, enhanced: '4.4.1', response: 'connection refused by mx.dest.test', stage: 'connect', bounceClass: 'connection', remoteHost: null, egressIp: '127.0.0.3' } as const;
    queues.health.failed(down, { outcome, hops: [], hostname: 'mta.test' });
    clock.advance(10_000);
    expect(await queues.peekMessages(down, clock.now())).toEqual({ allowed: false, retryAfterMs: 50_000, down: { since: now, reason: 'connection refused by mx.dest.test', probeAt: now + 60_000 } });
    // Only a delivery that asks makes the path wanted (worth a probe); an explanation does not.
    expect(queues.health.get(down)!.wanted).toBe(false);
    await queues.takeMessages(down, 1, clock.now());
    expect(queues.health.get(down)!.wanted).toBe(true);
  });
});
