import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { formatDate } from '../../src/ippool/warmup.ts';
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
 * GET /v1/ips over real HTTP, against a daemon in this process that delivered real mail to a
 * loopback sink: the restriction a Gmail reply made, the recovery ramp after it, the warm-up
 * usage of a warming IP, reputation from the deliveries, an IPv6 address in the path.
 */

const resolver = createFixtureResolver({
  'gmail.test': { mx: [{ exchange: 'aspmx.l.google.com', priority: 5 }] },
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'aspmx.l.google.com': { a: ['127.0.0.1'] },
  'mx.other.test': { a: ['127.0.0.1'] },
});

const viewer = generateApiToken();
const sender = generateApiToken();
/** 09:10 UTC on day 0 of the warming IP's plan; the daemon's clock moves only when the test moves it. */
const T0 = Date.UTC(2026, 10, 1, 9, 10);
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const GMAIL_REPLY = '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.';

/** Two pools: 127.0.0.2 for default.test's mail, 127.0.0.3 (warming, 3 an hour and 48 a day) for warming.test's; and an IPv6 address no mail uses. */
function ipsConfig(planStart: string): ConfigInput {
  return {
    api: {
      listen: { host: '127.0.0.1', port: 0 },
      tokens: [
        { name: 'ops', role: 'viewer', hash: hashApiToken(viewer) },
        { name: 'app', role: 'sender', tenant: 'app', hash: hashApiToken(sender) },
      ],
    },
    tenants: { app: { senderDomains: ['*'] } },
    ips: [
      { address: '127.0.0.2', hostname: 'a.ips.rookery.test' },
      // 48 a day over 16 active hours: 3 an hour.
      { address: '127.0.0.3', pool: 'warming', weight: 50, warmup: { plan: 'tiny', start: planStart } },
      { address: '2001:db8::7', pool: 'v6' },
    ],
    pools: { warming: { senders: ['warming.test'] } },
    warmup: { plans: { tiny: [48] } },
    reputation: { minSamples: 1 },
    // A deferred recipient is not tried again within the test.
    delivery: { retry: { initial: '1h', jitter: 0 } },
  };
}

/** Gmail answers 4.7.28: the built-in rule throttles the IP to 60/h toward gmail for an hour. */
const gmailSink = () => startSmtpSink({ script: { onRcptTo: (address) => (address.endsWith('@gmail.test') ? { code: 421, message: GMAIL_REPLY } : undefined) } });

function submitter(d: Daemon) {
  return (from: string, to: string, i: number) =>
    d.submit({ sender: from, recipients: [to], body: testMessage({ from, to, messageId: `<${i}.${to}>` }), submitter: null, source: 'http', clientAddress: null });
}

