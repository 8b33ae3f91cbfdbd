import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { DeadSites, type JobOutcomes } from '../../src/engine/dead-sites.ts';
import type { DeliveryJob } from '../../src/engine/delivery-job.ts';
import { newQueueId } from '../../src/engine/queue-id.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createRouter, type Router } from '../../src/engine/routing.ts';
import { createDeliverer } from '../../src/engine/smtp-deliverer.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { ClaimedRecipient, RecipientRow, Store } from '../../src/storage/store.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { createFixtureResolver, type FixtureResolver } from '../helpers/fixture-resolver.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

/**
 * The life of a hold on a dead site, on real queues (SQLite, and PostgreSQL shared by nodes):
 * the sending path goes down through the real deliverer against a loopback site that answers
 * every connection with 421, probes connect to it, and the test plays the engine around
 * DeadSites (claims, holdJob before an attempt, review after it). Holds last two seconds here.
 */

const HOLD_MS = 2_000;
const SITE = 'mx.dead.test';
const available = await requirePostgres();

describe('holds on a dead site', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let logs: Array<Record<string, unknown>>;
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  interface Setup {
    store: Store;
    sites: DeadSites;
    resolver: FixtureResolver;
    /** Queues a message to `recipients`, due `earlierMs` ago. */
    enqueue(recipients: string[], earlierMs?: number): Promise<void>;
    /** The deliverer's attempt of `rows` from the default address, as the engine makes it: a 421, then (the path down) a wait. */
    attempt(rows: ClaimedRecipient[]): Promise<{ job: DeliveryJob; sent: JobOutcomes }>;
    /** The rows of `domain` among the messages queued here. */
    rowsOf(domain: string): Promise<RecipientRow[]>;
  }

  async function setup(store: Store): Promise<Setup> {
    await store.migrate();
    cleanups.push(() => store.close());
    const captured = capturingLogger('debug');
    logs = captured.logs;
    const { logger } = captured;
    const site: SmtpSink = await startSmtpSink({ script: { onConnect: () => ({ code: 421, message: '4.3.2 service not available' }) } });
    cleanups.push(() => site.close());
    const resolver = createFixtureResolver({
      'a.test': { mx: [{ exchange: SITE, priority: 10 }] },
      'b.test': { mx: [{ exchange: SITE, priority: 10 }] },
      [SITE]: { a: ['127.0.0.1'] },
      'mx.live.test': { a: ['127.0.0.1'] },
    });
    const router: Router = createRouter({ routes: {}, mxPort: site.port, resolver, clock: systemClock, cacheTtlMs: 0 });
    const metrics = new Metrics({ processMetrics: false });
    const unlimited = { ratePerSecond: 10_000, burst: 10_000 };
    const queues = new ReadyQueues({
      shaping: () => ({ maxConnections: 4, maxMessagesPerConnection: 100, messageRate: unlimited, connectionRate: unlimited }),
      limiter: new LocalRateLimiter(),
      clock: systemClock,
      idleConnectionTimeout: 1_000,
      deadSite: { interval: 200, maxInterval: 400 },
    });
    const deliverer = createDeliverer({ logger, metrics, timeouts: { connect: 1_000, greeting: 1_000, command: 1_000, dataDone: 1_000 }, queues, bounceRules: () => BOUNCE_RULES });
    cleanups.push(() => deliverer.close());
    const sites = new DeadSites({ store, paths: queues.health, prober: deliverer, router, clock: systemClock, logger, metrics, maxAgeMs: () => 5 * 86_400_000, onResumed: () => {}, holdMs: HOLD_MS });
    sites.start();
    cleanups.push(() => sites.stop());

    const attempt = async (rows: ClaimedRecipient[]) => {
      const route = await router.resolve(rows[0]!.domain);
      if (!route.ok) throw new Error('no route');
      const outcomes: DeliveryOutcome[] = await deliverer.deliver({
        sender: 'app@sender.test',
        recipients: rows.map((r) => r.recipient),
        body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
        path: { ip: null, site: route.site, provider: 'other' },
        hostname: 'mta.rookery.test',
        hops: route.hops,
      });
      return { job: { messageId: rows[0]!.messageId, route, rows }, sent: { outcomes } };
    };
    const queued: string[] = [];
    return {
      store,
      sites,
      resolver,
      attempt,
      async enqueue(recipients, earlierMs = 0) {
        const now = Date.now() - earlierMs;
        const id = newQueueId(now);
        await store.enqueue([{ id, sender: 'app@sender.test', recipients, messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'), submitter: null, source: 'smtp', clientAddress: null, createdAt: now, dueAt: now, pool: 'default' }]);
        queued.push(id);
      },
      async rowsOf(domain) {
        return (await Promise.all(queued.map((id) => store.listRecipients(id)))).flat().filter((r) => r.domain === domain);
      },
    };
  }

  /**
   * The site goes down, as the first delivery of a message to `recipients` finds (421 at the
   * greeting); the next attempt waits on the down path and holds it.
   */
  async function holdSite(s: Setup, recipients: string[]): Promise<void> {
    // Due before the rest of the queue: the claim below takes it.
    await s.enqueue(recipients, 1_000);
    const rows = await s.store.claimDue({ now: Date.now(), limit: recipients.length, owner: 'node-a', leaseMs: 60_000 });
    const first = await s.attempt(rows);
    expect(first.sent.outcomes[0]).toMatchObject({ disposition: 'transient', code: 421 });
    const { job, sent } = await s.attempt(rows);
    expect(sent.outcomes[0]).toMatchObject({ disposition: 'throttled' });
    const held = s.sites.review(job, sent);
    expect(held.outcomes.every((o) => o.response.includes('held until a probe connection gets through'))).toBe(true);
    await s.sites.holdsDone();
  }

  it('renews a hold only when its trial job finds no IP either, in the background, and for the domains still routed to the site', { timeout: 20_000 }, async () => {
    const s = await setup(createSqliteStore({ path: (await tempDir()).file('queue.db'), logger: capturingLogger().logger }));
    // A backlog the renewal moves in several chunks.
    await s.enqueue(Array.from({ length: 5_000 }, (_, i) => `u${i}@a.test`));
    await s.enqueue(['u@b.test']);
    const start = Date.now();
    await holdSite(s, ['held@a.test', 'held@b.test']);
    const firstEnd = Math.max(...(await s.rowsOf('a.test')).map((r) => r.nextAttemptAt!));
    expect(firstEnd).toBeGreaterThanOrEqual(start + HOLD_MS);
    expect((await s.rowsOf('b.test')).map((r) => r.nextAttemptAt)).toContain(firstEnd);

    // b.test moves to another MX; halfway through the hold, one held row of the site falls due (the trial).
    s.resolver.set('b.test', { mx: [{ exchange: 'mx.live.test', priority: 10 }] });
    let trial: ClaimedRecipient[] = [];
    await until(async () => (trial = await s.store.claimDue({ now: Date.now(), limit: 10, owner: 'node-a', leaseMs: 60_000 })).length > 0, 'the trial row to fall due');
    expect(trial).toHaveLength(1);
    expect(Date.now()).toBeLessThan(firstEnd);
    const attempt = await s.attempt(trial);
    expect(attempt.job.route).toMatchObject({ site: SITE });
    // The trial job goes through selection (not held), finds no IP, and renews the hold.
    expect(s.sites.holdJob(attempt.job)).toBeNull();
    const renewed = s.sites.review(attempt.job, attempt.sent);
    expect(renewed.waitUntil).toBeGreaterThan(firstEnd);
    // Claims do not wait for a renewal: its rows are not due.
    await s.sites.holdsDone();
    expect((await s.rowsOf('a.test')).filter((r) => r.nextAttemptAt === firstEnd).length).toBeGreaterThan(2_000);
    await until(async () => (await s.rowsOf('a.test')).every((r) => r.state !== 'queued' || r.nextAttemptAt! > firstEnd), 'the renewal to move the backlog');
    // The domain that moved is let go: its mail falls due at the first hold's end.
    expect((await s.rowsOf('b.test')).filter((r) => r.state === 'queued').map((r) => r.nextAttemptAt)).toEqual([firstEnd]);
    expect(logs.filter((l) => l.event === 'delivery.site.renewed')).toEqual([expect.objectContaining({ site: SITE, domains: ['a.test'] })]);
  });

  it('ends a hold when its trial job finds an egress IP that can reach the site, and makes its mail due', { timeout: 20_000 }, async () => {
    const s = await setup(createSqliteStore({ path: (await tempDir()).file('queue.db'), logger: capturingLogger().logger }));
    await s.enqueue(['u1@a.test', 'u2@a.test']);
    await holdSite(s, ['held@a.test']);
    let trial: ClaimedRecipient[] = [];
    await until(async () => (trial = await s.store.claimDue({ now: Date.now(), limit: 10, owner: 'node-a', leaseMs: 60_000 })).length > 0, 'the trial row to fall due');
    const { job } = await s.attempt(trial);
    expect(s.sites.holdJob(job)).toBeNull();
    // The pool found no IP free now, but the one it asked reaches the site (a warm-up cap): not held again.
    const wait: DeliveryOutcome = { disposition: 'throttled', code: null, enhanced: '4.4.5', response: 'warm-up cap', stage: 'queue', bounceClass: 'rate-limited', remoteHost: null, egressIp: null };
    const capped = { outcomes: trial.map(() => wait), waitUntil: Date.now() + 60_000, asked: ['127.0.0.3'] };
    expect(s.sites.review(job, capped)).toBe(capped);
    await until(async () => (await s.rowsOf('a.test')).filter((r) => r.state === 'queued').every((r) => r.nextAttemptAt! <= Date.now()), 'the held mail to be due');
    expect(logs.filter((l) => l.event === 'delivery.site.released')).toEqual([expect.objectContaining({ site: SITE, reason: 'an egress IP can take its mail' })]);
  });

  it('ends a hold whose trial never comes on time, and never defers a job to a time already past', { timeout: 20_000 }, async () => {
    const s = await setup(createSqliteStore({ path: (await tempDir()).file('queue.db'), logger: capturingLogger().logger }));
    const started = Date.now();
    await holdSite(s, ['held@a.test']);
    await s.enqueue(['late@a.test']);
    const [late] = await s.store.claimDue({ now: Date.now(), limit: 1, owner: 'node-a', leaseMs: 60_000 });
    const { job } = await s.attempt([late!]);
    // Held while the hold lasts: due at its end, never before one probe interval from now.
    const held = s.sites.holdJob(job)!;
    expect(held.waitUntil).toBeGreaterThanOrEqual(started + HOLD_MS);
    // (The trial row is made due halfway; nobody claims it here.)
    await until(() => logs.some((l) => l.event === 'delivery.site.released'), 'the hold to end', 10_000);
    expect(logs.find((l) => l.event === 'delivery.site.released')).toMatchObject({ site: SITE, reason: 'its hold ended' });
    // Once it ended, the next job for the site goes through selection again.
    expect(s.sites.holdJob(job)).toBeNull();
  });

  describe.skipIf(!available)('on a queue several nodes share (PostgreSQL)', () => {
    it("moves none of the site's queued mail, and a job this node claims waits only until its next probe here", { timeout: 20_000 }, async () => {
        const schema = await createTestSchema('dead-site-holds');
      cleanups.push(() => schema.drop());
      const s = await setup(createPostgresStore({ url: schema.url, schema: schema.schema, logger: capturingLogger().logger }));
      await s.enqueue(['u1@a.test', 'u2@a.test', 'u3@a.test']);
      await holdSite(s, ['held@a.test']);
      expect(logs.filter((l) => l.event === 'delivery.site.down')).toHaveLength(1);

      // Another node, whose own IPs may reach the site, still finds its mail due.
      const other = await s.store.claimDue({ now: Date.now(), limit: 10, owner: 'node-b', leaseMs: 60_000 });
      expect(other.map((r) => r.recipient).toSorted()).toEqual(['u1@a.test', 'u2@a.test', 'u3@a.test']);

      // A job this node claims for the site waits for the site's next probe here, not for the hold's end.
      await s.enqueue(['mine@a.test']);
      const [mine] = await s.store.claimDue({ now: Date.now(), limit: 1, owner: 'node-a', leaseMs: 60_000 });
      const { job } = await s.attempt([mine!]);
      const held = s.sites.holdJob(job)!;
      expect(held.outcomes[0]).toMatchObject({ disposition: 'throttled' });
      expect(held.waitUntil).toBeLessThanOrEqual(Date.now() + 400);
    });
  });

  async function tempDir() {
    const dir = await createTempDir('rookery-dead-site-holds');
    cleanups.push(() => dir.remove());
    return dir;
  }
});
