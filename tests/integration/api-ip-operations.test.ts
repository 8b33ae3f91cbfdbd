import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
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
 * off an IP and a resume brings it back, weight 0 drains an IP, both survive a restart on the
 * same store, a resume leaves a reaction's restriction alone, and two daemons sharing
 * PostgreSQL and Redis apply each other's changes.
 */

const resolver = createFixtureResolver({
  'gmail.test': { mx: [{ exchange: 'aspmx.l.google.com', priority: 5 }] },
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'aspmx.l.google.com': { a: ['127.0.0.1'] },
  'mx.other.test': { a: ['127.0.0.1'] },
});

const operator = generateApiToken();
const viewer = generateApiToken();
const GMAIL_REPLY = '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.';

const config: ConfigInput = {
  hostname: 'ops.rookery.test',
  api: {
    listen: { host: '127.0.0.1', port: 0 },
    tokens: [
      { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
      { name: 'dashboard', role: 'viewer', hash: hashApiToken(viewer) },
    ],
  },
  ips: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }],
  // A deferred recipient is not tried again within the test.
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

  it.skipIf(!servicesAvailable)("applies on every node sharing PostgreSQL and Redis the other node's suspension and weight", { timeout: 60_000 }, async () => {
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
    // Node B sees both once it has re-read pool state (every 10 s).
    await until(async () => (await b.ip('127.0.0.3')).restrictions.some((r) => r.by === 'night-shift'), "node a's suspension on node b", 20_000);
    await until(async () => (await b.ip('127.0.0.2')).weightOverride?.weight === 7, "node a's weight on node b", 20_000);
    expect((await b.ip('127.0.0.2')).providers.every((p) => p.effectiveWeight === 7)).toBe(true);

    // Node B resumes: node A applies it too, though node A set the suspension.
    await b.ok('POST', '/v1/ips/127.0.0.3/resume', {});
    await until(async () => (await a.ip('127.0.0.3')).restrictions.length === 0, "node b's resume on node a", 20_000);
  });
});

interface IpJson {
  address: string;
  weight: number;
  weightOverride: { weight: number; by: string; reason: string; setAt: string } | null;
  restrictions: Array<{ rule: string; action: string; provider: string | null; by: string | null; reason: string; until: string }>;
  providers: Array<{ provider: string; effectiveWeight: number }>;
}
