import type { RateLimiter } from './contracts.ts';
import type { BucketKey } from './pool-keys.ts';
import type { RateLimit } from './shaping.ts';

export type Taken = { allowed: boolean; retryAfterMs: number };

/** How long a rate of zero (a throttle to nothing) says to wait before asking again. */
const ZERO_RATE_RETRY_MS = 3_600_000;

/** The most tokens one take from a bucket of `limit` may have: its burst, at least one. */
export function bucketSize(limit: RateLimit): number {
  return Math.max(1, Math.floor(limit.burst));
}

/**
 * Takes `count` tokens from a bucket. A take of more than the bucket holds takes the whole
 * bucket rather than never being allowed (callers that charge per message ask for at most
 * bucketSize and send only that many). A rate of zero never allows.
 */
export function takeTokens(limiter: RateLimiter, key: BucketKey, limit: RateLimit, now: number, count: number): Promise<Taken> {
  return onBucket(limiter.take.bind(limiter), key, limit, now, count);
}

/** What takeTokens would answer for `count` tokens at `now`, taking nothing (an explanation, not a delivery). */
export function peekTokens(limiter: RateLimiter, key: BucketKey, limit: RateLimit, now: number, count = 1): Promise<Taken> {
  return onBucket(limiter.peek.bind(limiter), key, limit, now, count);
}

function onBucket(ask: RateLimiter['take'], key: BucketKey, limit: RateLimit, now: number, count: number): Promise<Taken> {
  if (!(limit.ratePerSecond > 0)) return Promise.resolve({ allowed: false, retryAfterMs: ZERO_RATE_RETRY_MS });
  const burst = bucketSize(limit);
  return ask(key, { ratePerSecond: limit.ratePerSecond, burst }, now, Math.min(count, burst));
}
