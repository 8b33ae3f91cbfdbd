import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, hashApiToken } from '../../src/access/api-token.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Daemon } from '../../src/main.ts';
import { createDkimKeyFiles, type DkimKeyFiles } from '../helpers/dkim-keys.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { startTestDaemon } from '../helpers/in-process-daemon.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { testMessage } from '../helpers/submit.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const postgresAvailable = await requirePostgres();

/**
 * GET /v1/explain over real HTTP, against a daemon in this process on SQLite and on PostgreSQL,
 * with DNS from a fixture zone and real deliveries to a loopback sink: the pool and its rule, the
 * MX list or configured route, a lookup failure in the answer, each egress IP with every reason
 * it may not send (weight 0, an operator's suspension, a Gmail throttle, a warm-up cap, a site it
 * cannot reach), the DKIM domain and the VERP return path; and explaining spends nothing a
 * delivery needs.
 */

const viewer = generateApiToken();
const operator = generateApiToken();
/** 09:10 UTC on day 0 of the warming IP's plan; the daemon's clock moves only when the test moves it. */
const T0 = Date.UTC(2026, 10, 1, 9, 10);
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const GMAIL_REPLY = '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.';

const resolver = createFixtureResolver({
  'gmail.test': { mx: [{ exchange: 'aspmx.l.google.com', priority: 5 }] },
  'aspmx.l.google.com': { a: ['127.0.0.1'] },
  'other.test': { mx: [{ exchange: 'mx.other.test', priority: 10 }] },
  'mx.other.test': { a: ['127.0.0.1'] },
  // Nothing listens on 127.0.0.9: every connection is refused.
  'dead.test': { mx: [{ exchange: 'mx.dead.test', priority: 10 }] },
  'mx.dead.test': { a: ['127.0.0.9'] },
  'slow.test': { mx: 'ETIMEOUT' },
});

function config(sink: SmtpSink, keys: DkimKeyFiles): ConfigInput {
  return {
    api: {
      listen: { host: '127.0.0.1', port: 0 },
      tokens: [
        { name: 'dashboard', role: 'viewer', hash: hashApiToken(viewer) },
        { name: 'night-shift', role: 'operator', hash: hashApiToken(operator) },
      ],
    },
    smtp: { users: [{ username: 'alice', password: 'alice-password', allowedSenders: ['*'], pool: 'news', pools: ['default'], tenant: 'acme' }] },
    tenants: { acme: { senderDomains: ['example.test', 'news.test'], pools: ['news', 'default'] }, beta: { senderDomains: ['beta.test'], pools: ['default'] } },
    ips: [
      { address: '127.0.0.2', hostname: 'a.explain.test' },
      { address: '127.0.0.3', hostname: 'b.explain.test', weight: 50 },
      // 48 a day over 16 active hours: 3 an hour.
      { address: '127.0.0.4', hostname: 'c.explain.test', pool: 'news', warmup: { plan: 'tiny', start: '2026-11-01' } },
    ],
    pools: { news: { senders: ['news.test'] } },
    warmup: { plans: { tiny: [48] } },
    dkim: { domains: { 'example.test': { keys: [{ selector: 's2026', privateKey: keys.rsa.path }] } }, workers: 0 },
    returnPath: { secret: 'an-explain-test-secret-of-32-characters', domains: { 'example.test': {} } },
    // A deferred recipient is not tried again within the test.
    delivery: { retry: { initial: '1h', jitter: 0 }, routes: { 'routed.test': `127.0.0.1:${sink.port}` } },
  };
}

