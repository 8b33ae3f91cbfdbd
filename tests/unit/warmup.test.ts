import { describe, expect, it } from 'vitest';
import { ipWarmupSchema, parseDate, warmupConfigSchema } from '../../src/config/pool-schemas.ts';
import { DAY_MS, HOUR_MS, dayIndex, dayWindow, effectiveStart, formatDate, hourWindow, warmupCaps } from '../../src/ippool/warmup.ts';

const at = (iso: string) => Date.parse(iso);
const START = at('2026-11-01T00:00:00Z');
const plan = [50, 100, 200];

function caps(now: number, extra: { scale?: number; activeHours?: number; start?: number } = {}) {
  return warmupCaps({ plan, start: extra.start ?? START, now, activeHours: extra.activeHours ?? 16, scale: extra.scale ?? 1 });
}

describe('dates', () => {
  it('parses YYYY-MM-DD to 00:00 UTC of that date', () => {
    expect(parseDate('2026-11-01')).toBe(START);
    expect(parseDate('2028-02-29')).toBe(at('2028-02-29T00:00:00Z'));
  });

  it('refuses dates that do not exist and other forms', () => {
    for (const text of ['2026-02-30', '2027-02-29', '2026-13-01', '2026-00-10', '2026-1-1', '01/11/2026', '2026-11-01T00:00:00Z', '']) {
      expect(parseDate(text), text).toBeNull();
    }
  });

  it('formats the UTC day of an instant', () => {
    expect(formatDate(at('2026-11-01T23:59:59.999Z'))).toBe('2026-11-01');
    expect(formatDate(at('2026-11-02T00:00:00Z'))).toBe('2026-11-02');
  });
});

describe('dayIndex', () => {
  it('counts UTC calendar days, day 0 being the start date', () => {
    expect(dayIndex(START, START)).toBe(0);
    expect(dayIndex(START, at('2026-11-01T23:59:59.999Z'))).toBe(0);
    expect(dayIndex(START, at('2026-11-02T00:00:00Z'))).toBe(1);
    expect(dayIndex(START, at('2026-12-01T12:00:00Z'))).toBe(30);
    expect(dayIndex(START, at('2026-10-31T23:59:59Z'))).toBe(-1);
  });

  it('does not shift on days that are 23 or 25 hours long in local time zones', () => {
    // 2026-10-25 and 2026-03-29 are daylight-saving changes in Europe; UTC days are all 24 h.
    const start = at('2026-03-28T00:00:00Z');
    expect(dayIndex(start, at('2026-03-30T00:30:00Z'))).toBe(2);
    expect(dayIndex(at('2026-10-24T00:00:00Z'), at('2026-10-26T23:30:00Z'))).toBe(2);
  });
});

describe('windows', () => {
  it('a day window is the UTC calendar day', () => {
    expect(dayWindow(at('2026-11-05T17:42:10Z'))).toEqual({ start: at('2026-11-05T00:00:00Z'), ms: DAY_MS });
    expect(dayWindow(at('2026-11-05T00:00:00Z')).start).toBe(at('2026-11-05T00:00:00Z'));
  });

  it('an hour window is the UTC clock hour', () => {
    expect(hourWindow(at('2026-11-05T17:42:10Z'))).toEqual({ start: at('2026-11-05T17:00:00Z'), ms: HOUR_MS });
    expect(hourWindow(at('2026-11-05T17:59:59.999Z')).start).toBe(at('2026-11-05T17:00:00Z'));
    expect(hourWindow(at('2026-11-05T18:00:00Z')).start).toBe(at('2026-11-05T18:00:00Z'));
  });
});

describe('warmupCaps', () => {
  it('gives each day its cap, and the hourly cap is the daily cap over the active hours, rounded up', () => {
    expect(caps(at('2026-11-01T09:00:00Z'))).toEqual({ phase: 'warming', day: 0, daily: 50, hourly: 4 });
    expect(caps(at('2026-11-02T09:00:00Z'))).toEqual({ phase: 'warming', day: 1, daily: 100, hourly: 7 });
    expect(caps(at('2026-11-03T23:59:59Z'))).toEqual({ phase: 'warming', day: 2, daily: 200, hourly: 13 });
    expect(caps(at('2026-11-02T09:00:00Z'), { activeHours: 24 }).hourly).toBe(5);
    expect(caps(at('2026-11-02T09:00:00Z'), { activeHours: 1 }).hourly).toBe(100);
  });

  it('is uncapped from the day after the plan', () => {
    expect(caps(at('2026-11-04T00:00:00Z'))).toEqual({ phase: 'warm', day: null, daily: null, hourly: null });
    expect(caps(at('2027-06-01T00:00:00Z')).phase).toBe('warm');
  });

  it('sends nothing before the start date', () => {
    expect(caps(at('2026-10-31T23:00:00Z'))).toEqual({ phase: 'pending', day: -1, daily: 0, hourly: 0 });
  });

  it('scales caps by the provider, rounding down but keeping at least 1', () => {
    expect(caps(at('2026-11-02T09:00:00Z'), { scale: 0.5 })).toMatchObject({ daily: 50, hourly: 4 });
    expect(caps(at('2026-11-01T09:00:00Z'), { scale: 0.33 })).toMatchObject({ daily: 16, hourly: 1 });
    expect(caps(at('2026-11-01T09:00:00Z'), { scale: 0.001 })).toMatchObject({ daily: 1, hourly: 1 });
    expect(caps(at('2026-11-03T09:00:00Z'), { scale: 2.5 })).toMatchObject({ daily: 500, hourly: 32 });
  });

  it('is not off by one where floating point is (175000 x 0.7 = 122499.99999999999)', () => {
    const caps = warmupCaps({ plan: [175_000], start: START, now: START, activeHours: 16, scale: 0.7 });
    expect(caps.daily).toBe(122_500);
  });

  it('refuses a scale of 0 or less and active hours outside 1..24', () => {
    expect(() => caps(START, { scale: 0 })).toThrow(RangeError);
    expect(() => caps(START, { activeHours: 0 })).toThrow(RangeError);
    expect(() => caps(START, { activeHours: 25 })).toThrow(RangeError);
  });
});

