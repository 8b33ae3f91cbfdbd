/**
 * Argument checks and expiry shared by both UsageCounters implementations, so the local store
 * and Redis refuse the same calls and forget a window at the same time.
 */

export function checkUsageKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('usage counter key must be a non-empty string');
  // PostgreSQL text cannot hold NUL; refused everywhere so every backend accepts the same keys.
  if (key.includes('\u0000')) throw new TypeError('usage counter key must not contain NUL');
}

export function checkWindow(windowStart: number, windowMs: number): void {
  if (!Number.isSafeInteger(windowStart)) throw new RangeError(`windowStart must be an integer (ms), got ${windowStart}`);
  if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
}

export function checkCount(name: 'amount' | 'limit', value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}

/**
 * When a window's counter may be forgotten: one whole window after the window ends (so the
 * previous day's usage stays readable through the next day), and never sooner than `windowMs`
 * after this write, whatever window it is for. Always later than `now`.
 */
export function usageExpiresAt(windowStart: number, windowMs: number, now: number): number {
  return Math.max(windowStart + windowMs, now) + windowMs;
}
