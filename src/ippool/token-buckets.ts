import type { RateLimiter } from './contracts.ts';
import type { BucketKey } from './pool-keys.ts';
import type { RateLimit } from './shaping.ts';

export type Taken = { allowed: boolean; retryAfterMs: number };

/** How long a rate of zero (a throttle to nothing) says to wait before asking again. */
const ZERO_RATE_RETRY_MS = 3_600_000;

/**
 * Takes `count` tokens from a bucket. A transaction with more recipients than the bucket holds
 * takes the whole bucket: it waits for a full bucket rather than never going out. A rate of zero
 * never allows.
 */
export function takeTokens(limiter: RateLimiter, key: BucketKey, limit: RateLimit, now: number, count: number): Promise<Taken> {
  if (!(limit.ratePerSecond > 0)) return Promise.resolve({ allowed: false, retryAfterMs: ZERO_RATE_RETRY_MS });
  const burst = Math.max(1, Math.floor(limit.burst));
  return limiter.take(key, { ratePerSecond: limit.ratePerSecond, burst }, now, Math.min(count, burst));
}