describe('effectiveStart (idle restart)', () => {
  const idleRestartMs = 30 * DAY_MS;
  const base = { configuredStart: START, lastSentAt: null, restartedAt: null, idleRestartMs };

  it('keeps the configured start while the IP sends', () => {
    const now = at('2026-12-20T10:00:00Z');
    expect(effectiveStart({ ...base, lastSentAt: at('2026-12-19T22:00:00Z'), now })).toEqual({ start: START, restarted: false });
  });

  it('restarts from today (00:00 UTC) once the IP was idle longer than idleRestart', () => {
    const lastSentAt = at('2026-12-01T10:00:00Z');
    expect(effectiveStart({ ...base, lastSentAt, now: lastSentAt + idleRestartMs })).toEqual({ start: START, restarted: false });
    expect(effectiveStart({ ...base, lastSentAt, now: lastSentAt + idleRestartMs + 1 })).toEqual({
      start: at('2026-12-31T00:00:00Z'),
      restarted: true,
    });
  });

  it('a warm IP that goes idle starts its plan again too', () => {
    const result = effectiveStart({ ...base, configuredStart: at('2025-01-01T00:00:00Z'), lastSentAt: at('2026-05-01T08:00:00Z'), now: at('2026-06-15T08:00:00Z') });
    expect(result).toEqual({ start: at('2026-06-15T00:00:00Z'), restarted: true });
  });

  it('counts from the persisted restart, and does not restart again before it could send', () => {
    const restartedAt = at('2027-01-10T00:00:00Z');
    const lastSentAt = at('2026-12-01T10:00:00Z');
    expect(effectiveStart({ ...base, lastSentAt, restartedAt, now: at('2027-01-25T00:00:00Z') })).toEqual({ start: restartedAt, restarted: false });
  });

  it('restarts a plan that ran for longer than idleRestart without sending anything', () => {
    expect(effectiveStart({ ...base, now: START + idleRestartMs + 1 })).toEqual({ start: START + 30 * DAY_MS, restarted: true });
    const restartedAt = at('2027-01-10T00:00:00Z');
    expect(effectiveStart({ ...base, restartedAt, now: restartedAt + idleRestartMs + 1 }).restarted).toBe(true);
  });

  it('a configured start later than the last restart wins: the operator started a fresh plan', () => {
    const configuredStart = at('2027-03-01T00:00:00Z');
    const result = effectiveStart({ ...base, configuredStart, restartedAt: at('2027-01-10T00:00:00Z'), lastSentAt: at('2027-01-12T00:00:00Z'), now: at('2027-03-05T00:00:00Z') });
    expect(result).toEqual({ start: configuredStart, restarted: false });
  });

  it('never restarts a plan whose start is still ahead', () => {
    const configuredStart = at('2027-03-01T00:00:00Z');
    expect(effectiveStart({ ...base, configuredStart, lastSentAt: at('2026-01-01T00:00:00Z'), now: at('2027-02-01T00:00:00Z') })).toEqual({
      start: configuredStart,
      restarted: false,
    });
  });
});

describe('schemas', () => {
  it('warmup: {} and nothing at all give the defaults', () => {
    const defaults = { activeHours: 16, idleRestart: 30 * DAY_MS, plans: {} };
    expect(warmupConfigSchema.parse({})).toEqual(defaults);
    expect(warmupConfigSchema.parse(undefined)).toEqual(defaults);
  });

  it('warmup: durations and operator plans', () => {
    expect(warmupConfigSchema.parse({ activeHours: 24, idleRestart: '45d', plans: { myplan: [100, 200, 400] } })).toEqual({
      activeHours: 24,
      idleRestart: 45 * DAY_MS,
      plans: { myplan: [100, 200, 400] },
    });
  });

  it('warmup: bad values are named by path', () => {
    const result = warmupConfigSchema.safeParse({ activeHours: 25, idleRestart: '0d', plans: { ok: [], 'bad name': [1], neg: [10, -1] } });
    const problems = result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^activeHours: /),
        'idleRestart: not a duration above zero (use e.g. 500ms, 25s, 10m, 1h, 5d): "0d"',
        'plans.ok: a plan needs at least one day',
        expect.stringMatching(/^plans\.neg\.1: /),
      ]),
    );
    // Names are checked once the values are valid.
    const names = warmupConfigSchema.safeParse({ plans: { 'bad name': [1] } }).error!.issues;
    expect(names.map((i) => [i.path.join('.'), i.message])).toEqual([['plans.bad name', 'not a name (letters, digits, "-" and "_", starting with a letter)']]);
  });

  it('ips[].warmup: a plan name and a start date, start in ms', () => {
    expect(ipWarmupSchema.parse({ plan: 'conservative', start: '2026-11-01' })).toEqual({ plan: 'conservative', start: START });
    const bad = ipWarmupSchema.safeParse({ plan: 'conservative', start: '2026-11-31', extra: 1 }).error!.issues;
    expect(bad.map((i) => i.message)).toEqual(expect.arrayContaining(['not a date (use YYYY-MM-DD): "2026-11-31"']));
    expect(bad.some((i) => i.code === 'unrecognized_keys')).toBe(true);
    expect(ipWarmupSchema.safeParse({ start: '2026-11-01' }).success).toBe(false);
  });
});
