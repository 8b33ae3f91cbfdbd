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
 * so a client retrying through a rate limit does not eat the quota. What a refused or failed
 * commit took is not given back: a client cannot get more than its budget by failing commits.
 */
export class TenantLimits {
  constructor(private readonly deps: { limiter: RateLimiter; counters: UsageCounters; clock: Clock }) {}

  /** Takes `recipients` from the tenant's budgets, or throws the RookeryError to answer with (Retry-After included). */
  async admit(tenant: Tenant, recipients: number): Promise<void> {
    const now = this.deps.clock.now();
    if (tenant.rate) {
      // A message larger than the burst takes the whole bucket rather than waiting forever.
      const cost = Math.min(recipients, tenant.rate.burst);
      const taken = await this.deps.limiter.take(bucketKeys.tenant(tenant.name), tenant.rate, now, cost);
      if (!taken.allowed) throw new RookeryError('TENANT_RATE_LIMITED', undefined, { retryAfterMs: Math.max(taken.retryAfterMs, 1_000) });
    }
    if (tenant.dailyQuota !== null) {
      const dayStart = now - (now % DAY_MS);
      const reserved = await this.deps.counters.reserve(counterKeys.tenantDay(tenant.name), dayStart, DAY_MS, recipients, tenant.dailyQuota);
      if (!reserved.ok) throw new RookeryError('TENANT_QUOTA_EXCEEDED', undefined, { retryAfterMs: dayStart + DAY_MS - now });
    }
  }
}
