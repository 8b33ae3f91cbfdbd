import { describe, expect, it } from 'vitest';
import { loadPoolData } from '../../src/ippool/pool-data.ts';
import { parseDate } from '../../src/config/pool-schemas.ts';
import { DAY_MS, HOUR_MS, dayWindow, hourWindow, warmupCaps, type TimeWindow } from '../../src/ippool/warmup.ts';
import { manualClock } from '../helpers/manual-clock.ts';

/**
 * 30 simulated days of the shipped conservative plan, driven by a manual clock, for providers
 * with different warmupScales from config/providers.yaml. The sender wants far more than the
 * caps allow, so every window fills to its cap; the counter is keyed by the windows warmup.ts
 * computes, like the pool's usage counters. The checks regroup every send by UTC calendar day
 * and hour from its timestamp, independently of those windows.
 */

const data = loadPoolData();
const plan = data.plans.get('conservative')!;
const { activeHours } = data.warmup;
const START = parseDate('2026-11-01')!;
/** Attempts per simulated hour: later attempts in an hour must see what earlier ones used. */
const ATTEMPTS_PER_HOUR = 4;

/** Reserve-if-within-limit counter per (key, window start), like UsageCounters.reserve. */
function windowCounter() {
  const totals = new Map<string, number>();
  return {
    used: (key: string, window: TimeWindow) => totals.get(`${key}@${window.start}`) ?? 0,
    add: (key: string, window: TimeWindow, amount: number) =>
      totals.set(`${key}@${window.start}`, (totals.get(`${key}@${window.start}`) ?? 0) + amount),
  };
}

interface Send {
  at: number;
  count: number;
  capped: boolean;
}

function simulate(provider: string, days: number) {
  const scale = data.providers.warmupScale(provider);
  const clock = manualClock(START - 2 * HOUR_MS); // starts before day 0: a pending plan sends nothing
  const counter = windowCounter();
  const sends: Send[] = [];
  const end = START + days * DAY_MS;
  while (clock.now() < end) {
    for (let attempt = 0; attempt < ATTEMPTS_PER_HOUR; attempt++) {
      const now = clock.now();
      const caps = warmupCaps({ plan, start: START, now, activeHours, scale });
      // Far more than any cap: whatever is sent is what the caps allowed.
      const wanted = 1_000_000;
      let count = wanted;
      if (caps.daily !== null && caps.hourly !== null) {
        const day = dayWindow(now);
        const hour = hourWindow(now);
        count = Math.min(wanted, caps.daily - counter.used('day', day), caps.hourly - counter.used('hour', hour));
        if (count > 0) {
          counter.add('day', day, count);
          counter.add('hour', hour, count);
        }
      }
      if (count > 0) sends.push({ at: now, count, capped: caps.daily !== null });
      clock.advance(HOUR_MS / ATTEMPTS_PER_HOUR);
    }
  }
  return { scale, sends };
}

function sumBy(sends: Send[], keyOf: (at: number) => string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const s of sends) totals.set(keyOf(s.at), (totals.get(keyOf(s.at)) ?? 0) + s.count);
  return totals;
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const utcHour = (ms: number) => new Date(ms).toISOString().slice(0, 13);
const dayNumber = (isoDay: string) => (Date.parse(`${isoDay}T00:00:00Z`) - START) / DAY_MS;

describe('30 simulated days of the conservative plan', () => {
  const providers = ['gmail', 'outlook', 'yahoo', 'other'];

  it('uses providers with different scales', () => {
    expect(new Set(providers.map((p) => data.providers.warmupScale(p))).size).toBeGreaterThanOrEqual(3);
    expect(plan).toHaveLength(30);
  });

  for (const provider of providers) {
    it(`${provider}: no day and no hour ever exceeds its cap, each day reaches it, day 30 on is uncapped`, () => {
      const { scale, sends } = simulate(provider, 32);
      const capped = sends.filter((s) => s.capped);
      const expectedDaily = (day: number) => Math.max(1, Math.floor(plan[day]! * scale));

      expect(sends.every((s) => s.at >= START)).toBe(true);

      const perDay = sumBy(capped, utcDay);
      expect([...perDay.keys()].map(dayNumber)).toEqual([...Array(30).keys()]);
      for (const [day, total] of perDay) {
        // Sending as much as allowed, each day ends exactly at its (scaled) cap.
        expect(total, `${provider} ${day}`).toBe(expectedDaily(dayNumber(day)));
      }

      for (const [hour, total] of sumBy(capped, utcHour)) {
        const hourly = Math.ceil(expectedDaily(dayNumber(hour.slice(0, 10))) / activeHours);
        expect(total, `${provider} ${hour}`).toBeLessThanOrEqual(hourly);
      }

      // The 30th day (day index 29) is the plan's last: 175000 scaled.
      expect(perDay.get('2026-11-30')).toBe(Math.floor(175_000 * scale));
      // From the 31st day (index 30) the IP is warm: nothing is held back any more.
      const warm = sends.filter((s) => !s.capped);
      expect(warm.length).toBeGreaterThan(0);
      expect(Math.min(...warm.map((s) => s.at))).toBe(START + 30 * DAY_MS);
      expect(warm.every((s) => s.count === 1_000_000)).toBe(true);
      expect(warmupCaps({ plan, start: START, now: START + 31 * DAY_MS + 5 * HOUR_MS, activeHours, scale }).daily).toBeNull();
    });
  }

  it('spreads a day over the active hours: the first hours never carry the whole day', () => {
    const { scale, sends } = simulate('gmail', 30);
    const perHour = sumBy(sends, utcHour);
    for (let day = 0; day < 30; day++) {
      const iso = utcDay(START + day * DAY_MS);
      const hoursUsed = [...perHour.keys()].filter((h) => h.startsWith(iso)).length;
      const daily = Math.floor(plan[day]! * scale);
      // Full hours at the hourly cap, then the rest: close to activeHours, never one burst.
      expect(hoursUsed, iso).toBe(Math.ceil(daily / Math.ceil(daily / activeHours)));
      expect(hoursUsed, iso).toBeGreaterThan(activeHours / 2);
    }
  });
});