function client(d: Daemon) {
  const { host, port } = d.apiAddress();
  const get = (path: string, token = viewer) => fetch(`http://${host}:${port}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const ips = async () => ((await (await get('/v1/ips')).json()) as { ips: IpJson[] }).ips;
  return { get, ips };
}

const provider = (ip: IpJson, name: string) => ip.providers.find((p) => p.provider === name)!;

describe('GET /v1/ips', () => {
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

  it('reports the restriction, reputation, warm-up usage and recovery ramp that real deliveries produced', { timeout: 30_000 }, async () => {
    sink = await gmailSink();
    dir = await createTempDir();
    const clock = manualClock(T0);
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config: { hostname: 'ips.rookery.test', ...ipsConfig('2026-11-01') } });
    const submit = submitter(daemon);
    for (let i = 0; i < 4; i++) await submit('app@default.test', `user${i}@other.test`, i);
    for (let i = 0; i < 2; i++) await submit('app@warming.test', `warm${i}@other.test`, 10 + i);
    await submit('app@default.test', 'user@gmail.test', 20);
    await sink.waitForMessages(6, 15_000);

    const { get, ips: ipsNow } = client(daemon);
    await until(async () => (await ipsNow())[0]!.restrictions.length > 0, 'the throttle toward gmail');

    const [a, warming, v6] = await ipsNow();
    const fromA = sink.messages.filter((m) => m.remoteAddress === '127.0.0.2').length;
    expect(fromA).toBe(4);
    expect(sink.messages.filter((m) => m.remoteAddress === '127.0.0.3')).toHaveLength(2);

    expect(a).toMatchObject({ address: '127.0.0.2', hostname: 'a.ips.rookery.test', pool: 'default', weight: 100, warmup: null, lastSentAt: iso(T0), recoveries: [] });
    expect(a!.restrictions).toEqual([
      { scope: 'provider', provider: 'gmail', site: null, action: 'throttle', ratePerHour: 60, rule: 'gmail-unusual-rate', by: null, reason: `421 ${GMAIL_REPLY}`, until: iso(T0 + HOUR) },
    ]);
    // Gmail's deferral is all its window holds: score 0, the weight falls to the floor's minimum.
    expect(provider(a!, 'gmail')).toMatchObject({ reputation: { accepted: 0, deferred: 1, blocked: 0, complaints: 0, score: 0 }, effectiveWeight: 1, warmup: null });
    expect(provider(a!, 'gmail').weightReason).toMatch(/^score 0\.00 below floor 0\.70 for gmail: weight 100 -> 1$/);
    expect(provider(a!, 'other')).toMatchObject({ reputation: { accepted: fromA, deferred: 0, score: 1 }, effectiveWeight: 100, weightReason: null });
    expect(a!.providers.at(-1)!.provider).toBe('other');

    expect(warming).toMatchObject({
      address: '127.0.0.3',
      pool: 'warming',
      weight: 50,
      hostname: 'ips.rookery.test',
      warmup: { plan: 'tiny', configuredStart: iso(Date.UTC(2026, 10, 1)), restartedAt: null, start: iso(Date.UTC(2026, 10, 1)), restartsOnNextSend: false, phase: 'warming', day: 0 },
      restrictions: [],
    });
    const hour = Date.UTC(2026, 10, 1, 9);
    expect(provider(warming!, 'other').warmup).toEqual({
      hourly: { cap: 3, used: 2, windowStart: iso(hour), windowEnd: iso(hour + HOUR) },
      daily: { cap: 48, used: 2, windowStart: iso(Date.UTC(2026, 10, 1)), windowEnd: iso(Date.UTC(2026, 10, 2)) },
    });
    expect(provider(warming!, 'gmail').warmup).toMatchObject({ hourly: { cap: 3, used: 0 }, daily: { cap: 48, used: 0 } });

    // No traffic yet: no score (too few samples), the configured weight, nothing restricted.
    expect(v6).toMatchObject({ address: '2001:db8::7', pool: 'v6', lastSentAt: null, restrictions: [], recoveries: [] });
    expect(provider(v6!, 'gmail')).toMatchObject({ reputation: { accepted: 0, score: null }, effectiveWeight: 100 });

    // One IP by address: an IPv6 address in any spelling, sent as is or percent-encoded.
    for (const spelling of ['2001:db8::7', '2001:DB8:0:0:0:0:0:7', '2001%3Adb8%3A%3A7']) {
      const res = await get(`/v1/ips/${spelling}`);
      expect(res.status, spelling).toBe(200);
      expect(await res.json()).toEqual(v6);
    }
    expect(await (await get('/v1/ips/127.0.0.2')).json()).toEqual(a);
    const unknown = await get('/v1/ips/203.0.113.9');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 'NOT_FOUND', detail: 'No egress IP 203.0.113.9 is configured (ips[].address)', instance: '/v1/ips/203.0.113.9' });
    const invalid = await get('/v1/ips/not-an-ip');
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ code: 'INVALID_REQUEST', errors: [{ path: 'params.address', message: 'not an IP address' }] });
    expect((await get('/v1/ips', sender)).status).toBe(403);

    // The hour passes: the throttle has ended and the ramp back begins at its rate, 60/h,
    // doubling every 15 minutes up to Gmail's normal rate.
    clock.set(T0 + HOUR + 60_000);
    const after = ((await (await get('/v1/ips/127.0.0.2')).json()) as IpJson);
    expect(after.restrictions).toEqual([]);
    expect(after.recoveries).toHaveLength(1);
    const [ramp] = after.recoveries;
    expect(ramp).toMatchObject({ scope: 'provider', provider: 'gmail', site: null, after: 'throttle', endedAt: iso(T0 + HOUR), ratePerHour: 60 });
    expect(ramp!.normalRatePerHour).toBeGreaterThan(60);
    const steps = Math.ceil(Math.log2(ramp!.normalRatePerHour / 60));
    expect(ramp!.endsAt).toBe(iso(T0 + HOUR + steps * 15 * 60_000));
    // A new hour: the warming IP's hourly count starts again, the day's stays.
    const warmingLater = ((await (await get('/v1/ips/127.0.0.3')).json()) as IpJson);
    expect(provider(warmingLater, 'other').warmup).toMatchObject({ hourly: { cap: 3, used: 0 }, daily: { cap: 48, used: 2 } });
  });

  it.skipIf(!servicesAvailable)('shows on every node sharing PostgreSQL and Redis the restriction and the warm-up usage another node caused', { timeout: 40_000 }, async () => {
    sink = await gmailSink();
    dir = await createTempDir();
    scratch = await createScratchDatabase(undefined, 'apiips');
    const shared: ConfigInput = {
      ...ipsConfig(formatDate(Date.now())),
      storage: { driver: 'postgres', url: scratch.url },
      redis: { url: redisUrl(), keyPrefix: `rookery-test-${randomBytes(4).toString('hex')}:` },
    };
    daemon = await startTestDaemon({ dir, sink, resolver, config: { hostname: 'node-a.rookery.test', ...shared } });
    const submit = submitter(daemon);
    for (let i = 0; i < 2; i++) await submit('app@warming.test', `warm${i}@other.test`, i);
    await submit('app@default.test', 'user@gmail.test', 9);
    await sink.waitForMessages(2, 15_000);
    await until(async () => (await client(daemon!).ips())[0]!.restrictions.length > 0, 'the throttle on node A');

    // Node B starts once node A has delivered everything (the deferred Gmail recipient waits an
    // hour), so it delivers nothing itself: what it reports, it read from the shared state.
    other = await startTestDaemon({ dir, sink, resolver, config: { hostname: 'node-b.rookery.test', ...shared } });
    const [a2, warming] = await client(other).ips();
    expect(a2!.restrictions).toEqual([expect.objectContaining({ scope: 'provider', provider: 'gmail', action: 'throttle', rule: 'gmail-unusual-rate' })]);
    // Warm-up counts are shared (Redis): node B reports the two messages node A counted.
    expect(provider(warming!, 'other').warmup).toMatchObject({ daily: { cap: 48, used: 2 } });
    // Reputation is each node's own judgement of its deliveries: node B has seen none.
    expect(provider(a2!, 'gmail').reputation).toMatchObject({ deferred: 0, score: null });
    const [a1] = await client(daemon).ips();
    expect(provider(a1!, 'gmail').reputation).toMatchObject({ deferred: 1, score: 0 });
  });
});

interface IpJson {
  address: string;
  restrictions: unknown[];
  recoveries: Array<{ normalRatePerHour: number; endsAt: string | null }>;
  providers: Array<{ provider: string; weightReason: string | null; warmup: unknown; reputation: unknown }>;
}
