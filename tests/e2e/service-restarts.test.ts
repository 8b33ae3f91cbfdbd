import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { apiGet, killDaemon, startDaemonProcess, type DaemonProcess } from '../helpers/daemon-process.ts';
import { requirePrivatePostgres, requirePrivateRedis, startPrivatePostgres, startPrivateRedis, type PrivateServer } from '../helpers/private-services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { startSubmissionLoad, undelivered, type SubmissionLoad } from '../helpers/submission-load.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig, UNSHAPED } from '../helpers/test-config.ts';
import { until } from '../helpers/until.ts';

/**
 * The daemon's services fail under load and come back: a PostgreSQL queue restarted (a fast
 * shutdown, then an immediate one: the server's crash), a Redis stopped and started again. Each
 * runs on a private server of the test's own. While a service is down the daemon refuses what it
 * cannot store (451) and /readyz says so; once it is back, the same daemon process takes and
 * delivers mail again without a restart, and every message it answered 250 reaches the sink.
 */

const SESSIONS = 8;
const postgresAvailable = requirePrivatePostgres();
const redisAvailable = requirePrivateRedis();

describe('services restarted under load', () => {
  let dir: TempDir;
  let sink: SmtpSink;
  let daemon: DaemonProcess | undefined;
  let server: PrivateServer | undefined;
  let load: SubmissionLoad | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-service-restarts');
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await load?.stop();
    load = undefined;
    await killDaemon(daemon);
    daemon = undefined;
    await server?.destroy();
    server = undefined;
    await sink.close();
    await dir.remove();
  });

  async function start(extra: ConfigInput): Promise<DaemonProcess> {
    const config = testDaemonConfig({
      dir: dir.path,
      sink,
      extra: {
        ...UNSHAPED,
        ips: [{ address: '127.0.0.2', hostname: 'out.rookery.test' }],
        ...extra,
        // A delivery that failed, or could not start, is tried again within a second.
        delivery: { retry: { initial: '200ms', max: '1s' }, ...extra.delivery },
      },
    });
    daemon = await startDaemonProcess(dir.path, config);
    return daemon;
  }

  const readiness = async () => (await apiGet(daemon!, '/readyz')) as { status: number; body: { checks: Record<string, { ok: boolean; error?: string }> } };

  async function expectEveryAcknowledgedDelivered(): Promise<void> {
    await load!.stop();
    expect(await undelivered(sink, load!.acknowledged, 30_000)).toEqual([]);
    // Recovered in place: the process that saw the fault is the one that delivered.
    expect(daemon!.child.exitCode).toBeNull();
    expect((await apiGet(daemon!, '/healthz')).status).toBe(200);
  }

  it.skipIf(!postgresAvailable)('PostgreSQL restarted twice under load (fast, then immediate): 451 while it is down, nothing acknowledged lost', { timeout: 180_000 }, async () => {
    server = await startPrivatePostgres();
    // A delivery whose rows could not even be handed back while the database was away waits for its
    // lease to run out: a short one keeps that wait short.
    await start({ storage: { driver: 'postgres', url: server.url }, delivery: { lease: '5s' } });
    load = startSubmissionLoad(daemon!.smtp[0]!, { sessions: SESSIONS, prefix: 'pg-restart' });
    await load.moreAcknowledged(100);

    for (const signal of ['SIGINT', 'SIGQUIT'] as const) {
      await server.stop(signal);
      await load.moreRefused(SESSIONS);
      const down = await readiness();
      expect(down.status).toBe(503);
      expect(down.body.checks.storage!.ok).toBe(false);

      await server.start();
      await load.moreAcknowledged(100);
      await until(async () => (await readiness()).status === 200, '/readyz 200 once PostgreSQL is back');
    }
    // What the clients were told while the database was away: try again later, never a bounce.
    expect([...load.refusals.keys()].filter((k) => !k.startsWith('451 4.3.0'))).toEqual([]);
    await expectEveryAcknowledgedDelivered();
  });

  it.skipIf(!redisAvailable)('Redis stopped and started under load: /readyz 503 while it is down, nothing acknowledged lost', { timeout: 120_000 }, async () => {
    server = await startPrivateRedis();
    await start({ redis: { url: server.url } });
    load = startSubmissionLoad(daemon!.smtp[0]!, { sessions: SESSIONS, prefix: 'redis-restart' });
    await load.moreAcknowledged(100);

    await server.stop();
    await until(async () => {
      const r = await readiness();
      return r.status === 503 && r.body.checks.redis?.ok === false;
    }, '/readyz 503 naming Redis');
    // Mail keeps being accepted into the queue: Redis holds counters, not messages.
    await load.moreAcknowledged(50);

    // Deliveries that could not choose an egress IP meanwhile are tried again after
    // delivery.retry.initial, by the same process.
    await server.start();
    await until(async () => (await readiness()).status === 200, '/readyz 200 once Redis is back', 30_000);
    await load.moreAcknowledged(100);
    await expectEveryAcknowledgedDelivered();
  });
});
