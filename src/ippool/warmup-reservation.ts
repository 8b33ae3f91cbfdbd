import type { Logger } from '../observability/logger.ts';
import type { ProviderName, UsageCounters, Verdict } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { counterKeys, type CounterKey } from './pool-keys.ts';
import type { PoolReporting } from './pool-reporting.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { dayWindow, hourWindow, type TimeWindow } from './warmup.ts';

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
 * A transaction with more recipients than a cap has room for gets what is left, not a refusal:
 * asking for all of them would be refused every hour, and above the cap itself for ever.
 */
export class WarmupReservation {
  constructor(private readonly deps: WarmupReservationDeps) {}

  /**
   * Counts up to `count` messages against the hour's and the day's cap: as many as both leave
   * room for (a transaction larger than that is split by the caller), or a refusal when either
   * is full.
   */
  async reserve(member: PoolMember, warmup: NonNullable<PoolMember['warmup']>, provider: ProviderName, count: number, now: number): Promise<Verdict> {
    const { policy, reporting } = this.deps;
    const start = this.start(member.address, warmup, now);
    const caps = policy.warmupCaps({ plan: warmup.plan, start, provider, now });
    reporting.warmupDay(member.address, warmup.plan, caps.phase === 'warm' ? null : caps.day);
    if (caps.phase === 'warm') return { ok: true, granted: count };
    // The hour first, then the day for what the hour granted: when the hour refuses, the day's
    // count is untouched. When the day grants fewer than the hour, the hour stays counted for the
    // difference, which costs nothing: the day is full then, and the hour lies within it.
    let granted = count;
    for (const [name, window, cap] of [
      ['hour', hourWindow(now), caps.hourly],
      ['day', dayWindow(now), caps.daily],
    ] as const) {
      if (cap === null) continue;
      const reserved = await this.reserveUpTo(counterKeys.warmup(member.address, provider, name), window, granted, cap);
      reporting.warmupWindow(member.address, provider, name, cap, reserved.total);
      if (reserved.granted === 0) return { ok: false, retryAt: window.start + window.ms, reason: 'warmup-cap' };
      granted = reserved.granted;
    }
    return { ok: true, granted };
  }

  /**
   * Reserves as many of `wanted` as the window's cap leaves room for. A refusal reports the total
   * that refused (another node may have counted meanwhile), so the next try asks for what that
   * leaves: always less than before, so this ends.
   */
  private async reserveUpTo(key: CounterKey, window: TimeWindow, wanted: number, cap: number): Promise<{ granted: number; total: number }> {
    let amount = Math.min(wanted, cap);
    for (;;) {
      const { ok, total } = await this.deps.counters.reserve(key, window.start, window.ms, amount, cap);
      if (ok) return { granted: amount, total };
      amount = cap - total;
      if (amount <= 0) return { granted: 0, total };
    }
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
