import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { reactionRulesConfigSchema } from '../../src/config/rule-schemas.ts';
import { classifyReply } from '../../src/engine/classify.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import type { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import type { PoolBackend } from '../../src/ippool/contracts.ts';
import { EgressPool, type PoolMember } from '../../src/ippool/egress-pool.ts';
import type { EgressPath } from '../../src/ippool/egress-path.ts';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { counterKeys } from '../../src/ippool/pool-keys.ts';
import { createPoolPolicy } from '../../src/ippool/pool-policy.ts';
import { ReactionEngine, loadReactionRules } from '../../src/ippool/reaction-rules.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { dayIndex, dayWindow, hourWindow, utcDayStart } from '../../src/ippool/warmup.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';

const GMAIL = 'alt1.aspmx.l.google.com,aspmx.l.google.com';
const OTHER = 'mx.dest.test';
/** A small site of `other` too, with an awkward site string: several MX hosts, one an IPv6 literal. */
const TINY = '2001:db8::25,mx.tiny-isp.test';
const T0 = Date.UTC(2026, 10, 1);
const CONSERVATIVE = [50, 100, 200, 400, 800, 1500, 3000, 5000, 7500, 10000, 12500, 15000, 20000, 25000, 30000, 35000, 40000, 45000, 50000, 55000, 60000, 70000, 80000, 90000, 100000, 110000, 120000, 135000, 150000, 175000];

/** A path from `ip` to one of the sites above. */
function path(ip: string, site: string): EgressPath {
  return { ip, site, provider: site === GMAIL ? 'gmail' : 'other' };
}

function member(address: string, extra: Partial<PoolMember> = {}): PoolMember {
  return { address, hostname: `${address}.rookery.test`, pool: 'default', weight: 100, warmup: null, ...extra };
}

