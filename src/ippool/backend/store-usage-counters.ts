import type { Clock } from '../../clock.ts';
import type { Store } from '../../storage/store.ts';
import type { UsageCounters } from '../contracts.ts';
import { checkCount, checkUsageKey, checkWindow, usageExpiresAt } from './usage-windows.ts';

/**
 * Usage counters in the local store (no Redis): they survive a restart, and on PostgreSQL every
 * daemon sharing the database reserves against the same rows.
 */
export class StoreUsageCounters implements UsageCounters {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async reserve(key: string, windowStart: number, windowMs: number, amount: number, limit: number): Promise<{ ok: boolean; total: number }> {
    checkUsageKey(key);
    checkWindow(windowStart, windowMs);
    checkCount('amount', amount);
    checkCount('limit', limit);
    const now = this.clock.now();
    return this.store.reserveUsage({ key, windowStart, amount, expiresAt: usageExpiresAt(windowStart, windowMs, now), now }, limit);
  }

  async add(key: string, windowStart: number, windowMs: number, amount: number): Promise<number> {
    checkUsageKey(key);
    checkWindow(windowStart, windowMs);
    checkCount('amount', amount);
    const now = this.clock.now();
    return this.store.addUsage({ key, windowStart, amount, expiresAt: usageExpiresAt(windowStart, windowMs, now), now });
  }

  async get(windows: Array<{ key: string; windowStart: number }>): Promise<number[]> {
    if (windows.length === 0) return [];
    return this.store.getUsage(windows, this.clock.now());
  }
}
