/**
 * The generic cell rate algorithm, shared by the in-process limiter and mirrored line for line
 * by the Redis script (redis-rate-limiter.ts), so both take the same decisions.
 *
 * Each key keeps one number, its theoretical arrival time (TAT): when the bucket would be full
 * again. A token costs one emission interval (1 / rate); the bucket holds `burst` tokens, so a
 * take of `cost` is allowed when TAT + (cost - burst) * interval <= now. Nothing refills on a
 * timer, and a TAT in the past is the same as no state at all.
 *
 * Times are whole microseconds and the interval is rounded to one (3/s becomes 333 333 µs), so
 * every step is exact integer arithmetic on doubles (epoch microseconds stay far below 2^53):
 * no rounding drift over a long busy period, the same result in JavaScript and in Lua, and
 * waiting the announced retryAfterMs is always enough.
 */

export interface GcraLimit {
  ratePerSecond: number;
  burst: number;
}

export interface GcraDecision {
  allowed: boolean;
  /** 0 when allowed; else how long until the same take would be allowed (rounded up to ms). */
  retryAfterMs: number;
  /** The TAT (µs) to keep when allowed. */
  tat: number;
}

/** A whole bucket may take at most this long to refill (about 30 years), keeping sums exact. */
const MAX_BUCKET_US = 1e15;

/** Milliseconds (the clock's unit) to the microseconds the algorithm counts in. */
export function toMicros(ms: number): number {
  return Math.floor(ms * 1000);
}

/**
 * Checks the arguments of a take and returns the emission interval in whole microseconds (at
 * least 1: a rate above a million per second is as good as no limit).
 */
export function gcraIntervalUs(limit: GcraLimit, now: number, cost: number): number {
  const { ratePerSecond, burst } = limit;
  if (!Number.isFinite(now)) throw new RangeError(`now must be a finite time (ms), got ${now}`);
  if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0) throw new RangeError(`ratePerSecond must be positive, got ${ratePerSecond}`);
  if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError(`burst must be a positive integer, got ${burst}`);
  if (!Number.isSafeInteger(cost) || cost < 1) throw new RangeError(`cost must be a positive integer, got ${cost}`);
  // A take larger than the bucket could never be allowed; waiting for it would wait for ever.
  if (cost > burst) throw new RangeError(`cost ${cost} exceeds the burst of ${burst}`);
  const interval = Math.max(1, Math.round(1e6 / ratePerSecond));
  if (interval * burst > MAX_BUCKET_US) throw new RangeError(`a burst of ${burst} at ${ratePerSecond}/s takes too long to refill`);
  return interval;
}

/** One decision; `tat` is the key's stored TAT (µs), null when it has none. */
export function gcraTake(tat: number | null, nowUs: number, intervalUs: number, burst: number, cost: number): GcraDecision {
  const base = tat === null || tat < nowUs ? nowUs : tat;
  const waitUs = base - nowUs + (cost - burst) * intervalUs;
  if (waitUs > 0) return { allowed: false, retryAfterMs: Math.ceil(waitUs / 1000), tat: base };
  return { allowed: true, retryAfterMs: 0, tat: base + cost * intervalUs };
}
