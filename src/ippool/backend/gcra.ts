/**
 * The generic cell rate algorithm, shared by the in-process limiter and mirrored line for line
 * by the Redis script (redis-rate-limiter.ts), so both take the same decisions.
 *
 * Each key keeps one number, its theoretical arrival time (TAT): when the bucket would be full
 * again. A token costs `intervalMs` (1000 / rate); the bucket holds `burst` tokens, so a take of
 * `cost` is allowed when TAT + cost * interval - burst * interval <= now. Nothing refills on a
 * timer, and a TAT in the past is the same as no state at all.
 */

export interface GcraLimit {
  ratePerSecond: number;
  burst: number;
}

export interface GcraDecision {
  allowed: boolean;
  /** 0 when allowed; else how long until the same take would be allowed (rounded up). */
  retryAfterMs: number;
  /** The TAT to keep when allowed (ms, fractional). */
  tat: number;
}

/** Checks the arguments of a take and returns the emission interval in ms. */
export function gcraInterval(limit: GcraLimit, now: number, cost: number): number {
  const { ratePerSecond, burst } = limit;
  if (!Number.isFinite(now)) throw new RangeError(`now must be a finite time (ms), got ${now}`);
  if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0) throw new RangeError(`ratePerSecond must be positive, got ${ratePerSecond}`);
  if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError(`burst must be a positive integer, got ${burst}`);
  if (!Number.isSafeInteger(cost) || cost < 1) throw new RangeError(`cost must be a positive integer, got ${cost}`);
  // A take larger than the bucket could never be allowed; waiting for it would wait for ever.
  if (cost > burst) throw new RangeError(`cost ${cost} exceeds the burst of ${burst}`);
  return 1000 / ratePerSecond;
}

/** One decision; `tat` is the key's stored TAT, null when it has none. */
export function gcraTake(tat: number | null, now: number, intervalMs: number, burst: number, cost: number): GcraDecision {
  const base = tat === null || tat < now ? now : tat;
  const next = base + cost * intervalMs;
  const allowAt = next - burst * intervalMs;
  if (allowAt > now) return { allowed: false, retryAfterMs: Math.ceil(allowAt - now), tat: base };
  return { allowed: true, retryAfterMs: 0, tat: next };
}
