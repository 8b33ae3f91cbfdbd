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
 * The operator's run-time changes to egress IPs over real HTTP, against a daemon in this
 * process delivering real mail to a loopback sink from two egress IPs: a suspension keeps mail
 * off an IP and a resume brings it back, weight 0 drains an IP, a warm-up plan started from today
 * caps it, each survives a restart on the same store, a resume leaves a reaction's restriction
 * alone, changes are audited with what they changed, and two daemons sharing PostgreSQL and
 * Redis apply each other's changes.
 */

const resolver = createFixtureResolver({
  'gmail.test': { mx: [{ exchange: 'aspmx.l.google.com', priority: 5 }] },
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'aspmx.l.google.com': { a: ['127.0.0.1'] },
  'mx.other.test': { a: ['127.0.0.1'] },
});

const operator = generateApiToken();
const viewer = generateApiToken();
const admin = generateApiToken();
const GMAIL_REPLY = '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.';

const config: ConfigInput = {
  hostname: 'ops.rookery.test',
  api: {
    listen: { host: '127.0.0.1', port: 0 },
    tokens: [
      { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
      { name: 'dashboard', role: 'viewer', hash: hashApiToken(viewer) },
      { name: 'auditor', role: 'admin', hash: hashApiToken(admin) },
    ],
  },
  ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
  // A deferred recipient is not tried again within the test.
  delivery: { retry: { initial: '1h', jitter: 0 } },
};

/** 09:10 UTC, for the warm-up tests; their daemon's clock moves only when the test moves it. */
const T0 = Date.UTC(2026, 10, 1, 9, 10);
const DAY0 = Date.UTC(2026, 10, 1);
const iso = (ms: number) => new Date(ms).toISOString();

/** A warm IP, and one whose one-day plan ended long ago; 48 a day over 16 active hours is 3 an hour. */
const warmupConfig: ConfigInput = {
  ...config,
  hostname: 'warmup.rookery.test',
  ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3', pool: 'other', warmup: { plan: 'tiny', start: '2026-10-01' } }],
  warmup: { plans: { tiny: [48] } },
};

function client(d: Daemon) {
  const { host, port } = d.apiAddress();
  const call = (method: string, path: string, body?: object, token = operator) =>
    fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const ip = async (address: string) => (await (await call('GET', `/v1/ips/${address}`, undefined, viewer)).json()) as IpJson;
  const ok = async (method: string, path: string, body?: object) => {
    const res = await call(method, path, body);
    expect(res.status, `${method} ${path}: ${res.status}`).toBe(200);
    return (await res.json()) as IpJson;
  };
  return { call, ip, ok };
}

/** Submits `count` messages to other.test and waits until the sink has them; the source addresses they came from. */
async function deliver(d: Daemon, sink: SmtpSink, count: number, tag: string): Promise<string[]> {
  const before = sink.messages.length;
  for (let i = 0; i < count; i++) {
    const to = `${tag}${i}@other.test`;
    await d.submit({ sender: 'app@default.test', recipients: [to], body: testMessage({ from: 'app@default.test', to, messageId: `<${tag}${i}@t>` }), submitter: null, source: 'http', clientAddress: null });
  }
  await sink.waitForMessages(before + count, 15_000);
  return sink.messages.slice(before).map((m) => m.remoteAddress);
}

describe('IP operations', () => {
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

  it('suspends, resumes and drains an IP for real deliveries, and the changes survive a restart', { timeout: 60_000 }, async () => {
    sink = await startSmtpSink({ script: { onRcptTo: (address) => (address.endsWith('@gmail.test') ? { code: 421, message: GMAIL_REPLY } : undefined) } });
    dir = await createTempDir();
    daemon = await startTestDaemon({ dir, sink, resolver, config });
    const { ok, ip } = client(daemon);

    // Both IPs send while nothing is set.
    expect(new Set(await deliver(daemon, sink, 4, 'both'))).toEqual(new Set(['127.0.0.2', '127.0.0.3']));

    const suspended = await ok('POST', '/v1/ips/127.0.0.3/suspend', { for: '2h', reason: 'listed at a blocklist' });
    expect(suspended.restrictions).toEqual([
      { scope: 'all', provider: null, site: null, action: 'suspend', ratePerHour: null, rule: 'operator', by: 'night-shift', reason: 'listed at a blocklist', until: expect.any(String) },
    ]);
    const end = Date.parse(suspended.restrictions[0]!.until);
    expect(end - Date.now()).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(end - Date.now()).toBeLessThanOrEqual(2 * 3_600_000);
    expect(await deliver(daemon, sink, 4, 'suspended')).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.2']);

    const resumed = await ok('POST', '/v1/ips/127.0.0.3/resume', {});
    expect(resumed.restrictions).toEqual([]);
    expect(new Set(await deliver(daemon, sink, 4, 'resumed'))).toEqual(new Set(['127.0.0.2', '127.0.0.3']));

    // Weight 0 on .2: it takes no new mail.
    const drained = await ok('PUT', '/v1/ips/127.0.0.2/weight', { weight: 0, reason: 'moving to another host' });
    expect(drained).toMatchObject({ weight: 100, weightOverride: { weight: 0, by: 'night-shift', reason: 'moving to another host' } });
    expect(drained.providers.every((p) => p.effectiveWeight === 0)).toBe(true);
    expect(await deliver(daemon, sink, 3, 'drained')).toEqual(['127.0.0.3', '127.0.0.3', '127.0.0.3']);

    // A reaction's restriction (Gmail's 4.7.28 throttles .3 toward gmail), and an operator's
    // suspension of .3 toward gmail beside it: a resume for gmail ends the operator's only.
    await daemon.submit({ sender: 'app@default.test', recipients: ['u@gmail.test'], body: testMessage({ from: 'app@default.test', to: 'u@gmail.test', messageId: '<g@t>' }), submitter: null, source: 'http', clientAddress: null });
    await until(async () => (await ip('127.0.0.3')).restrictions.some((r) => r.rule === 'gmail-unusual-rate'), 'the throttle toward gmail');
    const both = await ok('POST', '/v1/ips/127.0.0.3/suspend', { provider: 'gmail', until: new Date(Date.now() + 3_600_000).toISOString(), reason: 'gmail postmaster asked' });
    expect(both.restrictions.map((r) => [r.rule, r.action, r.provider, r.by])).toEqual(
      expect.arrayContaining([
        ['gmail-unusual-rate', 'throttle', 'gmail', null],
        ['operator', 'suspend', 'gmail', 'night-shift'],
      ]),
    );

    // A restart on the same store: the weight and the operator's suspension are still there.
    await daemon.stop();
    daemon = await startTestDaemon({ dir, sink, resolver, config });
    const restarted = client(daemon);
    const afterRestart = await restarted.ip('127.0.0.2');
    expect(afterRestart.weightOverride).toMatchObject({ weight: 0, by: 'night-shift' });
    expect((await restarted.ip('127.0.0.3')).restrictions.find((r) => r.rule === 'operator')).toMatchObject({ provider: 'gmail', reason: 'gmail postmaster asked' });
    expect(await deliver(daemon, sink, 2, 'restarted')).toEqual(['127.0.0.3', '127.0.0.3']);

    const gmailResumed = await restarted.ok('POST', '/v1/ips/127.0.0.3/resume', { provider: 'gmail' });
    expect(gmailResumed.restrictions.map((r) => r.rule)).toEqual(['gmail-unusual-rate']);

    // Back to the configured weight: .2 sends again.
    const configured = await restarted.ok('DELETE', '/v1/ips/127.0.0.2/weight');
    expect(configured.weightOverride).toBeNull();
    expect(configured.providers.every((p) => p.effectiveWeight === 100)).toBe(true);
    expect(new Set(await deliver(daemon, sink, 4, 'configured'))).toEqual(new Set(['127.0.0.2', '127.0.0.3']));
  });

  it('refuses bad requests with a problem naming the path, and unknown IPs with 404', { timeout: 30_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir();
    daemon = await startTestDaemon({ dir, sink, resolver, config });
    const { call } = client(daemon);
    const problem = async (res: Response) => ({ status: res.status, ...((await res.json()) as { code: string; detail: string; errors?: Array<{ path: string }> }) });

    const cases: Array<[string, string, object | undefined, string]> = [
      ['POST', '/v1/ips/127.0.0.2/suspend', { reason: 'x' }, 'body'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: '1h', until: '2099-01-01T00:00:00Z', reason: 'x' }, 'body'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: 'soon', reason: 'x' }, 'body.for'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { until: '2001-01-01T00:00:00Z', reason: 'x' }, 'body.until'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { until: 'tomorrow', reason: 'x' }, 'body.until'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: '1h' }, 'body.reason'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: '1h', reason: 'x', provider: 'hotmale' }, 'body.provider'],
      ['POST', '/v1/ips/127.0.0.2/resume', { provider: 'hotmale' }, 'body.provider'],
      ['POST', '/v1/ips/127.0.0.2/resume', { everything: true }, 'body.everything'],
      ['PUT', '/v1/ips/127.0.0.2/weight', { weight: -1, reason: 'x' }, 'body.weight'],
      ['PUT', '/v1/ips/127.0.0.2/weight', { weight: 2.5, reason: 'x' }, 'body.weight'],
      ['PUT', '/v1/ips/127.0.0.2/weight', { weight: 10 }, 'body.reason'],
      ['PUT', '/v1/ips/not-an-ip/weight', { weight: 10, reason: 'x' }, 'params.address'],
      // A zone id names an interface, not an egress address.
      ['POST', '/v1/ips/fe80::1%25eth0/suspend', { for: '1h', reason: 'x' }, 'params.address'],
      // At most a year: a later end would be a date the API cannot show, on every node.
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: '100000000d', reason: 'x' }, 'body.for'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { until: '9999-12-31T23:59:59Z', reason: 'x' }, 'body.until'],
      ['POST', '/v1/ips/127.0.0.2/suspend', { for: '1h', reason: 'x', provider: 'g'.repeat(200) }, 'body.provider'],
    ];
    for (const [method, path, body, errorPath] of cases) {
      const res = await problem(await call(method, path, body));
      expect(res, `${method} ${path} ${JSON.stringify(body)}`).toMatchObject({ status: 400, code: 'INVALID_REQUEST', errors: [expect.objectContaining({ path: errorPath })] });
    }
    const unknown = await problem(await call('POST', '/v1/ips/203.0.113.9/suspend', { for: '1h', reason: 'x' }));
    expect(unknown).toMatchObject({ status: 404, code: 'NOT_FOUND', detail: 'No egress IP 203.0.113.9 is configured (ips[].address)' });
    expect((await call('DELETE', '/v1/ips/203.0.113.9/weight')).status).toBe(404);
    expect((await problem(await call('GET', '/v1/ips/fe80::1%25eth0'))).status).toBe(400);
    // Nothing was changed by any of them.
    const { ips } = (await (await call('GET', '/v1/ips')).json()) as { ips: IpJson[] };
    expect(ips.map((i) => [i.restrictions, i.weightOverride])).toEqual([[[], null], [[], null]]);
  });

  it.skipIf(!servicesAvailable)("applies on every node sharing PostgreSQL and Redis the other node's suspension, weight and warm-up restart", { timeout: 60_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir();
    scratch = await createScratchDatabase(undefined, 'apiipops');
    const shared: ConfigInput = {
      ...config,
      storage: { driver: 'postgres', url: scratch.url },
      redis: { url: redisUrl(), keyPrefix: `rookery-test-${randomBytes(4).toString('hex')}:` },
    };
    daemon = await startTestDaemon({ dir, sink, resolver, config: { ...shared, hostname: 'node-a.rookery.test' } });
    other = await startTestDaemon({ dir, sink, resolver, config: { ...shared, hostname: 'node-b.rookery.test' } });
    const a = client(daemon);
    const b = client(other);

    await a.ok('POST', '/v1/ips/127.0.0.3/suspend', { for: '1h', reason: 'from node a' });
    await a.ok('PUT', '/v1/ips/127.0.0.2/weight', { weight: 7, reason: 'from node a' });
    await a.ok('POST', '/v1/ips/127.0.0.2/warmup', { plan: 'conservative', reason: 'from node a' });
    // Node B sees them once it has re-read pool state (every 10 s).
    await until(async () => (await b.ip('127.0.0.3')).restrictions.some((r) => r.by === 'night-shift'), "node a's suspension on node b", 20_000);
    await until(async () => (await b.ip('127.0.0.2')).weightOverride?.weight === 7, "node a's weight on node b", 20_000);
    expect((await b.ip('127.0.0.2')).providers.every((p) => p.effectiveWeight === 7)).toBe(true);
    expect(await b.ip('127.0.0.2')).toMatchObject({ warmupOverride: { plan: 'conservative', by: 'night-shift' }, warmup: { plan: 'conservative', phase: 'warming', day: 0 } });

    // Node B resumes: node A applies it too, though node A set the suspension.
    await b.ok('POST', '/v1/ips/127.0.0.3/resume', {});
    await b.ok('DELETE', '/v1/ips/127.0.0.2/warmup');
    await until(async () => (await a.ip('127.0.0.3')).restrictions.length === 0, "node b's resume on node a", 20_000);
    await until(async () => (await a.ip('127.0.0.2')).warmupOverride === null, "node b's warm-up removal on node a", 20_000);
  });

  it('starts a plan from today that caps real deliveries, audited, kept across a restart, and removable', { timeout: 60_000 }, async () => {
    sink = await startSmtpSink();
    dir = await createTempDir();
    const clock = manualClock(T0);
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config: warmupConfig });
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
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config: warmupConfig });
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
});

interface IpJson {
  address: string;
  weight: number;
  weightOverride: { weight: number; by: string; reason: string; setAt: string } | null;
  warmupOverride: { plan: string; start: string; by: string; reason: string; setAt: string } | null;
  warmup: { plan: string; phase: string; day: number | null } | null;
  restrictions: Array<{ rule: string; action: string; provider: string | null; by: string | null; reason: string; until: string }>;
  providers: Array<{ provider: string; effectiveWeight: number; warmup: unknown }>;
}

interface AuditJson {
  method: string;
  target: string;
  status: number;
  outcome: string;
  actor: string | null;
  change: unknown;
}
