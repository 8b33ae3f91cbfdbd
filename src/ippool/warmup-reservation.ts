import type { Logger } from '../observability/logger.ts';
import type { ProviderName, UsageCounters, Verdict } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { counterKeys } from './pool-keys.ts';
import type { PoolReporting } from './pool-reporting.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { dayWindow, hourWindow } from './warmup.ts';

export interface WarmupReservationDeps {
  counters: UsageCounters;
  policy: Pick<PoolPolicy, 'warmupStart' | 'warmupCaps'>;
  state: PoolStateCache;
  reporting: PoolReporting;
  log: Logger;
}

/**
 * Counts a warming IP's messages against its plan's caps per provider, the hour's and the
 * day's, atomically in the pool backend so that every node sharing it stays under them together.
 */
export class WarmupReservation {
  constructor(private readonly deps: WarmupReservationDeps) {}

  /** Counts `count` messages against the hour's and the day's cap, refusing when either would be exceeded. */
  async reserve(member: PoolMember, warmup: NonNullable<PoolMember['warmup']>, provider: ProviderName, count: number, now: number): Promise<Verdict> {
    const { counters, policy, reporting } = this.deps;
    const start = this.start(member.address, warmup, now);
    const caps = policy.warmupCaps({ plan: warmup.plan, start, provider, now });
    reporting.warmupDay(member.address, warmup.plan, caps.phase === 'warm' ? null : caps.day);
    if (caps.phase === 'warm') return { ok: true };
    // The hour first: when it refuses, the day's count is untouched. A refusal by the day after
    // the hour accepted leaves the hour over-counted by `count`, which only errs on the safe side.
    for (const [name, window, cap] of [
      ['hour', hourWindow(now), caps.hourly],
      ['day', dayWindow(now), caps.daily],
    ] as const) {
      if (cap === null) continue;
      const { ok, total } = await counters.reserve(counterKeys.warmup(member.address, provider, name), window.start, window.ms, count, cap);
      reporting.warmupWindow(member.address, provider, name, cap, total);
      if (!ok) return { ok: false, retryAt: window.start + window.ms, reason: 'warmup-cap' };
    }
    return { ok: true };
  }

  /** The plan's start: the configured one, or a restart after the IP was idle too long (persisted). */
  private start(ip: string, warmup: NonNullable<PoolMember['warmup']>, now: number): number {
    const { state, policy, log } = this.deps;
    const { start, restarted } = policy.warmupStart({ configuredStart: warmup.start, lastSentAt: state.lastSent(ip), restartedAt: state.warmupRestart(ip), now });
    if (restarted) {
      log.warn({ event: 'ippool.warmup.restarted', ip, plan: warmup.plan }, 'egress IP was idle too long: its warm-up plan starts again');
      void state.restartWarmup(ip, start);
    }
    return start;
  }
}
