import type { Logger } from '../observability/logger.ts';
import type { ProviderName, UsageCounters, Verdict } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { counterKeys, type CounterKey } from './pool-keys.ts';
import type { PoolReporting } from './pool-reporting.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { dayWindow, hourWindow, type TimeWindow, type WarmupCaps } from './warmup.ts';

/** A warming member's caps toward a provider now and what they have counted (WarmupReservation.read). */
export interface WarmupReading {
  /** The day 0 the plan counts from now. */
  start: number;
  /** Idle longer than warmup.idleRestart: the next message restarts the plan from today (`start` is today's already). */
  restartsOnNextSend: boolean;
  caps: WarmupCaps;
  /** The hour's and the day's window with its cap and count; empty once the IP is warm. */
  windows: Array<{ name: 'hour' | 'day'; window: TimeWindow; cap: number; used: number }>;
}

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
    for (const { name, window, cap } of capWindows(caps, now)) {
      const reserved = await this.reserveUpTo(counterKeys.warmup(member.address, provider, name), window, granted, cap);
      reporting.warmupWindow(member.address, provider, name, cap, reserved.total);
      if (reserved.granted === 0) return { ok: false, retryAt: window.start + window.ms, reason: 'warmup-cap' };
      granted = reserved.granted;
    }
    return { ok: true, granted };
  }

  /**
   * The member's caps toward `provider` at `now` and their counts, read without reserving,
   * restarting or reporting anything (GET /v1/explain): what reserve() would measure against.
   */
  async read(member: PoolMember, warmup: NonNullable<PoolMember['warmup']>, provider: ProviderName, now: number): Promise<WarmupReading> {
    const { start, restarted } = this.startOf(member.address, warmup, now);
    const caps = this.deps.policy.warmupCaps({ plan: warmup.plan, start, provider, now });
    const windows = caps.phase === 'warm' ? [] : capWindows(caps, now);
    const used = await this.deps.counters.get(windows.map(({ name, window }) => ({ key: counterKeys.warmup(member.address, provider, name), windowStart: window.start })));
    return { start, restartsOnNextSend: restarted, caps, windows: windows.map((w, i) => ({ ...w, used: used[i] ?? 0 })) };
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
    const { state, log } = this.deps;
    const { start, restarted } = this.startOf(ip, warmup, now);
    if (restarted) {
      log.warn({ event: 'ippool.warmup.restarted', ip, plan: warmup.plan }, 'egress IP was idle too long: its warm-up plan starts again');
      void state.restartWarmup(ip, start);
    }
    return start;
  }

  /** The day 0 the plan counts from at `now`, and whether that is a restart after an idle time (not yet persisted). */
  private startOf(ip: string, warmup: NonNullable<PoolMember['warmup']>, now: number): { start: number; restarted: boolean } {
    const { state, policy } = this.deps;
    return policy.warmupStart({ configuredStart: warmup.start, lastSentAt: state.lastSent(ip), restartedAt: state.warmupRestart(ip), now });
  }
}

/** The windows a warming IP's caps count in at `now`: the hour's, then the day's (a null cap counts in none). */
function capWindows(caps: WarmupCaps, now: number): Array<{ name: 'hour' | 'day'; window: TimeWindow; cap: number }> {
  const windows = [
    { name: 'hour' as const, window: hourWindow(now), cap: caps.hourly },
    { name: 'day' as const, window: dayWindow(now), cap: caps.daily },
  ];
  return windows.filter((w): w is { name: 'hour' | 'day'; window: TimeWindow; cap: number } => w.cap !== null);
}
