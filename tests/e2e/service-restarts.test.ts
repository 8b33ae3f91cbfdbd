import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFaultHarness, type FaultHarness } from '../helpers/fault-harness.ts';
import { requirePrivatePostgres, requirePrivateRedis, startPrivatePostgres, startPrivateRedis, type PrivateServer } from '../helpers/private-services.ts';
import { until } from '../helpers/until.ts';

/**
 * The daemon's services fail under load and come back: a PostgreSQL queue restarted (a fast
 * shutdown, then an immediate one: the server's crash), a Redis stopped and started again. Each
 * runs on a private server of the test's own. While a service is down the daemon refuses what it
 * cannot store (451) and /readyz says so; once it is back, the same daemon process takes and
 * delivers mail again without a restart, and every message it answered 250 reaches the sink.
 */

const SESSIONS = 8;
const EGRESS = { ips: [{ address: '127.0.0.2', hostname: 'out.rookery.test' }] };
const postgresAvailable = requirePrivatePostgres();
const redisAvailable = requirePrivateRedis();

describe('services restarted under load', () => {
  let harness: FaultHarness;
  let server: PrivateServer | undefined;

  beforeEach(async () => {
    harness = await createFaultHarness('service-restarts');
  });
  afterEach(async () => {
    await harness.close();
    await server?.destroy();
    server = undefined;
  });

  it.skipIf(!postgresAvailable)('PostgreSQL restarted twice under load (fast, then immediate): 451 while it is down, nothing acknowledged lost', { timeout: 180_000 }, async () => {
    server = await startPrivatePostgres();
    // A delivery whose rows could not even be handed back while the database was away waits for its
    // lease to run out: a short one keeps that wait short.
    const { load } = await harness.start({ ...EGRESS, storage: { driver: 'postgres', url: server.url }, delivery: { lease: '5s' } }, SESSIONS);
    await load.moreAcknowledged(100);

    for (const signal of ['SIGINT', 'SIGQUIT'] as const) {
      await server.stop(signal);
      await load.moreRefused(SESSIONS);
      const down = await harness.readiness();
      expect(down.status).toBe(503);
      expect(down.checks.storage!.ok).toBe(false);

      await server.start();
      await load.moreAcknowledged(100);
      await until(async () => (await harness.readiness()).status === 200, '/readyz 200 once PostgreSQL is back');
    }
    await harness.expectEveryAcknowledgedDelivered();
    // What the clients were told while the database was away: try again later, never a bounce.
    expect([...load.refusals.keys()].filter((k) => !k.startsWith('451 4.3.0'))).toEqual([]);
  });

  it.skipIf(!redisAvailable)('Redis stopped and started under load: /readyz 503 while it is down, nothing acknowledged lost', { timeout: 120_000 }, async () => {
    server = await startPrivateRedis();
    const { load } = await harness.start({ ...EGRESS, redis: { url: server.url } }, SESSIONS);
    await load.moreAcknowledged(100);

    await server.stop();
    await until(async () => {
      const r = await harness.readiness();
      return r.status === 503 && r.checks.redis?.ok === false;
    }, '/readyz 503 naming Redis');
    // Mail keeps being accepted into the queue: Redis holds counters, not messages.
    await load.moreAcknowledged(50);

    // Deliveries that could not choose an egress IP meanwhile are tried again after
    // delivery.retry.initial, by the same process.
    await server.start();
    await until(async () => (await harness.readiness()).status === 200, '/readyz 200 once Redis is back', 30_000);
    await load.moreAcknowledged(100);
    await harness.expectEveryAcknowledgedDelivered();
  });
});
