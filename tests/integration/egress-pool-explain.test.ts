import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reactionRulesConfigSchema } from '../../src/config/rule-schemas.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { classifyReply } from '../../src/engine/classify.ts';
import { ReadyQueues } from '../../src/engine/ready-queue.ts';
import { createPoolBackend, type PoolBackendHandle } from '../../src/ippool/backend/create-pool-backend.ts';
import type { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import { EgressPool, type PoolMember } from '../../src/ippool/egress-pool.ts';
import { counterKeys } from '../../src/ippool/pool-keys.ts';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { createPoolPolicy } from '../../src/ippool/pool-policy.ts';
import { loadReactionRules, ReactionEngine } from '../../src/ippool/reaction-rules.ts';
import { createReputationTracker } from '../../src/ippool/reputation.ts';
import { DAY_MS, dayWindow, hourWindow, utcDayStart } from '../../src/ippool/warmup.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { join } from 'node:path';
import { BOUNCE_RULES } from '../helpers/bounce-rules.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';

/**
 * EgressPool.explain against the real pool on the local backend: each gate selection asks,
 * described (the ramp back after a throttle, a throttle toward one small site, a plan not yet
 * started, an idle restart still to come), and read without changing anything selection or the
 * metrics would see.
 */

const GMAIL = 'alt1.aspmx.l.google.com,aspmx.l.google.com';
const OTHER = 'mx.dest.test';
const TINY = 'mx.tiny-isp.test';
const T0 = Date.UTC(2026, 10, 1, 8);
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

function member(address: string, extra: Partial<PoolMember> = {}): PoolMember {
  return { address, hostname: `${address}.rookery.test`, pool: 'default', weight: 100, warmup: null, ...extra };
}

describe('egress pool explanations (local backend)', () => {
  let store: Store;
  let clock: ManualClock;
  let metrics: Metrics;
  let backend: PoolBackendHandle;

  beforeEach(async () => {
    clock = manualClock(T0);
    store = createSqliteStore({ path: ':memory:', clock, logger: createLogger('silent') });
    await store.migrate();
    metrics = new Metrics({ processMetrics: false });
    backend = createPoolBackend({ store, clock });
  });
  afterEach(async () => {
    await store.close();
  });

  async function pool(members: PoolMember[]): Promise<EgressPool> {
    const policy = createPoolPolicy(loadPoolData(), { window: HOUR, minSamples: 20, floor: 0.7 });
    const p = new EgressPool({
      members,
      backend,
      reputation: createReputationTracker({ windowMs: HOUR, minSamples: 20 }),
      reactions: new ReactionEngine(loadReactionRules(join(DEFAULT_CONFIG_DIR, DATA_FILES.reactionRules), reactionRulesConfigSchema.parse([]))),
      policy,
      paths: new ReadyQueues({ shaping: policy.shaping, limiter: backend.limiter, clock, idleConnectionTimeout: 5_000, deadSite: { interval: 60_000, maxInterval: 600_000 } }),
      defaultEgress: { address: null, hostname: 'mta.rookery.test' },
      clock,
      logger: createLogger('silent'),
      metrics,
    });
    await p.start();
    return p;
  }

  const reply = (ip: string, text: string, remoteHost: string) => classifyReply({ code: 421, text, stage: 'rcpt', remoteHost, egressIp: ip }, BOUNCE_RULES);
  const checksOf = async (p: EgressPool, site: string, address: string) => (await p.explain({ pool: 'default', site })).ips.find((i) => i.address === address)!.checks;

  it('describes the ramp back after a throttle, a throttle toward one small site, a plan not started and an idle restart to come', async () => {
    const pending = utcDayStart(T0) + 2 * DAY_MS;
    const p = await pool([
      member('127.0.0.2'),
      member('127.0.0.3', { warmup: { plan: 'conservative', start: pending } }),
      member('127.0.0.4', { warmup: { plan: 'conservative', start: utcDayStart(T0) - 60 * DAY_MS } }),
    ]);

    // Gmail's 4.7.28 throttles 127.0.0.2 for an hour; once it ends, the IP ramps back from 60/h.
    await p.afterDelivery({ ip: '127.0.0.2', site: GMAIL, provider: 'gmail' }, [reply('127.0.0.2', '4.7.28 unusual rate of unsolicited mail', 'aspmx.l.google.com')]);
    expect((await checksOf(p, GMAIL, '127.0.0.2')).map((c) => c.check)).toEqual(['weight', 'throttled', 'rate']);
    clock.set(T0 + HOUR + 60_000);
    const ramp = (await checksOf(p, GMAIL, '127.0.0.2')).find((c) => c.check === 'recovering')!;
    expect(ramp).toMatchObject({ ok: true, retryAt: null, restriction: null });
    expect(ramp.detail).toBe(`coming back after a throttle for gmail ended at ${iso(T0 + HOUR)}: 60/h now, rising to the normal rate: a message may go now`);

    // A small site says slow down five times: 127.0.0.2 is throttled toward that site alone.
    for (let i = 0; i < 5; i++) await p.afterDelivery({ ip: '127.0.0.2', site: TINY, provider: 'other' }, [reply('127.0.0.2', '4.7.0 Too many messages, slow down', TINY)]);
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
    const warming = member('127.0.0.2', { warmup: { plan: 'conservative', start: utcDayStart(T0) } });
    const p = await pool([warming, member('127.0.0.3')]);
    await p.afterDelivery({ ip: '127.0.0.3', site: GMAIL, provider: 'gmail' }, [reply('127.0.0.3', '4.7.28 unusual rate of unsolicited mail', 'aspmx.l.google.com')]);
    const limiter = backend.limiter as LocalRateLimiter;
    const keys = [
      { key: counterKeys.warmup('127.0.0.2', 'gmail', 'hour'), windowStart: hourWindow(T0).start },
      { key: counterKeys.warmup('127.0.0.2', 'gmail', 'day'), windowStart: dayWindow(T0).start },
    ];
    const before = { buckets: limiter.size, counts: await backend.counters.get(keys), metrics: await metrics.registry.metrics() };
    for (let i = 0; i < 20; i++) await p.explain({ pool: 'default', site: GMAIL });
    expect({ buckets: limiter.size, counts: await backend.counters.get(keys), metrics: await metrics.registry.metrics() }).toEqual(before);

    // Selection then finds what it would have found: the throttle's one token, the plan's whole hour.
    const chosen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const selection = await p.select({ pool: 'default', site: GMAIL, count: 1, previous: '127.0.0.3' });
      chosen.push(selection.ok ? selection.egress.address! : 'wait');
    }
    expect(chosen).toEqual(['127.0.0.3', '127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.2', 'wait']);
    p.stop();
  });

  it("reports the system's default address when no IPs are configured, and no IPs for a pool without any", async () => {
    const none = await pool([]);
    expect(await none.explain({ pool: 'default', site: OTHER })).toMatchObject({ provider: 'other', defaultEgress: true, ips: [] });
    none.stop();
    const some = await pool([member('127.0.0.2')]);
    expect(await some.explain({ pool: 'marketing', site: GMAIL })).toMatchObject({ pool: 'marketing', provider: 'gmail', defaultEgress: false, ips: [] });
    some.stop();
  });
});
