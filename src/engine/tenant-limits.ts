import type { Tenant } from '../access/tenants.ts';
import type { Clock } from '../clock.ts';
import { RookeryError } from '../errors.ts';
import type { RateLimiter, UsageCounters } from '../ippool/contracts.ts';
import { bucketKeys, counterKeys } from '../ippool/pool-keys.ts';

const DAY_MS = 86_400_000;

/**
 * A tenant's rate and daily quota, taken at acceptance on every door (SMTP and HTTP) before the
 * message is committed. Both live in the egress pool's backend, so with Redis (or a shared
 * PostgreSQL store) every node draws on one budget. Counts are recipients.
 *
 * The rate is taken first: a message refused by the rate costs nothing against the day's quota,
 * so a client retrying through a rate limit does not eat the quota. A message with more
 * recipients than the rate's burst or the day's quota could never pass: it is refused for good
 * (5xx), never told to come back. What a refused or failed commit took is not given back: a
 * client cannot get more than its budget by failing commits.
 *
 * The quota lives in the usage counters (Redis, else the store: shared by every node sharing it);
 * the rate in the rate limiter, which without Redis is this process's own (each node and each
 * restart has a budget of its own).
 */
export class TenantLimits {
  constructor(private readonly deps: { limiter: RateLimiter; counters: UsageCounters; clock: Clock }) {}

  /** Takes `recipients` from the tenant's budgets, or throws the RookeryError to answer with (Retry-After included). */
  async admit(tenant: Tenant, recipients: number): Promise<void> {
    const now = this.deps.clock.now();
    const most = Math.min(tenant.rate?.burst ?? Infinity, tenant.dailyQuota ?? Infinity);
    if (recipients > most) throw new RookeryError('TENANT_LIMIT_TOO_SMALL', `Message has ${recipients} recipients; this tenant may send to at most ${most} at once`);
    if (tenant.rate) {
      const taken = await this.deps.limiter.take(bucketKeys.tenant(tenant.name), tenant.rate, now, recipients);
      if (!taken.allowed) throw new RookeryError('TENANT_RATE_LIMITED', undefined, { retryAfterMs: Math.max(taken.retryAfterMs, 1_000) });
    }
    if (tenant.dailyQuota !== null) {
      const dayStart = now - (now % DAY_MS);
      const reserved = await this.deps.counters.reserve(counterKeys.tenantDay(tenant.name), dayStart, DAY_MS, recipients, tenant.dailyQuota);
      if (!reserved.ok) throw new RookeryError('TENANT_QUOTA_EXCEEDED', undefined, { retryAfterMs: dayStart + DAY_MS - now });
    }
  }
}
