import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres.ts';
import { redisUrl, requirePostgres, requireRedis } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const servicesAvailable = (await requirePostgres()) && (await requireRedis());

/**
 * POST and DELETE /v1/ips/{address}/warmup over real HTTP, against a daemon in this process
 * delivering real mail to a loopback sink: a warm IP put on a plan from today is capped by it,
 * an IP whose configured plan is over starts it again, each change is audited with the IP's
 * warm-up before and after, it survives a restart, DELETE returns to the configured plan, and two
 * daemons sharing PostgreSQL and Redis apply each other's.
 */

const resolver = createFixtureResolver({
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'mx.other.test': { a: ['127.0.0.1'] },
});

const operator = generateApiToken();
const admin = generateApiToken();
/** 09:10 UTC; the daemon's clock moves only when the test moves it. */
const T0 = Date.UTC(2026, 10, 1, 9, 10);
const DAY0 = Date.UTC(2026, 10, 1);
const iso = (ms: number) => new Date(ms).toISOString();

const config: ConfigInput = {
  hostname: 'warmup.rookery.test',
  api: {
    listen: { host: '127.0.0.1', port: 0 },
    tokens: [
      { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
      { name: 'auditor', role: 'admin', hash: hashApiToken(admin) },
    ],
  },
  ips: [
    { address: '127.0.0.2' },
    // Its one-day plan ended long ago: warm.
    { address: '127.0.0.3', pool: 'other', warmup: { plan: 'tiny', start: '2026-10-01' } },
  ],
  // 48 a day over 16 active hours: 3 an hour.
  warmup: { plans: { tiny: [48] } },
  delivery: { retry: { initial: '1h', jitter: 0 } },
};

function client(d: Daemon) {
  const { host, port } = d.apiAddress();
  const call = (method: string, path: string, body?: object, token = operator) =>
    fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const ip = async (address: string) => (await (await call('GET', `/v1/ips/${address}`)).json()) as IpJson;
  const ok = async (method: string, path: string, body?: object) => {
    const res = await call(method, path, body);
    expect(res.status, `${method} ${path}: ${res.status}`).toBe(200);
    return (await res.json()) as IpJson;
  };
  return { call, ip, ok };
}

describe('warm-up restarts', () => {
  let dir: TempDir | undefined;
  let sink: SmtpSink | undefined;
  let daemon: Daemon | undefined;
  let other: Daemon | undefined;
  let scratch: ScratchDatabase | undefined;

  afterEach(async () => {
    await daemon?.stop();
    await other?.stop();
    await sink?.close();
    await scratch?.drop();
    await dir?.remove();
    daemon = other = sink = scratch = dir = undefined;
  });

  it('starts a plan from today that caps real deliveries, audited, kept across a restart, and removable', { timeout: 60_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir();
    const clock = manualClock(T0);
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config });
    const { call, ok } = client(daemon);
    const problem = async (res: Response) => ({ status: res.status, ...((await res.json()) as { code: string; errors: Array<{ path: string; message: string }> }) });

    // A warm IP has no plan of its own to restart; a plan must exist.
    expect(await problem(await call('POST', '/v1/ips/127.0.0.2/warmup', { reason: 'new range' }))).toMatchObject({
      status: 400,
      errors: [{ path: 'body.plan', message: 'required: 127.0.0.2 has no warm-up plan configured (ips[].warmup); name one of conservative, transactional, aggressive, tiny' }],
    });
    expect(await problem(await call('POST', '/v1/ips/127.0.0.2/warmup', { plan: 'gentle', reason: 'new range' }))).toMatchObject({ status: 400, errors: [{ path: 'body.plan' }] });
    expect(await problem(await call('POST', '/v1/ips/127.0.0.2/warmup', { plan: 'tiny' }))).toMatchObject({ status: 400, errors: [{ path: 'body.reason' }] });
    expect((await call('POST', '/v1/ips/203.0.113.9/warmup', { plan: 'tiny', reason: 'x' })).status).toBe(404);
    expect((await call('DELETE', '/v1/ips/not-an-ip/warmup')).status).toBe(400);

    const started = await ok('POST', '/v1/ips/127.0.0.2/warmup', { plan: 'tiny', reason: 'moved to a new range' });
    const override = { plan: 'tiny', start: iso(DAY0), by: 'night-shift', reason: 'moved to a new range', setAt: iso(T0) };
    const warming = { plan: 'tiny', configuredStart: iso(DAY0), restartedAt: null, start: iso(DAY0), restartsOnNextSend: false, phase: 'warming', day: 0 };
    expect(started).toMatchObject({ warmupOverride: override, warmup: warming });

    // Five messages: the plan's hour takes three, the other two wait for the next hour.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const to = `user${i}@other.test`;
      ids.push((await daemon.submit({ sender: 'app@default.test', recipients: [to], body: testMessage({ from: 'app@default.test', to, messageId: `<w${i}@t>` }), submitter: null, source: 'http', clientAddress: null })).id);
    }
    await sink.waitForMessages(3, 15_000);
    const waiting = async () => {
      let count = 0;
      for (const id of ids) {
        const message = (await (await call('GET', `/v1/messages/${id}`)).json()) as { recipients: Array<{ events: Array<{ disposition: string; response: string }> }> };
        if (message.recipients[0]!.events.some((e) => e.disposition === 'throttled' && e.response.includes('warmup-cap'))) count++;
      }
      return count;
    };
    await until(async () => (await waiting()) === 2, 'two messages waiting for the warm-up cap');
    expect(sink.messages).toHaveLength(3);
    const capped = await client(daemon).ip('127.0.0.2');
    expect(capped.providers.find((p) => p.provider === 'other')!.warmup).toMatchObject({ hourly: { cap: 3, used: 3 }, daily: { cap: 48, used: 3 } });

    // The audit log has each request, the change with the IP's warm-up before and after.
    const audit = (await (await call('GET', '/v1/audit?route=/v1/ips/:address/warmup', undefined, admin)).json()) as { items: AuditJson[] };
    expect(audit.items.map((e) => [e.method, e.target, e.status, e.outcome])).toEqual([
      ['POST', '127.0.0.2', 200, 'OK'],
      ['DELETE', '/v1/ips/not-an-ip/warmup', 400, 'INVALID_REQUEST'],
      ['POST', '203.0.113.9', 404, 'NOT_FOUND'],
      ['POST', '/v1/ips/127.0.0.2/warmup', 400, 'INVALID_REQUEST'],
      ['POST', '127.0.0.2', 400, 'INVALID_REQUEST'],
      ['POST', '127.0.0.2', 400, 'INVALID_REQUEST'],
    ]);
    expect(audit.items[0]).toMatchObject({ actor: 'night-shift', change: { before: { warmupOverride: null, warmup: null }, after: { warmupOverride: override, warmup: warming } } });

    // An IP whose configured plan is over starts that plan again, from today.
    const again = await ok('POST', '/v1/ips/127.0.0.3/warmup', { reason: 'idle for months' });
    expect(again).toMatchObject({ warmupOverride: { plan: 'tiny', start: iso(DAY0) }, warmup: { plan: 'tiny', configuredStart: iso(DAY0), phase: 'warming', day: 0 } });

    // A restart on the same store: both plans are still in force.
    await daemon.stop();
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config });
    const restarted = client(daemon);
    expect(await restarted.ip('127.0.0.2')).toMatchObject({ warmupOverride: override, warmup: warming });
    expect((await restarted.ip('127.0.0.3')).warmup).toMatchObject({ phase: 'warming', day: 0 });

    // DELETE: back to the configuration, a warm IP and the configured plan (which, the IP having
    // sent nothing since its start a month ago, starts again with its next message).
    expect(await restarted.ok('DELETE', '/v1/ips/127.0.0.2/warmup')).toMatchObject({ warmupOverride: null, warmup: null });
    expect(await restarted.ok('DELETE', '/v1/ips/127.0.0.3/warmup')).toMatchObject({
      warmupOverride: null,
      warmup: { plan: 'tiny', configuredStart: iso(Date.UTC(2026, 9, 1)), restartsOnNextSend: true },
    });
  });

  it.skipIf(!servicesAvailable)("applies on every node sharing PostgreSQL and Redis the other node's warm-up restart and its removal", { timeout: 60_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir();
    scratch = await createScratchDatabase(undefined, 'apiwarmup');
    const shared: ConfigInput = {
      ...config,
      storage: { driver: 'postgres', url: scratch.url },
      redis: { url: redisUrl(), keyPrefix: `rookery-test-${randomBytes(4).toString('hex')}:` },
    };
    daemon = await startTestDaemon({ dir, sink, resolver, config: { ...shared, hostname: 'node-a.rookery.test' } });
    other = await startTestDaemon({ dir, sink, resolver, config: { ...shared, hostname: 'node-b.rookery.test' } });
    const a = client(daemon);
    const b = client(other);

    await a.ok('POST', '/v1/ips/127.0.0.2/warmup', { plan: 'tiny', reason: 'from node a' });
    // Node B sees it once it has re-read pool state (every 10 s).
    await until(async () => (await b.ip('127.0.0.2')).warmupOverride?.reason === 'from node a', "node a's warm-up restart on node b", 20_000);
    expect((await b.ip('127.0.0.2')).warmup).toMatchObject({ plan: 'tiny', phase: 'warming', day: 0 });

    await b.ok('DELETE', '/v1/ips/127.0.0.2/warmup');
    await until(async () => (await a.ip('127.0.0.2')).warmupOverride === null, "node b's removal on node a", 20_000);
  });
});

interface IpJson {
  warmupOverride: { plan: string; start: string; by: string; reason: string; setAt: string } | null;
  warmup: { plan: string; phase: string; day: number | null } | null;
  providers: Array<{ provider: string; warmup: unknown }>;
}

interface AuditJson {
  method: string;
  target: string;
  status: number;
  outcome: string;
  actor: string | null;
  change: unknown;
}