describe.each([{ driver: 'sqlite' as const }, { driver: 'postgres' as const }])('GET /v1/explain on $driver', ({ driver }) => {
  const skip = driver === 'postgres' && !postgresAvailable;
  let dir: TempDir;
  let keys: DkimKeyFiles;
  let sink: SmtpSink;
  let scratch: ScratchDatabase | undefined;
  let daemon: Daemon;
  const clock = manualClock(T0);

  beforeAll(async () => {
    if (skip) return;
    dir = await createTempDir();
    keys = await createDkimKeyFiles();
    sink = await startSmtpSink({ script: { onRcptTo: (address) => (address.endsWith('@gmail.test') ? { code: 421, message: GMAIL_REPLY } : undefined) } });
    scratch = driver === 'postgres' ? await createScratchDatabase(undefined, 'explain') : undefined;
    const storage = scratch ? { storage: { driver: 'postgres' as const, url: scratch.url } } : {};
    daemon = await startTestDaemon({ dir, sink, resolver, clock, config: { hostname: `explain-${driver}.rookery.test`, ...config(sink, keys), ...storage } });
  });

  afterAll(async () => {
    if (skip) return;
    await daemon.stop();
    await sink.close();
    await scratch?.drop();
    await keys.remove();
    await dir.remove();
  });

  const call = (method: string, path: string, token = viewer, body?: object) => {
    const { host, port } = daemon.apiAddress();
    return fetch(`http://${host}:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  };
  const explain = async (query: Record<string, string>) => {
    const res = await call('GET', `/v1/explain?${new URLSearchParams(query)}`);
    expect(res.status, JSON.stringify(query)).toBe(200);
    return (await res.json()) as Explanation;
  };
  const ip = (e: Explanation, address: string) => e.egress!.ips.find((i) => i.address === address)!;
  const failing = (e: Explanation, address: string) => ip(e, address).checks.filter((c) => !c.ok).map((c) => c.check);
  const submit = (sender: string, to: string, tag: string) =>
    daemon.submit({ sender, recipients: [to], body: testMessage({ from: sender, to, messageId: `<${tag}@t>` }), submitter: null, source: 'http', clientAddress: null });

  it.skipIf(skip)('explains the pool, the MX route, the egress IPs, the DKIM signature and the return path', async () => {
    const e = await explain({ sender: 'app@example.test', recipient: 'someone@gmail.test' });
    expect(e).toMatchObject({ at: iso(T0), sender: 'app@example.test', recipient: 'someone@gmail.test' });
    expect(e.pool).toEqual({ name: 'default', rule: 'default', requested: null, refused: null, detail: 'pool default: no pool of its user, and no pools.*.senders covers example.test' });
    expect(e.route).toEqual({
      via: 'mx',
      site: 'aspmx.l.google.com',
      provider: 'gmail',
      nextHops: [{ host: '127.0.0.1', port: sink.port, preference: 5, name: 'aspmx.l.google.com' }],
      error: null,
      held: null,
      tls: { mode: 'opportunistic', mtaSts: null, detail: 'opportunistic (delivery.tls); no MTA-STS policy cached (one is looked up at the next delivery)' },
    });
    expect(e.egress).toMatchObject({ pool: 'default', site: 'aspmx.l.google.com', provider: 'gmail', defaultEgress: false, shaping: { maxConnections: 5, maxMessagesPerConnection: 50 } });
    expect(e.egress!.ips.map((i) => [i.address, i.hostname, i.eligible, i.share])).toEqual([
      ['127.0.0.2', 'a.explain.test', true, 100 / 150],
      ['127.0.0.3', 'b.explain.test', true, 50 / 150],
    ]);
    expect(ip(e, '127.0.0.3').weight).toEqual({ configured: 50, base: 50, weight: 50, reason: null });
    expect(ip(e, '127.0.0.2').checks.map((c) => [c.check, c.ok])).toEqual([
      ['weight', true],
      ['rate', true],
    ]);
    expect(ip(e, '127.0.0.2').checks[1]!.detail).toMatch(/^message rate .* per IP and site \(shaping\): a message may go now$/);
    expect(e.dkim).toEqual({
      fromDomain: 'example.test',
      domain: 'example.test',
      source: 'domain',
      selectors: ['s2026'],
      detail: "signed with d=example.test, its own key: s2026 (rsa-sha256) (assuming the From header's domain is example.test)",
    });
    expect(e.returnPath).toMatchObject({ verp: true, domain: 'bounces.example.test', address: 'b+<queue id>.<recipient id>.<tag>@bounces.example.test' });

    const unsigned = await explain({ sender: 'app@news.test', recipient: 'someone@other.test' });
    expect(unsigned.dkim).toMatchObject({ domain: null, source: 'none', selectors: [] });
    expect(unsigned.returnPath).toMatchObject({ verp: false, domain: null, address: 'app@news.test' });
    expect(unsigned.route).toMatchObject({ via: 'mx', site: 'mx.other.test', provider: 'other' });
    // No policy of other.test is cached, and none is fetched to answer.
    expect(unsigned.route.tls).toEqual({ mode: 'opportunistic', mtaSts: null, detail: 'opportunistic (delivery.tls); no MTA-STS policy cached (one is looked up at the next delivery)' });
  });

  it.skipIf(skip)('names the rule that chose the pool, and refuses a user or pool it does not know', async () => {
    const pool = async (query: Record<string, string>) => (await explain({ sender: 'app@example.test', recipient: 'x@other.test', ...query })).pool;
    expect(await pool({ sender: 'app@news.test' })).toMatchObject({ name: 'news', rule: 'sender', detail: 'pool news: pools.news.senders covers the sender\'s domain news.test' });
    expect(await pool({ user: 'alice' })).toMatchObject({ name: 'news', rule: 'user', refused: null });
    expect(await pool({ user: 'alice', pool: 'default' })).toMatchObject({ name: 'default', rule: 'header', requested: 'default', refused: null });
    // Without a user a message cannot choose its pool: the request is ignored, and the answer says so.
    const unasked = await pool({ pool: 'news' });
    expect(unasked).toMatchObject({ name: 'default', rule: 'default', requested: 'news', refused: 'news' });
    expect(unasked.detail).toContain('X-Rookery-Pool: news is ignored: only a user that may use a pool can ask for it');
    const news = await explain({ sender: 'app@news.test', recipient: 'x@other.test' });
    expect(news.egress!.ips.map((i) => i.address)).toEqual(['127.0.0.4']);
    expect(news.tenant).toBeNull();

    // A tenant keeps the choice within its pools, as at acceptance, and says whether the sender is its.
    const beta = await explain({ sender: 'app@news.test', recipient: 'x@other.test', tenant: 'beta' });
    // pools.news.senders covers news.test, but news is not one of beta's pools.
    expect(beta.pool).toMatchObject({ name: 'default', rule: 'default' });
    expect((await explain({ sender: 'app@news.test', recipient: 'x@other.test', tenant: 'beta', user: 'alice' })).pool).toMatchObject({ name: 'default', rule: 'tenant' });
    expect(beta.tenant).toEqual({ name: 'beta', senderAllowed: false, detail: 'tenant beta may not send as app@news.test: refused at acceptance (senderDomains: beta.test)' });
    expect(beta.egress!.ips.map((i) => i.address)).toEqual(['127.0.0.2', '127.0.0.3']);
    // A user's tenant applies when none is named.
    expect((await explain({ sender: 'app@news.test', recipient: 'x@other.test', user: 'alice' })).tenant).toMatchObject({ name: 'acme', senderAllowed: true });

    const problem = async (query: string) => {
      const res = await call('GET', `/v1/explain?${query}`);
      return { status: res.status, ...((await res.json()) as { code: string; errors: Array<{ path: string; message: string }> }) };
    };
    const cases: Array<[string, string]> = [
      ['sender=app@example.test', 'querystring.recipient'],
      ['sender=nobody&recipient=x@other.test', 'querystring.sender'],
      ['sender=app@example.test&recipient=x@', 'querystring.recipient'],
      ['sender=app@example.test&recipient=x@other.test&user=mallory', 'querystring.user'],
      ['sender=app@example.test&recipient=x@other.test&pool=vip', 'querystring.pool'],
      ['sender=app@example.test&recipient=x@other.test&tenant=nobody', 'querystring.tenant'],
    ];
    for (const [query, path] of cases) {
      expect(await problem(query), query).toMatchObject({ status: 400, code: 'INVALID_REQUEST', errors: [expect.objectContaining({ path })] });
    }
    expect((await problem('sender=a@example.test&recipient=x@other.test&user=mallory')).errors[0]!.message).toBe('no SMTP user "mallory" (smtp.users[].username: alice)');
    expect((await problem('sender=a@example.test&recipient=x@other.test&tenant=nobody')).errors[0]!.message).toBe('no tenant "nobody" (tenants: acme, beta)');
    expect((await call('GET', '/v1/explain?sender=a@example.test&recipient=x@other.test', 'not-a-token')).status).toBe(401);
  });

  it.skipIf(skip)('reports a failed lookup in the answer, and a configured route', async () => {
    const timedOut = await explain({ sender: 'app@example.test', recipient: 'x@slow.test' });
    expect(timedOut.route).toEqual({
      via: null,
      site: null,
      provider: null,
      nextHops: [],
      error: { disposition: 'transient', enhanced: '4.4.3', message: 'MX lookup for slow.test failed (ETIMEOUT)' },
      held: null,
      tls: null,
    });
    expect(timedOut.egress).toBeNull();
    expect(timedOut.dkim.domain).toBe('example.test');
    const missing = await explain({ sender: 'app@example.test', recipient: 'x@nowhere.test' });
    expect(missing.route.error).toEqual({ disposition: 'permanent', enhanced: '5.1.2', message: 'domain nowhere.test does not exist (NXDOMAIN)' });

    const routed = await explain({ sender: 'app@example.test', recipient: 'x@routed.test' });
    expect(routed.route).toMatchObject({ via: 'route', site: `route:127.0.0.1:${sink.port}`, provider: 'other', nextHops: [{ host: '127.0.0.1', port: sink.port, preference: 0, name: '127.0.0.1' }] });
    expect(routed.egress!.ips.every((i) => i.eligible)).toBe(true);
    expect(routed.route.tls).toMatchObject({ mode: 'opportunistic', mtaSts: null, detail: 'opportunistic (delivery.tls); MTA-STS does not apply to a configured route' });
  });

  it.skipIf(skip)('reports every reason an IP may not send, and explaining spends nothing a delivery needs', { timeout: 60_000 }, async () => {
    // Warm-up: 127.0.0.4 may send 3 messages this hour. Explaining five times takes none of them.
    const news = { sender: 'app@news.test', recipient: 'x@other.test' };
    for (let i = 0; i < 5; i++) expect(ip(await explain(news), '127.0.0.4').checks.find((c) => c.check === 'warmup')).toMatchObject({ ok: true, detail: 'warm-up plan tiny, day 0: 0 of 3 this hour, 0 of 48 this day' });
    for (let i = 0; i < 3; i++) await submit('app@news.test', `n${i}@other.test`, `n${driver}${i}`);
    await sink.waitForMessages(3, 15_000);
    const capped = ip(await explain(news), '127.0.0.4');
    const nextHour = Date.UTC(2026, 10, 1, 10);
    expect(capped).toMatchObject({ eligible: false, share: 0 });
    expect(capped.checks.find((c) => c.check === 'warmup')).toEqual({
      check: 'warmup',
      ok: false,
      detail: `warm-up plan tiny, day 0: 3 of 3 this hour, 3 of 48 this day: cap reached until ${iso(nextHour)}`,
      retryAt: iso(nextHour),
      restriction: null,
      warmup: {
        plan: 'tiny',
        start: iso(Date.UTC(2026, 10, 1)),
        phase: 'warming',
        day: 0,
        restartsOnNextSend: false,
        hourly: { cap: 3, used: 3, windowStart: iso(Date.UTC(2026, 10, 1, 9)), windowEnd: iso(nextHour) },
        daily: { cap: 48, used: 3, windowStart: iso(Date.UTC(2026, 10, 1)), windowEnd: iso(Date.UTC(2026, 10, 2)) },
      },
    });
    const ips = (await (await call('GET', '/v1/ips/127.0.0.4')).json()) as { providers: Array<{ provider: string; warmup: { hourly: { used: number } } }> };
    expect(ips.providers.find((p) => p.provider === 'other')!.warmup.hourly.used).toBe(3);

    // Weight 0 on 127.0.0.3: out of rotation, whatever else allows.
    expect((await call('PUT', '/v1/ips/127.0.0.3/weight', operator, { weight: 0, reason: 'draining' })).status).toBe(200);
    const gmail = { sender: 'app@example.test', recipient: 'x@gmail.test' };
    const drained = ip(await explain(gmail), '127.0.0.3');
    expect(drained).toMatchObject({ eligible: false, share: 0, weight: { configured: 50, base: 0, weight: 0 } });
    expect(drained.checks[0]).toMatchObject({ check: 'weight', ok: false, detail: 'weight 0, set by night-shift (draining) in place of the configured 50: out of rotation' });

    // Gmail answers 4.7.28 to 127.0.0.2: the built-in rule throttles it to 60/h toward Gmail. The
    // throttle's one token is there; explaining it five times leaves it for the next delivery.
    await submit('app@example.test', 'first@gmail.test', `g1${driver}`);
    await until(async () => ip(await explain(gmail), '127.0.0.2').checks.some((c) => c.check === 'throttled'), 'the throttle toward gmail');
    for (let i = 0; i < 5; i++) expect(ip(await explain(gmail), '127.0.0.2').checks.find((c) => c.check === 'throttled')).toMatchObject({ ok: true });
    const second = await submit('app@example.test', 'second@gmail.test', `g2${driver}`);
    await until(async () => {
      const message = (await (await call('GET', `/v1/messages/${second.id}`)).json()) as { recipients: Array<{ events: Array<{ response: string }> }> };
      return message.recipients[0]!.events.some((event) => event.response.includes('4.7.28'));
    }, 'the second message tried through the throttle');
    const throttled = ip(await explain(gmail), '127.0.0.2');
    expect(throttled.eligible).toBe(false);
    expect(throttled.checks.find((c) => c.check === 'throttled')).toMatchObject({
      ok: false,
      retryAt: iso(T0 + 60_000),
      restriction: { scope: 'provider', provider: 'gmail', action: 'throttle', ratePerHour: 60, rule: 'gmail-unusual-rate', by: null, until: iso(T0 + HOUR) },
    });

    // An operator's suspension beside the throttle: every reason is listed, the suspension first.
    expect((await call('POST', '/v1/ips/127.0.0.2/suspend', operator, { provider: 'gmail', for: '2h', reason: 'postmaster ticket' })).status).toBe(200);
    const all = await explain(gmail);
    expect(failing(all, '127.0.0.2')).toEqual(['suspended', 'throttled']);
    expect(ip(all, '127.0.0.2').checks.find((c) => c.check === 'suspended')).toMatchObject({
      detail: `suspended for gmail until ${iso(T0 + 2 * HOUR)} by night-shift: postmaster ticket`,
      retryAt: iso(T0 + 2 * HOUR),
      restriction: { rule: 'operator', by: 'night-shift', reason: 'postmaster ticket' },
    });
    expect(failing(all, '127.0.0.3')).toEqual(['weight']);
    // Other providers are not held by Gmail's restrictions.
    expect(ip(await explain({ sender: 'app@example.test', recipient: 'x@other.test' }), '127.0.0.2')).toMatchObject({ eligible: true, share: 1 });
    expect((await call('POST', '/v1/ips/127.0.0.2/resume', operator, {})).status).toBe(200);
  });

  it.skipIf(skip)('reports a site no egress IP can reach: the path down, and the site held', { timeout: 30_000 }, async () => {
    const dead = { sender: 'app@example.test', recipient: 'x@dead.test' };
    await submit('app@example.test', 'one@dead.test', `d1${driver}`);
    await until(async () => failing(await explain(dead), '127.0.0.2').includes('unreachable'), 'the path to mx.dead.test down');
    const down = ip(await explain(dead), '127.0.0.2').checks.find((c) => c.check === 'unreachable')!;
    expect(down).toMatchObject({
      ok: false,
      detail: `cannot reach the site since ${iso(T0)} (connection refused by mx.dead.test); next probe at ${iso(T0 + 60_000)}`,
      retryAt: iso(T0 + 60_000),
    });
    // The next message finds no IP that can reach the site: the site is held as a whole.
    await submit('app@example.test', 'two@dead.test', `d2${driver}`);
    await until(async () => (await explain(dead)).route.held !== null, 'the site held');
    expect((await explain(dead)).route.held).toMatchObject({ since: iso(T0), until: iso(T0 + HOUR) });
  });
});

interface Check {
  check: string;
  ok: boolean;
  detail: string;
  retryAt: string | null;
  restriction: unknown;
  warmup: unknown;
}

interface Explanation {
  at: string;
  tenant: { name: string; senderAllowed: boolean; detail: string } | null;
  pool: { name: string; rule: string; requested: string | null; refused: string | null; detail: string };
  route: {
    via: string | null;
    site: string | null;
    provider: string | null;
    nextHops: unknown[];
    error: unknown;
    held: { since: string; until: string; reason: string } | null;
    tls: { mode: string; mtaSts: unknown; detail: string } | null;
  };
  egress: { ips: Array<{ address: string; hostname: string; eligible: boolean; share: number; weight: object; checks: Check[] }> } | null;
  dkim: { domain: string | null };
  returnPath: unknown;
}
