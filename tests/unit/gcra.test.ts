import { describe, expect, it } from 'vitest';
import { gcraInterval, gcraTake } from '../../src/ippool/backend/gcra.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';

const T0 = 1_700_000_000_000;

describe('gcraTake', () => {
  it('allows a full burst from no state, then refuses with the time to the next token', () => {
    let tat: number | null = null;
    for (let i = 1; i <= 5; i++) {
      const d = gcraTake(tat, T0, 100, 5, 1);
      expect(d).toEqual({ allowed: true, retryAfterMs: 0, tat: T0 + i * 100 });
      tat = d.tat;
    }
    expect(gcraTake(tat, T0, 100, 5, 1)).toEqual({ allowed: false, retryAfterMs: 100, tat: T0 + 500 });
    expect(gcraTake(tat, T0 + 30, 100, 5, 1)).toEqual({ allowed: false, retryAfterMs: 70, tat: T0 + 500 });
    expect(gcraTake(tat, T0 + 100, 100, 5, 1)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0 + 600 });
  });

  it('treats a TAT in the past as no state', () => {
    expect(gcraTake(T0 - 1, T0, 100, 5, 3)).toEqual(gcraTake(null, T0, 100, 5, 3));
    expect(gcraTake(T0 - 50_000, T0, 100, 5, 5)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0 + 500 });
  });

  it('charges the cost in intervals and asks to wait for the missing tokens only', () => {
    // Two tokens left of five; four are asked for: two intervals to wait.
    expect(gcraTake(T0 + 300, T0, 100, 5, 4)).toEqual({ allowed: false, retryAfterMs: 200, tat: T0 + 300 });
    expect(gcraTake(T0 + 300, T0 + 200, 100, 5, 4)).toEqual({ allowed: true, retryAfterMs: 0, tat: T0 + 700 });
  });

  it('rounds a fractional wait up, so waiting that long is always enough', () => {
    const interval = 1000 / 3;
    const d = gcraTake(T0 + 2 * interval, T0, interval, 2, 1);
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 334 });
    expect(gcraTake(d.tat, T0 + 333, interval, 2, 1).allowed).toBe(false);
    expect(gcraTake(d.tat, T0 + 334, interval, 2, 1).allowed).toBe(true);
  });
});

describe('gcraInterval', () => {
  it('is 1000 / rate ms', () => {
    expect(gcraInterval({ ratePerSecond: 10, burst: 1 }, T0, 1)).toBe(100);
    expect(gcraInterval({ ratePerSecond: 0.5, burst: 1 }, T0, 1)).toBe(2000);
  });

  it('refuses limits and costs that make no sense', () => {
    expect(() => gcraInterval({ ratePerSecond: 0, burst: 1 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraInterval({ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraInterval({ ratePerSecond: 1, burst: 0 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraInterval({ ratePerSecond: 1, burst: 1.5 }, T0, 1)).toThrow(RangeError);
    expect(() => gcraInterval({ ratePerSecond: 1, burst: 2 }, T0, 0)).toThrow(RangeError);
    expect(() => gcraInterval({ ratePerSecond: 1, burst: 2 }, T0, 3)).toThrow(/exceeds the burst/);
    expect(() => gcraInterval({ ratePerSecond: 1, burst: 2 }, Number.NaN, 1)).toThrow(RangeError);
  });
});

describe('LocalRateLimiter', () => {
  const limit = { ratePerSecond: 10, burst: 5 };

  it('forgets keys whose state has passed, so memory follows the keys active now', async () => {
    const limiter = new LocalRateLimiter();
    for (let i = 0; i < 3000; i++) await limiter.take(`old-${i}`, limit, T0);
    expect(limiter.size).toBe(3000);
    // One second later every old key's TAT (T0 + 100) has passed; new keys trigger a sweep.
    for (let i = 0; i < 1200; i++) await limiter.take(`new-${i}`, limit, T0 + 1000);
    expect(limiter.size).toBeLessThan(3000);
    expect(limiter.size).toBeGreaterThanOrEqual(1096);
    // A forgotten key starts with a full bucket, exactly as it would have anyway.
    for (let i = 0; i < 5; i++) expect((await limiter.take('old-0', limit, T0 + 1000)).allowed).toBe(true);
    expect(await limiter.take('old-0', limit, T0 + 1000)).toEqual({ allowed: false, retryAfterMs: 100 });
  });

  it('keeps keys whose state is still ahead of now', async () => {
    const limiter = new LocalRateLimiter();
    for (let i = 0; i < 2100; i++) await limiter.take(`k-${i}`, { ratePerSecond: 0.001, burst: 1 }, T0 + i);
    expect(limiter.size).toBe(2100);
    expect((await limiter.take('k-0', { ratePerSecond: 0.001, burst: 1 }, T0 + 2100)).allowed).toBe(false);
  });
});