describe('egress pool (local backend)', () => {
  let store: Store;
  let clock: ManualClock;
  let metrics: Metrics;
  let backend: PoolBackend;
  let logs: Array<Record<string, unknown>>;

  beforeEach(async () => {
    logs = [];
    clock = manualClock(T0 + 8 * 3_600_000);
    // In memory: these tests make tens of thousands of selections; durability is the store's own suite.
    store = createSqliteStore({ path: ':memory:', clock, logger: createLogger('silent') });
    await store.migrate();
    metrics = new Metrics({ processMetrics: false });
    backend = createPoolBackend({ store, clock });
  });
  afterEach(async () => {
    await store.close();
  });

  async function pool(members: PoolMember[], operatorRules: unknown[] = []): Promise<EgressPool> {
    const policy = createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 });
    const captured = capturingLogger('info');
    logs = captured.logs;
    const p = new EgressPool({
      members,
      backend,
      reputation: createReputationTracker({ windowMs: 3_600_000, minSamples: 20 }),
      reactions: new ReactionEngine(loadReactionRules(join(DEFAULT_CONFIG_DIR, DATA_FILES.reactionRules), reactionRulesConfigSchema.parse(operatorRules))),
      policy,
      paths: new ReadyQueues({ shaping: policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: { interval: 60_000, maxInterval: 600_000 } }),
      defaultEgress: { address: null, hostname: 'mta.rookery.test' },
      clock,
      logger: captured.logger,
      metrics,
    });
    await p.start();
    return p;
  }

  /** Selects `n` times, one second apart, and counts the chosen IPs. */
  async function spread(p: EgressPool, site: string, n: number, previous: string | null = null): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const selection = await p.select({ pool: 'default', site, count: 1, previous });
      const key = selection.ok ? selection.egress.address! : `wait:${selection.reason}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      clock.advance(1000);
    }
    return counts;
  }

  it('follows the weights over 2100 messages; weight 0 gets nothing', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3', { weight: 50 }), member('127.0.0.4', { weight: 25 }), member('127.0.0.5', { weight: 0 })]);
    const counts = await spread(p, OTHER, 2100);
    // Smooth weighted round-robin is exact over whole rounds: 100 : 50 : 25 of 2100.
    expect(Object.fromEntries(counts)).toEqual({ '127.0.0.2': 1200, '127.0.0.3': 600, '127.0.0.4': 300 });
    p.stop();
  });

  it('takes a reloaded setup from the next selection on, keeping what it learned (suspensions, the operator\'s weights)', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    await p.operations.suspend('127.0.0.3', { provider: null, until: clock.now() + 3_600_000, reason: 'listed', by: 'ops' });
    await p.operations.setWeight('127.0.0.2', { weight: 10, reason: 'draining', by: 'ops' });
    p.reconfigure({
      members: [member('127.0.0.2'), member('127.0.0.3'), member('127.0.0.4', { weight: 30 })],
      policy: createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 }),
      reactions: new ReactionEngine([]),
    });
    // 10 : 30 between the overridden IP and the new one; the suspended one stays out.
    expect(Object.fromEntries(await spread(p, OTHER, 40))).toEqual({ '127.0.0.2': 10, '127.0.0.4': 30 });
    expect((await p.snapshot()).map((ip) => [ip.address, ip.weight, ip.weightOverride?.weight ?? null, ip.restrictions.length])).toEqual([
      ['127.0.0.2', 100, 10, 0],
      ['127.0.0.3', 100, null, 1],
      ['127.0.0.4', 30, null, 0],
    ]);
    // An IP the reload removed is no longer the operations' to change.
    p.reconfigure({ members: [member('127.0.0.4')], policy: createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 }), reactions: new ReactionEngine([]) });
    expect(await p.operations.setWeight('127.0.0.2', null)).toEqual({ refused: 'unknown-ip' });
    expect(Object.fromEntries(await spread(p, OTHER, 5))).toEqual({ '127.0.0.4': 5 });
    p.stop();
  });

  it('sends the mail of a pool a reload left without IPs through the default pool: counted, and a warning once per pool and setup', async () => {
    const policy = createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 });
    const p = await pool([member('127.0.0.2'), member('127.0.0.3', { pool: 'bulk' })]);
    const bulk = async () => {
      const selection = await p.select({ pool: 'bulk', site: OTHER, count: 1, previous: '127.0.0.3' });
      return selection.ok ? selection.egress.address : selection.reason;
    };
    expect(await bulk()).toBe('127.0.0.3');
    p.reconfigure({ members: [member('127.0.0.2')], policy, reactions: new ReactionEngine([]) });
    // The IP used before is gone with its pool: the retry goes through the default pool too.
    expect([await bulk(), await bulk()]).toEqual(['127.0.0.2', '127.0.0.2']);
    expect(await metrics.registry.getSingleMetricAsString('rookery_pool_fallbacks_total')).toContain('rookery_pool_fallbacks_total{pool="bulk"} 2');
    const warnings = () => logs.filter((l) => l.event === 'ippool.pool.fallback');
    expect(warnings()).toMatchObject([{ level: 40, pool: 'bulk', instead: 'default', msg: 'pool bulk has no egress IP: its mail goes through pool default' }]);
    // Another reload that leaves it without IPs warns again.
    p.reconfigure({ members: [member('127.0.0.2'), member('127.0.0.4')], policy, reactions: new ReactionEngine([]) });
    expect(await bulk()).toMatch(/^127\.0\.0\.[24]$/);
    expect(warnings()).toHaveLength(2);
    p.stop();
  });

  it('drops every per-IP series of an IP a reload removed from /metrics, and keeps it out at later refreshes of pool state', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const policy = createPoolPolicy(loadPoolData(), { window: 3_600_000, minSamples: 20, floor: 0.7 });
      const gone = member('127.0.0.3', { warmup: { plan: 'conservative', start: utcDayStart(T0) } });
      const p = await pool([member('127.0.0.2'), gone]);
      await spread(p, OTHER, 4);
      const refusal = classifyReply({ code: 554, text: '5.7.1 Service unavailable; client [127.0.0.3] blocked using zen.spamhaus.org', stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: '127.0.0.3' }, BOUNCE_RULES);
      await p.afterDelivery(path('127.0.0.3', OTHER), [refusal]);
      const ipSeries = async (ip: string) =>
        (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith('rookery_ip_') && line.includes(`egress_ip="${ip}"`)).map((line) => line.split('{')[0]);
      // (No reputation score yet: one reply is below minSamples; its inputs are there.)
      expect(new Set(await ipSeries('127.0.0.3'))).toEqual(
        new Set(['rookery_ip_info', 'rookery_ip_attempts_total', 'rookery_ip_warmup_day', 'rookery_ip_warmup_usage', 'rookery_ip_warmup_cap', 'rookery_ip_reputation_inputs', 'rookery_ip_weight', 'rookery_ip_restricted']),
      );

      p.reconfigure({ members: [member('127.0.0.2')], policy, reactions: new ReactionEngine([]) });
      expect(await ipSeries('127.0.0.3')).toEqual([]);
      expect(await ipSeries('127.0.0.2')).toContain('rookery_ip_weight');
      // Its suspension is still in pool state (shared with other nodes): the refresh leaves it out of the gauge.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await ipSeries('127.0.0.3')).toEqual([]);
      p.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps a retry on the IP used before while it is eligible', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    expect(Object.fromEntries(await spread(p, OTHER, 10, '127.0.0.3'))).toEqual({ '127.0.0.3': 10 });
    p.stop();
  });

  it('suspends an IP the host lacks, for every provider; its mail goes to the others', async () => {
    const p = await pool([member('192.0.2.10'), member('127.0.0.3')]);
    const missing = { disposition: 'transient', code: null, enhanced: '4.4.0', response: 'egress address 192.0.2.10 is not configured on this host (EADDRNOTAVAIL)', stage: 'connect', bounceClass: 'egress-unavailable', remoteHost: 'mx.dest.test', egressIp: '192.0.2.10' } as const;
    await p.afterDelivery(path('192.0.2.10', OTHER), [missing]);
    expect(Object.fromEntries(await spread(p, OTHER, 20))).toEqual({ '127.0.0.3': 20 });
    expect(Object.fromEntries(await spread(p, GMAIL, 20))).toEqual({ '127.0.0.3': 20 });
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).toContain(
      'rookery_ip_restricted{egress_ip="192.0.2.10",provider="*",action="suspend",reason="egress-unavailable"} 1',
    );
    p.stop();
  });

  it('keeps an IPv6 egress address whole: suspended, reported, and read back by the next start', async () => {
    const members = [member('2001:db8::5'), member('2001:db8::6')];
    const p = await pool(members);
    const missing = { disposition: 'transient', code: null, enhanced: '4.4.0', response: 'egress address 2001:db8::5 is not configured on this host (EADDRNOTAVAIL)', stage: 'connect', bounceClass: 'egress-unavailable', remoteHost: 'mx.dest.test', egressIp: '2001:db8::5' } as const;
    await p.afterDelivery(path('2001:db8::5', OTHER), [missing]);
    expect(Object.fromEntries(await spread(p, OTHER, 10))).toEqual({ '2001:db8::6': 10 });
    p.stop();
    // A new pool reads the suspension from the backend and rebuilds the gauge from it.
    metrics.ipRestricted.reset();
    const restarted = await pool(members);
    expect(Object.fromEntries(await spread(restarted, GMAIL, 10))).toEqual({ '2001:db8::6': 10 });
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).toContain(
      'rookery_ip_restricted{egress_ip="2001:db8::5",provider="*",action="suspend",reason="egress-unavailable"} 1',
    );
    restarted.stop();
  });

  it('honours restrictions stored by the previous version, and ignores an entry it cannot read', async () => {
    const until = clock.now() + 3_600_000;
    await backend.state.set('restrict:127.0.0.2:other', `{"rule":"operator","reason":"by hand","until":${until},"action":"suspend"}`, until);
    await backend.state.set('restrict:127.0.0.3:other', 'not a restriction', until);
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    expect(Object.fromEntries(await spread(p, OTHER, 10))).toEqual({ '127.0.0.3': 10 });
    // The suspension is for one provider only.
    expect(Object.fromEntries(await spread(p, GMAIL, 10))).toEqual({ '127.0.0.2': 5, '127.0.0.3': 5 });
    p.stop();
  });

  it('stores a restriction under the same key and in the same form as before', async () => {
    const p = await pool([member('127.0.0.2')]);
    const reply = classifyReply({ code: 421, text: '4.7.28 unusual rate of unsolicited mail', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    await p.afterDelivery(path('127.0.0.2', GMAIL), [reply]);
    const stored = new Map((await backend.state.list('', clock.now())).map((e) => [e.key, e.value]));
    expect(Object.keys(JSON.parse(stored.get('restrict:127.0.0.2:gmail')!))).toEqual(['rule', 'reason', 'until', 'action', 'ratePerHour']);
    expect(JSON.parse(stored.get('recover:127.0.0.2:gmail')!)).toEqual({ action: { kind: 'throttle', ratePerHour: 60 }, endedAt: clock.now() + 3_600_000 });
    p.stop();
  });

  it("throttles one IP for Gmail on 421 4.7.28; the others, and that IP's other providers, keep sending", async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const reply = classifyReply({
      code: 421,
      text: '4.7.28 [127.0.0.2] Our system has detected an unusual rate of unsolicited mail originating from your IP address.',
      stage: 'rcpt',
      remoteHost: 'aspmx.l.google.com',
      egressIp: '127.0.0.2',
    }, BOUNCE_RULES);
    await p.afterDelivery(path('127.0.0.2', GMAIL), [reply]);
    // 120 messages over two minutes: the throttle (60/h, burst 1) lets 127.0.0.2 send at most 3.
    const gmail = await spread(p, GMAIL, 120);
    expect(gmail.get('127.0.0.2') ?? 0).toBeLessThanOrEqual(3);
    expect(gmail.get('127.0.0.3')).toBeGreaterThanOrEqual(117);
    expect(Object.fromEntries(await spread(p, OTHER, 100))).toEqual({ '127.0.0.2': 50, '127.0.0.3': 50 });
    // The throttle charges per message: of a transaction of 5 the throttled IP takes one (its
    // bucket holds one, full again a minute after the last), and the rest goes to the other IP.
    clock.advance(60_000);
    const big = await p.select({ pool: 'default', site: GMAIL, count: 5, previous: '127.0.0.2' });
    expect(big).toMatchObject({ ok: true, egress: { address: '127.0.0.2' }, granted: 1 });
    expect(await p.select({ pool: 'default', site: GMAIL, count: 4, previous: '127.0.0.2' })).toMatchObject({ ok: true, egress: { address: '127.0.0.3' }, granted: 4 });
    p.stop();
  });

  /** What a small site of `other` answers an IP that sends too fast (the generic `rate-limited` rule: 5 in 10 minutes). */
  const slowDown = (ip: string) => classifyReply({ code: 421, text: '4.7.0 Too many messages, slow down', stage: 'rcpt', remoteHost: 'mx.tiny-isp.test', egressIp: ip }, BOUNCE_RULES);

  it("throttles an IP only toward the small site that said slow down: that IP's other small sites and Gmail keep their full rate", async () => {
    const p = await pool([member('127.0.0.2')]);
    for (let i = 0; i < 5; i++) await p.afterDelivery(path('127.0.0.2', TINY), [slowDown('127.0.0.2')]);
    const stored = new Map((await backend.state.list('', clock.now())).map((e) => [e.key, e]));
    expect([...stored.keys()].filter((k) => k.startsWith('restrict:') || k.startsWith('recover:')).sort()).toEqual([
      'recover:127.0.0.2:other@2001%3Adb8%3A%3A25,mx.tiny-isp.test',
      'restrict:127.0.0.2:other@2001%3Adb8%3A%3A25,mx.tiny-isp.test',
    ]);
    expect(JSON.parse(stored.get('restrict:127.0.0.2:other@2001%3Adb8%3A%3A25,mx.tiny-isp.test')!.value)).toMatchObject({ action: 'throttle', rule: 'rate-limited', ratePerHour: 300 });
    // Every selection at one instant: the throttle (300/h, a bucket of one) lets one message to
    // the site through; another small site and Gmail on the same IP take all 100 at once.
    const atOnce = async (site: string) => {
      let sent = 0;
      for (let i = 0; i < 100; i++) if ((await p.select({ pool: 'default', site, count: 1, previous: null })).ok) sent++;
      return sent;
    };
    expect(await atOnce(TINY)).toBe(1);
    expect(await p.select({ pool: 'default', site: TINY, count: 1, previous: null })).toMatchObject({ ok: false, reason: 'throttled', retryAt: clock.now() + 12_000 });
    expect(await atOnce(OTHER)).toBe(100);
    expect(await atOnce(GMAIL)).toBe(100);
    const gauge = await metrics.registry.getSingleMetricAsString('rookery_ip_restricted');
    expect(gauge).toContain('rookery_ip_restricted{egress_ip="127.0.0.2",provider="other:sites",action="throttle",reason="rate-limited"} 1');
    expect(gauge).not.toContain('provider="other"');
    // After the 30 minutes the site ramps back on a bucket of its own (300/h, doubling every 15
    // minutes); the other small site was never on a ramp.
    clock.advance(30 * 60_000 + 1);
    expect(await atOnce(TINY)).toBe(1);
    expect(await atOnce(OTHER)).toBe(100);
    p.stop();
  });

  it('counts a rule\'s trigger per small site: five sites answering once each restrict nothing', async () => {
    const p = await pool([member('127.0.0.2')]);
    for (let i = 0; i < 5; i++) await p.afterDelivery(path('127.0.0.2', `mx${i}.small.test`), [slowDown('127.0.0.2')]);
    expect((await backend.state.list('', clock.now())).filter((e) => e.key.startsWith('restrict:'))).toEqual([]);
    p.stop();
  });

  it('counts a suspend-ip rule across the small sites: a listed IP is refused by many sites once each', async () => {
    const listed = { name: 'listed-ip', match: 'your ip is listed', trigger: '3 per 1h', action: 'suspend-ip', duration: '1h' };
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')], [listed]);
    const refusal = (site: string) =>
      classifyReply({ code: 550, text: '5.7.1 your IP is listed', stage: 'rcpt', remoteHost: `mx.${site}`, egressIp: '127.0.0.2' }, BOUNCE_RULES);
    for (const site of ['a.test', 'b.test']) await p.afterDelivery(path('127.0.0.2', `mx.${site}`), [refusal(site)]);
    expect(Object.fromEntries(await spread(p, GMAIL, 10))).toEqual({ '127.0.0.2': 5, '127.0.0.3': 5 });
    await p.afterDelivery(path('127.0.0.2', 'mx.c.test'), [refusal('c.test')]);
    expect(Object.fromEntries(await spread(p, GMAIL, 10))).toEqual({ '127.0.0.3': 10 });
    p.stop();
  });

  it('keeps at most 200 sites restricted per IP, counted in one gauge series; a reaction toward one more is logged, not kept', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const rateLimit = (site: string) =>
      classifyReply({ code: 421, text: '4.7.0 Too many messages, slow down', stage: 'rcpt', remoteHost: site, egressIp: '127.0.0.2' }, BOUNCE_RULES);
    for (let site = 0; site <= 200; site++) {
      for (let i = 0; i < 5; i++) await p.afterDelivery(path('127.0.0.2', `mx.s${site}.test`), [rateLimit(`mx.s${site}.test`)]);
    }
    const restricted = (await backend.state.list('', clock.now())).filter((e) => e.key.startsWith('restrict:'));
    expect(restricted).toHaveLength(200);
    expect(restricted.some((e) => e.key.includes('mx.s200.test'))).toBe(false);
    expect(logs.filter((l) => l.event === 'ippool.site.restrictions.full')).toMatchObject([{ ip: '127.0.0.2', site: 'mx.s200.test', max: 200 }]);
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).toContain(
      'rookery_ip_restricted{egress_ip="127.0.0.2",provider="other:sites",action="throttle",reason="rate-limited"} 200',
    );
    p.stop();
  });

  it('a throttle of a broader scope keeps its token when a narrower scope suspends the path', async () => {
    // A throttle of all of `other` (as an earlier version wrote it) and a suspension toward one site.
    await backend.state.set('restrict:127.0.0.2:other', JSON.stringify({ action: 'throttle', rule: 'old', reason: 'x', until: clock.now() + 3_600_000, ratePerHour: 1 }), clock.now() + 3_600_000);
    const p = await pool([member('127.0.0.2')]);
    const refusal = classifyReply({ code: 554, text: '5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.spamcop.net', stage: 'rcpt', remoteHost: 'mx.tiny-isp.test', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    await p.afterDelivery(path('127.0.0.2', TINY), [refusal]);
    expect(await p.select({ pool: 'default', site: TINY, count: 1, previous: null })).toMatchObject({ ok: false, reason: 'suspended' });
    expect(await p.select({ pool: 'default', site: OTHER, count: 1, previous: null })).toMatchObject({ ok: true });
    p.stop();
  });

  it('suspends an IP toward one small site on its listing reply, and everywhere on a Spamhaus listing', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const refusal = (ip: string, text: string) => classifyReply({ code: 554, text, stage: 'rcpt', remoteHost: 'mx.tiny-isp.test', egressIp: ip }, BOUNCE_RULES);
    // dnsbl-listing: suspend-provider for 6 hours, here for the site alone.
    await p.afterDelivery(path('127.0.0.2', TINY), [refusal('127.0.0.2', '5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.spamcop.net')]);
    expect(Object.fromEntries(await spread(p, TINY, 10))).toEqual({ '127.0.0.3': 10 });
    expect(Object.fromEntries(await spread(p, OTHER, 10))).toEqual({ '127.0.0.2': 5, '127.0.0.3': 5 });
    // spamhaus-listing: suspend-ip, every destination, whichever site said it.
    await p.afterDelivery(path('127.0.0.3', TINY), [refusal('127.0.0.3', '5.7.1 Service unavailable; client [127.0.0.3] blocked using zen.spamhaus.org')]);
    expect(Object.fromEntries(await spread(p, GMAIL, 10))).toEqual({ '127.0.0.2': 10 });
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).toContain(
      'rookery_ip_restricted{egress_ip="127.0.0.3",provider="*",action="suspend",reason="spamhaus-listing"} 1',
    );
    p.stop();
  });

  it("a small site's restriction is read back by the next start, and leaves memory and the gauge once it has ended", async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const members = [member('127.0.0.2'), member('127.0.0.3')];
      const first = await pool(members);
      for (let i = 0; i < 5; i++) await first.afterDelivery(path('127.0.0.2', TINY), [slowDown('127.0.0.2')]);
      first.stop();
      metrics.ipRestricted.reset();
      const p = await pool(members);
      const label = 'provider="other:sites"';
      expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).toContain(label);
      // Throttled for the site (one message, then the other IP), not for another small site.
      expect(Object.fromEntries(await spread(p, TINY, 10))).toEqual({ '127.0.0.2': 1, '127.0.0.3': 9 });
      expect(Object.fromEntries(await spread(p, OTHER, 10))).toEqual({ '127.0.0.2': 5, '127.0.0.3': 5 });
      // The throttle ends after 30 minutes; at the next refresh of pool state its gauge is gone.
      clock.advance(30 * 60_000);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await metrics.registry.getSingleMetricAsString('rookery_ip_restricted')).not.toContain(label);
      // Its ramp ends 11 doublings later (300/h past 100/s); then nothing of it is left.
      expect((await backend.state.list('', clock.now())).map((e) => e.key)).toContain('recover:127.0.0.2:other@2001%3Adb8%3A%3A25,mx.tiny-isp.test');
      clock.advance(11 * 15 * 60_000);
      await vi.advanceTimersByTimeAsync(10_000);
      expect((await backend.state.list('', clock.now())).filter((e) => !e.key.startsWith('last-sent:'))).toEqual([]);
      expect(Object.fromEntries(await spread(p, TINY, 10))).toEqual({ '127.0.0.2': 5, '127.0.0.3': 5 });
      p.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a throttled IP alone sends a transaction of 5 one message a throttle interval (60/h: one a minute)', async () => {
    const p = await pool([member('127.0.0.2')]);
    await p.afterDelivery(path('127.0.0.2', GMAIL), [classifyReply({ code: 421, text: '4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: '127.0.0.2' }, BOUNCE_RULES)]);
    const sent: number[] = [];
    for (let left = 5; left > 0; ) {
      const selection = await p.select({ pool: 'default', site: GMAIL, count: left, previous: '127.0.0.2' });
      if (selection.ok) {
        left -= selection.granted;
        sent.push(selection.granted);
      } else {
        expect(selection).toMatchObject({ reason: 'throttled' });
        clock.set(selection.retryAt);
      }
    }
    expect(sent).toEqual([1, 1, 1, 1, 1]);
    // The last went four minutes after the first.
    expect(clock.now() - (T0 + 8 * 3_600_000)).toBe(4 * 60_000);
    p.stop();
  });

  it('gives a warming IP as many of a transaction as its hourly cap has room for; the rest waits for the next hour or goes to another IP', async () => {
    const warming = member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(T0) } });
    const alone = await pool([warming]);
    // Hourly cap on day 0: ceil(50 / 16) = 4.
    expect(await alone.select({ pool: 'default', site: OTHER, count: 6, previous: null })).toMatchObject({ ok: true, granted: 4 });
    expect(await alone.select({ pool: 'default', site: OTHER, count: 2, previous: null })).toMatchObject({ ok: false, reason: 'warmup-cap', retryAt: T0 + 9 * 3_600_000 });
    clock.set(T0 + 9 * 3_600_000);
    expect(await alone.select({ pool: 'default', site: OTHER, count: 2, previous: null })).toMatchObject({ ok: true, granted: 2 });
    alone.stop();
    // With a warm IP in the pool the rest goes on at once (two of this hour's four are taken above).
    const both = await pool([warming, member('127.0.0.3')]);
    expect(await both.select({ pool: 'default', site: OTHER, count: 6, previous: '127.0.0.2' })).toMatchObject({ ok: true, egress: { address: '127.0.0.2' }, granted: 2 });
    expect(await both.select({ pool: 'default', site: OTHER, count: 4, previous: '127.0.0.2' })).toMatchObject({ ok: true, egress: { address: '127.0.0.3' }, granted: 4 });
    both.stop();
  });

  it('lowers the weight of an IP whose reputation with a provider falls below the floor', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const outcome = (code: number, text: string) => classifyReply({ code, text, stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    // 10 accepted, 20 refused by policy: score 10 / (10 + 2 x 20) = 0.2, below the floor 0.7.
    await p.afterDelivery(path('127.0.0.2', OTHER), [
      ...Array.from({ length: 10 }, () => outcome(250, '2.0.0 ok')),
      ...Array.from({ length: 20 }, () => outcome(554, '5.7.1 rejected by local policy')),
    ]);
    // Weight 100 x 0.2 / 0.7 = 29 against 100: 290 and 1000 of 1290.
    expect(Object.fromEntries(await spread(p, OTHER, 1290))).toEqual({ '127.0.0.2': 290, '127.0.0.3': 1000 });
    // Other providers are not affected.
    expect(Object.fromEntries(await spread(p, GMAIL, 100))).toEqual({ '127.0.0.2': 50, '127.0.0.3': 50 });
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_weight')).toContain('rookery_ip_weight{egress_ip="127.0.0.2",provider="other"} 29');
    p.stop();
  });

  it('takes a reputation score out of /metrics once the window no longer judges the IP: at the next delivery, or at the next refresh without one', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
      const outcome = (ip: string, code: number, text: string) => classifyReply({ code, text, stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: ip }, BOUNCE_RULES);
      const lowScore = (ip: string) => [...Array.from({ length: 10 }, () => outcome(ip, 250, '2.0.0 ok')), ...Array.from({ length: 20 }, () => outcome(ip, 554, '5.7.1 rejected by local policy'))];
      const series = async (name: string) => (await metrics.registry.metrics()).split('\n').filter((line) => line.startsWith(`${name}{`));
      // 10 accepted, 20 refused by policy: 0.2 for each IP.
      await p.afterDelivery(path('127.0.0.2', OTHER), lowScore('127.0.0.2'));
      await p.afterDelivery(path('127.0.0.3', OTHER), lowScore('127.0.0.3'));
      expect(await series('rookery_ip_reputation_score')).toEqual(['rookery_ip_reputation_score{egress_ip="127.0.0.2",provider="other"} 0.2', 'rookery_ip_reputation_score{egress_ip="127.0.0.3",provider="other"} 0.2']);

      // An hour later the window has slid past those outcomes. One new acceptance through
      // 127.0.0.2 is below minSamples (20): no score, so its series goes at once.
      clock.advance(61 * 60_000);
      await p.afterDelivery(path('127.0.0.2', OTHER), [outcome('127.0.0.2', 250, '2.0.0 ok')]);
      expect(await series('rookery_ip_reputation_score')).toEqual(['rookery_ip_reputation_score{egress_ip="127.0.0.3",provider="other"} 0.2']);
      expect(await series('rookery_ip_reputation_inputs')).toContain('rookery_ip_reputation_inputs{egress_ip="127.0.0.2",provider="other",kind="accepted"} 1');

      // 127.0.0.3 sent nothing since: the pool's periodic refresh drops its score and inputs.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(await series('rookery_ip_reputation_score')).toEqual([]);
      expect((await series('rookery_ip_reputation_inputs')).filter((line) => line.includes('127.0.0.3'))).toEqual([]);
      expect(await series('rookery_ip_reputation_inputs')).toContain('rookery_ip_reputation_inputs{egress_ip="127.0.0.2",provider="other",kind="accepted"} 1');
      p.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('turns an outcome permanent when a bounce rule matches it', async () => {
    const p = await pool([member('127.0.0.2')], [{ name: 'no-such-list', match: 'list does not exist', action: 'bounce' }]);
    const reply = classifyReply({ code: 451, text: '4.3.0 this list does not exist any more', stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    const other = classifyReply({ code: 451, text: '4.3.0 try again later', stage: 'rcpt', remoteHost: 'mx.dest.test', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    const [bounced, deferred] = await p.afterDelivery(path('127.0.0.2', OTHER), [reply, other]);
    expect(bounced).toMatchObject({ disposition: 'permanent', code: 451 });
    expect(deferred!.disposition).toBe('transient');
    p.stop();
  });

  it("two nodes sharing the pool backend share a warming IP's hourly cap: what one leaves, the other gets", async () => {
    const warming = member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(T0) } });
    const nodes = [await pool([warming]), await pool([warming])];
    const selections = await Promise.all(nodes.map((p) => p.select({ pool: 'default', site: OTHER, count: 3, previous: null })));
    // The cap of 4: one node reserves 3, the other is refused 3 and then given the 1 left.
    expect(selections.map((s) => (s.ok ? s.granted : 0)).sort()).toEqual([1, 3]);
    for (const p of nodes) p.stop();
  });

  /** Selections of `ip` in a burst of 100 at one instant, the IP preferred (a retry's stickiness). */
  async function burst(p: EgressPool, ip: string): Promise<number> {
    let chosen = 0;
    for (let i = 0; i < 100; i++) {
      const s = await p.select({ pool: 'default', site: GMAIL, count: 1, previous: ip });
      if (s.ok && s.egress.address === ip) chosen++;
    }
    return chosen;
  }

  async function recoveryExpiry(ip: string): Promise<number | null | undefined> {
    return (await backend.state.list('', clock.now())).find((e) => e.key === `recover:${ip}:gmail`)?.expiresAt;
  }

  it("brings a throttled IP back from the throttle's rate, doubling every 15 minutes; the ramp's record lasts as long as the ramp", async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const reply = classifyReply({ code: 421, text: '4.7.28 Our system has detected an unusual rate of mail from your IP.', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    await p.afterDelivery(path('127.0.0.2', GMAIL), [reply]);
    // Throttled to 60/h for an hour; from there 60/h doubles 13 times to pass Gmail's 100/s.
    const ended = clock.now() + 3_600_000;
    const step = 15 * 60_000;
    expect(await recoveryExpiry('127.0.0.2')).toBe(ended + 13 * step);
    // Coming back it sends at the throttle's rate (a bucket of one), not a tenth of 100/s.
    clock.set(ended + 1);
    expect(await burst(p, '127.0.0.2')).toBe(1);
    // The last step before normal: 60/h x 2^12 = 68 a second.
    clock.set(ended + 12 * step);
    expect(await burst(p, '127.0.0.2')).toBe(68);
    // At the end of the ramp its record is gone and the IP is back to normal.
    clock.set(ended + 13 * step);
    expect(await recoveryExpiry('127.0.0.2')).toBeUndefined();
    expect(await burst(p, '127.0.0.2')).toBe(100);
    p.stop();
  });

  it('brings a suspended IP back at a tenth of its normal rate, doubling every 15 minutes: normal again an hour later', async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const reply = classifyReply({ code: 550, text: '5.7.1 Our system has detected an unusual rate of unsolicited mail originating from your IP address. Mail sent from your IP address has been blocked.', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    await p.afterDelivery(path('127.0.0.2', GMAIL), [reply]);
    // Suspended for Google for 4 hours, then 10 %, 20 %, 40 %, 80 %, 100 % of 100/s.
    const ended = clock.now() + 4 * 3_600_000;
    expect(await recoveryExpiry('127.0.0.2')).toBe(ended + 3_600_000);
    clock.set(ended + 1);
    expect(await burst(p, '127.0.0.2')).toBe(10);
    clock.set(ended + 45 * 60_000);
    expect(await burst(p, '127.0.0.2')).toBe(80);
    clock.set(ended + 3_600_000);
    expect(await burst(p, '127.0.0.2')).toBe(100);
    p.stop();
  });

  it("restricts nothing on Gmail's authentication replies and does not hold them against the IP's reputation", async () => {
    const p = await pool([member('127.0.0.2'), member('127.0.0.3')]);
    const unauthenticated = classifyReply({ code: 421, text: '4.7.26 This mail has been rate limited because it is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: '127.0.0.2' }, BOUNCE_RULES);
    // More than the generic rate-limit rule's 5 in 10 minutes, and than reputation's 20 samples.
    for (let i = 0; i < 30; i++) await p.afterDelivery(path('127.0.0.2', GMAIL), [unauthenticated]);
    expect(await backend.state.list('', clock.now())).toEqual([]);
    // Neither throttled nor lowered in weight: the IP keeps its half of Gmail's mail.
    expect(Object.fromEntries(await spread(p, GMAIL, 100))).toEqual({ '127.0.0.2': 50, '127.0.0.3': 50 });
    p.stop();
  });

  it('snapshot: restrictions with their scope (every provider, a small site of other), and an idle restart reported, not made', async () => {
    const warming = member('127.0.0.3', { warmup: { plan: 'conservative', start: utcDayStart(T0) } });
    const p = await pool([member('127.0.0.2'), warming, member('192.0.2.10')]);
    expect((await p.select({ pool: 'default', site: OTHER, count: 1, previous: '127.0.0.3' })).ok).toBe(true);
    for (let i = 0; i < 5; i++) await p.afterDelivery(path('127.0.0.2', TINY), [slowDown('127.0.0.2')]);
    const missing = { disposition: 'transient', code: null, enhanced: '4.4.0', response: 'egress address 192.0.2.10 is not configured on this host (EADDRNOTAVAIL)', stage: 'connect', bounceClass: 'egress-unavailable', remoteHost: 'mx.dest.test', egressIp: '192.0.2.10' } as const;
    await p.afterDelivery(path('192.0.2.10', OTHER), [missing]);

    const [a, w, gone] = await p.snapshot();
    expect(a!.restrictions).toEqual([
      { scope: 'site', provider: 'other', site: TINY, action: 'throttle', ratePerHour: 300, rule: 'rate-limited', by: null, reason: expect.stringContaining('slow down'), until: clock.now() + 30 * 60_000 },
    ]);
    expect(gone!.restrictions).toEqual([{ scope: 'all', provider: null, site: null, action: 'suspend', ratePerHour: null, rule: 'egress-unavailable', by: null, reason: missing.response, until: clock.now() + 10 * 60_000 }]);
    expect(w!.warmup).toMatchObject({ plan: 'conservative', phase: 'warming', day: 0, restartsOnNextSend: false });
    expect(w!.providers.find((x) => x.provider === 'other')!.warmup).toMatchObject({ hourly: { cap: 4, used: 1 }, daily: { cap: 50, used: 1 } });
    expect(await p.snapshot({ address: '192.0.2.11' })).toEqual([]);

    // 40 days idle: the plan would start again with the next message. The snapshot says so, and
    // leaves the restart to that message: nothing written, nothing logged.
    clock.advance(40 * 86_400_000);
    const logged = logs.length;
    const [idle] = await p.snapshot({ address: '127.0.0.3' });
    expect(idle!.warmup).toMatchObject({ restartsOnNextSend: true, restartedAt: null, start: utcDayStart(clock.now()), phase: 'warming', day: 0 });
    expect((await backend.state.list('warmup-restart:', clock.now())).length).toBe(0);
    expect(logs.length).toBe(logged);
    // Ended restrictions are gone, and their ramps too once back at the normal rate.
    expect((await p.snapshot()).flatMap((ip) => [...ip.restrictions, ...ip.recoveries])).toEqual([]);
    p.stop();
  });

  it('starts the warm-up plan again for an IP idle for more than 30 days', async () => {
    const p = await pool([member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(T0) } })]);
    expect((await p.select({ pool: 'default', site: OTHER, count: 1, previous: null })).ok).toBe(true);
    // 40 days later the plan would be over (warm, no cap) had the IP kept sending; idle, it starts
    // again at day 0: 4 messages this hour, then a wait.
    clock.advance(40 * 86_400_000);
    const picks = [];
    for (let i = 0; i < 5; i++) picks.push((await p.select({ pool: 'default', site: OTHER, count: 1, previous: null })).ok);
    expect(picks).toEqual([true, true, true, true, false]);
    expect(await metrics.registry.getSingleMetricAsString('rookery_ip_warmup_day')).toContain('rookery_ip_warmup_day{egress_ip="127.0.0.2",plan="conservative"} 0');
    p.stop();
  });

  it('waits (throttled, not failed) when no IP may send, and says until when', async () => {
    const p = await pool([member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(T0) } })]);
    const selections = [];
    // Hourly cap on day 0: ceil(50 / 16) = 4.
    for (let i = 0; i < 5; i++) selections.push(await p.select({ pool: 'default', site: OTHER, count: 1, previous: null }));
    expect(selections.slice(0, 4).every((s) => s.ok)).toBe(true);
    expect(selections[4]).toMatchObject({ ok: false, reason: 'warmup-cap', retryAt: T0 + 9 * 3_600_000 });
    expect(await metrics.registry.getSingleMetricAsString('rookery_selection_waits_total')).toContain('rookery_selection_waits_total{pool="default",reason="warmup-cap"} 1');
    p.stop();
  });

  it('30 simulated days of a conservative warm-up never exceed a daily or hourly cap; overflow goes to the warm IP', { timeout: 120_000 }, async () => {
    clock.set(T0);
    const warming = '127.0.0.2';
    const p = await pool([member(warming, { warmup: { plan: 'conservative', start: T0 } }), member('127.0.0.3')]);
    const data = loadPoolData();
    const perHour = 30;
    const byDay = new Map<string, number>();
    const byHour = new Map<string, number>();
    let waits = 0;
    for (let hour = 0; hour < 31 * 24; hour++) {
      for (let i = 0; i < perHour; i++) {
        for (const [provider, site] of [['gmail', GMAIL], ['outlook', 'x.mail.protection.outlook.com']] as const) {
          const selection = await p.select({ pool: 'default', site, count: 1, previous: null });
          if (!selection.ok) {
            waits++;
            continue;
          }
          const day = dayIndex(T0, clock.now());
          const key = `${selection.egress.address}|${provider}|${day}`;
          byDay.set(key, (byDay.get(key) ?? 0) + 1);
          byHour.set(`${key}|${hour}`, (byHour.get(`${key}|${hour}`) ?? 0) + 1);
        }
        clock.advance(3_600_000 / perHour);
      }
    }
    // The warm IP always has room: nothing ever waits.
    expect(waits).toBe(0);
    for (const provider of ['gmail', 'outlook']) {
      const scale = data.providers.warmupScale(provider);
      for (let day = 0; day < 30; day++) {
        const daily = Math.max(1, Math.floor(CONSERVATIVE[day]! * scale));
        const hourly = Math.ceil(daily / 16);
        const sent = byDay.get(`${warming}|${provider}|${day}`) ?? 0;
        expect(sent, `${provider} day ${day}`).toBeLessThanOrEqual(daily);
        for (let h = day * 24; h < (day + 1) * 24; h++) {
          expect(byHour.get(`${warming}|${provider}|${day}|${h}`) ?? 0).toBeLessThanOrEqual(hourly);
        }
        // Every message the warming IP could not take went to the warm IP.
        expect(sent + (byDay.get(`127.0.0.3|${provider}|${day}`) ?? 0)).toBe(perHour * 24);
      }
      // Day 0 is the tightest: exactly its (scaled) cap.
      expect(byDay.get(`${warming}|${provider}|0`)).toBe(Math.floor(50 * scale));
      // Past the plan the IP is warm and takes its weight's share.
      expect(byDay.get(`${warming}|${provider}|30`)).toBe((perHour * 24) / 2);
    }
    p.stop();
  });

  describe('explanations (GET /v1/explain)', () => {
    const HOUR = 3_600_000;
    const iso = (ms: number) => new Date(ms).toISOString();
    const gmailReply = (ip: string) => classifyReply({ code: 421, text: '4.7.28 unusual rate of unsolicited mail', stage: 'rcpt', remoteHost: 'aspmx.l.google.com', egressIp: ip }, BOUNCE_RULES);
    const checksOf = async (p: EgressPool, site: string, address: string) => (await p.explain({ pool: 'default', site })).ips.find((i) => i.address === address)!.checks;

    it('describes the ramp back after a throttle, a throttle toward one small site, a plan not started and an idle restart to come', async () => {
      const now = clock.now();
      const pending = utcDayStart(now) + 2 * 86_400_000;
      const p = await pool([
        member('127.0.0.2'),
        member('127.0.0.3', { warmup: { plan: 'conservative', start: pending } }),
        member('127.0.0.4', { warmup: { plan: 'conservative', start: utcDayStart(now) - 60 * 86_400_000 } }),
      ]);

      // Gmail's 4.7.28 throttles 127.0.0.2 for an hour; once it ends, the IP ramps back from 60/h.
      await p.afterDelivery(path('127.0.0.2', GMAIL), [gmailReply('127.0.0.2')]);
      expect((await checksOf(p, GMAIL, '127.0.0.2')).map((c) => c.check)).toEqual(['weight', 'throttled', 'rate']);
      clock.set(now + HOUR + 60_000);
      const ramp = (await checksOf(p, GMAIL, '127.0.0.2')).find((c) => c.check === 'recovering')!;
      expect(ramp).toMatchObject({ ok: true, retryAt: null, restriction: null });
      expect(ramp.detail).toBe(`coming back after a throttle for gmail ended at ${iso(now + HOUR)}: 60/h now, rising to the normal rate: a message may go now`);

      // A small site says slow down five times: 127.0.0.2 is throttled toward that site alone.
      for (let i = 0; i < 5; i++) await p.afterDelivery(path('127.0.0.2', TINY), [slowDown('127.0.0.2')]);
      const tiny = (await checksOf(p, TINY, '127.0.0.2')).find((c) => c.check === 'throttled')!;
      expect(tiny.restriction).toMatchObject({ scope: 'site', provider: 'other', site: TINY, action: 'throttle' });
      expect(tiny.detail).toContain(`for site ${TINY} (other)`);
      expect((await checksOf(p, OTHER, '127.0.0.2')).map((c) => c.check)).toEqual(['weight', 'rate']);

      // A plan that starts the day after tomorrow: nothing before.
      const notYet = (await checksOf(p, OTHER, '127.0.0.3')).find((c) => c.check === 'warmup')!;
      expect(notYet).toMatchObject({ ok: false, retryAt: pending, detail: 'warm-up plan conservative starts on 2026-11-03: nothing before', warmup: { phase: 'pending', day: -2 } });

      // Idle for sixty days: the next message restarts the plan from today; explaining does not.
      const idle = (await checksOf(p, OTHER, '127.0.0.4')).find((c) => c.check === 'warmup')!;
      expect(idle).toMatchObject({ ok: true, warmup: { restartsOnNextSend: true, start: utcDayStart(clock.now()), phase: 'warming', day: 0 } });
      expect(await backend.state.list('warmup-restart:', clock.now())).toEqual([]);
      p.stop();
    });

    it('changes nothing selection, the counters or the metrics see', async () => {
      const now = clock.now();
      const p = await pool([member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(now) } }), member('127.0.0.3')]);
      await p.afterDelivery(path('127.0.0.3', GMAIL), [gmailReply('127.0.0.3')]);
      const limiter = backend.limiter as LocalRateLimiter;
      const windows = (['hour', 'day'] as const).map((w) => ({ key: counterKeys.warmup('127.0.0.2', 'gmail', w), windowStart: (w === 'hour' ? hourWindow(now) : dayWindow(now)).start }));
      const seen = async () => ({ buckets: limiter.size, counts: await backend.counters.get(windows), metrics: await metrics.registry.metrics() });
      const before = await seen();
      for (let i = 0; i < 20; i++) await p.explain({ pool: 'default', site: GMAIL });
      expect(await seen()).toEqual(before);

      // Selection then finds what it would have found: the throttle's one token, the plan's whole hour (50 a day: 4 an hour).
      const chosen: string[] = [];
      for (let i = 0; i < 6; i++) {
        const selection = await p.select({ pool: 'default', site: GMAIL, count: 1, previous: '127.0.0.3' });
        chosen.push(selection.ok ? selection.egress.address! : `wait:${selection.reason}`);
      }
      expect(chosen).toEqual(['127.0.0.3', '127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.2', 'wait:throttled']);
      p.stop();
    });

    it("reports the system's default address when no IPs are configured, and the default pool's IPs for a pool without any", async () => {
      const none = await pool([]);
      expect(await none.explain({ pool: 'default', site: OTHER })).toMatchObject({ provider: 'other', defaultEgress: true, ips: [] });
      none.stop();
      const some = await pool([member('127.0.0.2')]);
      expect(await some.explain({ pool: 'marketing', site: GMAIL })).toMatchObject({ pool: 'default', provider: 'gmail', defaultEgress: false, ips: [{ address: '127.0.0.2' }] });
      some.stop();
    });
  });
});
