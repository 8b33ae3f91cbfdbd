import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { DeadSites } from '../../src/engine/dead-sites.ts';
import { DeliveryEngine } from '../../src/engine/delivery-engine.ts';
import { newQueueId } from '../../src/engine/queue-id.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createRouter } from '../../src/engine/routing.ts';
import { Scheduler } from '../../src/engine/scheduler.ts';
import type { Deliverer, DeliveryRequest } from '../../src/engine/smtp-deliverer.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { EgressPool } from '../../src/ippool/egress-pool.ts';
import { createPoolPolicy } from '../../src/ippool/pool-policy.ts';
import { ReactionEngine } from '../../src/ippool/reaction-rules.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { returnPathFor } from '../../src/sender-domains/verp.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';
import { until } from '../helpers/until.ts';

/**
 * The scheduler and the delivery engine on a real SQLite queue, with the real egress pool (one
 * IP), router and dead-site handling, and a scripted deliverer that throws where a bug or an
 * unreachable limiter would make the real one throw: whatever part of a job went out before the
 * throw is recorded, never sent again.
 */

const SENDER = 'app@sender.test';

describe('the delivery engine when the deliverer throws', () => {
  let dir: TempDir;
  let store: Store;
  let scheduler: Scheduler | undefined;
  let sites: DeadSites | undefined;
  let pool: EgressPool | undefined;
  let logs: Array<Record<string, unknown>>;
  /** Recipients of every transaction that went out, in order. */
  let sent: string[];

  beforeEach(async () => {
    dir = await createTempDir('rookery-engine-faults');
    store = createSqliteStore({ path: dir.file('queue.db'), logger: capturingLogger().logger });
    await store.migrate();
    sent = [];
  });
  afterEach(async () => {
    await scheduler?.stop(1_000);
    await sites?.stop();
    pool?.stop();
    scheduler = undefined;
    await store.close();
    await dir.remove();
  });

  const delivered = (request: DeliveryRequest): DeliveryOutcome[] => {
    sent.push(...request.recipients);
    return request.recipients.map(() => ({ disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '2.0.0 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp: request.path.ip }));
  };

  /** Starts the scheduler over the real pieces, with `deliver` as the deliverer and `extra` laid over the test config. */
  async function start(deliver: Deliverer['deliver'], extra: ConfigInput = {}): Promise<void> {
    const resolved = resolveConfig(
      testDaemonConfig({
        dir: dir.path,
        extra: { ips: [{ address: '127.0.0.2' }], ...extra, delivery: { routes: { '*': '127.0.0.1:2525' }, retry: { initial: '200ms', max: '1s' }, ...extra.delivery } },
      }),
      { source: 'test', env: {} },
    );
    const { config } = resolved;
    const captured = capturingLogger('debug');
    logs = captured.logs;
    const { logger } = captured;
    const clock = systemClock;
    const metrics = new Metrics({ processMetrics: false });
    const policy = createPoolPolicy(resolved.pool, config.reputation);
    const backend = createPoolBackend({ store, redis: null, clock });
    const queues = new ReadyQueues({ shaping: policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 1_000, deadSite: config.delivery.deadSite });
    pool = new EgressPool({
      members: config.ips.map((ip) => ({ address: ip.address, hostname: config.hostname, pool: ip.pool, weight: ip.weight, warmup: null })),
      backend,
      reputation: createReputationTracker({ windowMs: config.reputation.window, minSamples: config.reputation.minSamples }),
      reactions: new ReactionEngine(resolved.reactionRules),
      policy,
      paths: queues,
      defaultEgress: { address: null, hostname: config.hostname },
      clock,
      logger,
      metrics,
    });
    await pool.start();
    const deliverer = { deliver, abort: () => {}, probe: async () => false };
    const router = createRouter({ routes: config.delivery.routes, mxPort: 25, resolver: createFixtureResolver({}), clock });
    sites = new DeadSites({ store, paths: queues.health, prober: deliverer, router, clock, logger, metrics, maxAgeMs: () => config.delivery.maxAge, onResumed: () => scheduler?.wake() });
    const engine = new DeliveryEngine({
      store,
      sites,
      router,
      deliverer,
      pool,
      clock,
      logger,
      metrics,
      hostname: config.hostname,
      settings: () => ({
        delivery: config.delivery,
        returnPath: ({ sender, messageId, recipientId }) => returnPathFor({ sender, messageId, recipientId, config: config.returnPath }),
      }),
      // No bounce, so no DSN to sign in these tests.
      dkim: { sign: async (message) => ({ message, domain: null, selectors: [] }) },
    });
    scheduler = new Scheduler({ store, engine, clock, logger, owner: 'node-a', concurrency: 4, leaseMs: config.delivery.lease, errorRetryMs: () => 200 });
    sites.start();
    await scheduler.start();
  }

  /** Queues a message to `recipients`; returns its id. */
  async function enqueue(recipients: string[]): Promise<string> {
    const now = Date.now();
    const id = newQueueId(now);
    await store.enqueue([{ id, sender: SENDER, recipients, messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'), submitter: null, source: 'smtp', clientAddress: null, createdAt: now, dueAt: now, pool: 'default' }]);
    scheduler!.wake();
    return id;
  }

  async function allDelivered(id: string): Promise<void> {
    await until(async () => (await store.listRecipients(id)).every((r) => r.state === 'delivered'), `every recipient of ${id} to be delivered`);
  }

  it('records the part of a split job that went out when the next part throws, and sends only the rest again', async () => {
    let calls = 0;
    // A bucket of one message: the pool grants one recipient per transaction, so the job is split.
    await start(
      async (request) => {
        if (++calls === 2) throw new Error('connection-rate limiter unreachable');
        return delivered(request);
      },
      { shaping: { default: { messageRate: '1000/s', messageBurst: 1 } } },
    );
    const id = await enqueue(['a@dest.test', 'b@dest.test', 'c@dest.test']);
    await allDelivered(id);
    expect(sent.toSorted()).toEqual(['a@dest.test', 'b@dest.test', 'c@dest.test']);
    const [a, b] = await store.listRecipients(id);
    // The throw was no attempt: b waited, as for an egress IP, and went out with the next try.
    expect(a).toMatchObject({ attempts: 1 });
    expect(b).toMatchObject({ attempts: 1 });
    expect((await store.listEvents(id)).map((e) => e.outcome.disposition)).toEqual(expect.arrayContaining(['throttled']));
    expect(logs.filter((l) => l.event === 'delivery.job.failed')).toEqual([]);
  });

  it('records the VERP transactions that went out when another one of the job throws', async () => {
    let failB = true;
    await start(
      async (request) => {
        if (request.recipients[0] === 'b@dest.test' && failB) {
          failB = false;
          throw new Error('connection-rate limiter unreachable');
        }
        return delivered(request);
      },
      // A return path per recipient (VERP): a transaction per recipient.
      { returnPath: { secret: 'a test secret of at least thirty-two characters', domains: { 'sender.test': {} } } },
    );
    const id = await enqueue(['a@dest.test', 'b@dest.test', 'c@dest.test']);
    await allDelivered(id);
    expect(sent.toSorted()).toEqual(['a@dest.test', 'b@dest.test', 'c@dest.test']);
  });
});
