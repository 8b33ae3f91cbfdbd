import { describe, expect, it } from 'vitest';
import { gcraIntervalUs, gcraTake, toMicros } from '../../src/ippool/backend/gcra.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';

const T0 = 1_700_000_000_000;
const T0_US = T0 * 1000;
const MS = 1000;

describe('gcraTake', () => {
  it('allows a full burst from no state, then refuses with the time to the next token', () => {
    let tat: number | null = null;
    for (let i = 1; i <= 5; i++) {
      const d = gcraTake(tat, T0_US, 100 * MS, 5, 1);
      expect(d).toEqual({ allowed: true, retryAfterMs: 0, tat: T0_US + i * 100 * MS });
      tat = d.tat;
    }
    expect(gcraTake(tat, T0_US, 100 * MS, 5, 1)).toEqual({ allowed: false, retryAfterMs: 100, tat: T0_US + 500 * MS });
    expect(gcraTake(tat, T0_US + 30 * MS, 100 * MS, 5, 1)).toEqual({ allowed: false, retryAfterMs: 70, tat: T0_US + 500 * MS });
    expect(gcraTake(tat, T0_US + 100 * MS, 100 * MS, 5, 1)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0_US + 600 * MS });
  });

  it('treats a TAT in the past as no state', () => {
    expect(gcraTake(T0_US - 1, T0_US, 100 * MS, 5, 3)).toEqual(gcraTake(null, T0_US, 100 * MS, 5, 3));
    expect(gcraTake(T0_US - 50_000 * MS, T0_US, 100 * MS, 5, 5)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0_US + 500 * MS });
  });

  it('charges the cost in intervals and asks to wait for the missing tokens only', () => {
    // Two tokens left of five; four are asked for: two intervals to wait.
    expect(gcraTake(T0_US + 300 * MS, T0_US, 100 * MS, 5, 4)).toEqual({ allowed: false, retryAfterMs: 200, tat: T0_US + 300 * MS });
    expect(gcraTake(T0_US + 300 * MS, T0_US + 200 * MS, 100 * MS, 5, 4)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0_US + 700 * MS });
  });

  it('rounds a wait up to whole milliseconds, so waiting that long is always enough', () => {
    const interval = gcraIntervalUs({ ratePerSecond: 3, burst: 2 }, T0, 1);
    const d = gcraTake(T0_US + 2 * interval, T0_US, interval, 2, 1);
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 334 });
    expect(gcraTake(d.tat, T0_US + 333 * MS, interval, 2, 1).allowed).toBe(false);
    expect(gcraTake(d.tat, T0_US + 334 * MS, interval, 2, 1).allowed).toBe(true);
  });

  it('does not drift over a long saturated run with a fractional rate', () => {
    // 3 per second, taken as fast as allowed for a day: a take is due exactly every 333 333 µs.
    const limit = { ratePerSecond: 3, burst: 3 };
    const interval = gcraIntervalUs(limit, T0, 1);
    let tat: number | null = null;
    let now = T0_US;
    for (let i = 0; i < 3 * 86_400; i++) {
      let d = gcraTake(tat, now, interval, limit.burst, 1);
      if (!d.allowed) {
        now += d.retryAfterMs * MS;
        d = gcraTake(tat, now, interval, limit.burst, 1);
      }
      expect(d.allowed).toBe(true);
      tat = d.tat;
    }
    expect(tat).toBe(T0_US + 3 * 86_400 * interval);
  });
});

describe('gcraIntervalUs', () => {
  it('is 1 / rate in whole microseconds, at least 1', () => {
    expect(gcraIntervalUs({ ratePerSecond: 10, burst: 1 }, T0, 1)).toBe(100_000);
    expect(gcraIntervalUs({ ratePerSecond: 0.5, burst: 1 }, T0, 1)).toBe(2_000_000);
    expect(gcraIntervalUs({ ratePerSecond: 3, burst: 1 }, T0, 1)).toBe(333_333);
    expect(gcraIntervalUs({ ratePerSecond: 1e9, burst: 1 }, T0, 1)).toBe(1);
  });

  it('refuses limits and costs that make no sense', () => {
    expect(() => gcraIntervalUs({ ratePerSecond: 0, burst: 1 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: 1, burst: 0 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: 1, burst: 1.5 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: 1, burst: 2 }, T0, 0)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: 1, burst: 2 }, T0, 3)).toThrow(/exceeds the burst/);
    expect(() => gcraIntervalUs({ ratePerSecond: 1, burst: 2 }, Number.NaN, 1)).toThrow(RangeError);
    expect(() => gcraIntervalUs({ ratePerSecond: 1e-10, burst: 1 }, T0, 1)).toThrow(/too long to refill/);
  });

  it('counts fractional milliseconds down to the microsecond', () => {
    expect(toMicros(T0)).toBe(T0_US);
    expect(toMicros(1.2345)).toBe(1234);
  });
});

describe('LocalRateLimiter', () => {
  const limit = { ratePerSecond: 10, burst: 5 };

  it('forgets keys whose state has passed, so memory follows the keys active now', async () => {
    const limiter = new LocalRateLimiter();
    for (let i = 0; i < 3000; i++) await limiter.take(`old-${i}`, limit, T0);
    expect(limiter.size).toBe(3000);
    // One second later every old key's TAT (T0 + 100 ms) has passed; new keys trigger a sweep.
    for (let i = 0; i < 1200; i++) await limiter.take(`new-${i}`, limit, T0 + 1000);
    expect(limiter.size).toBeLessThan(3000);
    expect(limiter.size).toBeGreaterThanOrEqual(1096);
    // A forgotten key starts with a full bucket, exactly as it would have anyway.
    for (let i = 0; i < 5; i++) expect((await limiter.take('old-0', limit, T0 + 1000)).allowed).toBe(true);
    expect(await limiter.take('old-0', limit, T0 + 1000)).toEqual({ allowed: false, retryAfterMs: 100 });
  });

  it('keeps keys whose state is still ahead of now', async () => {
    const slow = { ratePerSecond: 0.001, burst: 1 };
    const limiter = new LocalRateLimiter();
    for (let i = 0; i < 2100; i++) await limiter.take(`k-${i}`, slow, T0 + i);
    expect(limiter.size).toBe(2100);
    expect((await limiter.take('k-0', slow, T0 + 2100)).allowed).toBe(false);
  });
});
