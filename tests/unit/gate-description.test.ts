import { describe, expect, it } from 'vitest';
import { describeCheck, describeWeight, type GateReading } from '../../src/ippool/gate-description.ts';
import { bucketKeys } from '../../src/ippool/pool-keys.ts';
import { ALL_PROVIDERS, providerScope, siteScope } from '../../src/ippool/restriction-scope.ts';
import { dayWindow, hourWindow, utcDayStart } from '../../src/ippool/warmup.ts';

/** How each gate of selection is described to an operator (GET /v1/explain): what it found, whether it lets a message through, and until when not. */

const NOW = Date.UTC(2026, 10, 1, 9, 10);
const iso = (ms: number) => new Date(ms).toISOString();
const gmail = providerScope('gmail');

describe('the weight check', () => {
  it('passes a weight above 0 and says where it comes from and what reputation or a blocklist listing did to it', () => {
    expect(describeWeight({ configured: 100, base: 100, weight: 100, reason: null }, null)).toMatchObject({ check: 'weight', ok: true, detail: 'weight 100, configured (ips[].weight)' });
    const lowered = describeWeight({ configured: 100, base: 100, weight: 60, reason: 'score 0.42 below floor 0.70 for gmail: weight 100 -> 60' }, null);
    expect(lowered).toMatchObject({ ok: true, detail: 'weight 100, configured (ips[].weight); lowered: score 0.42 below floor 0.70 for gmail: weight 100 -> 60' });
    const listed = describeWeight({ configured: 100, base: 100, weight: 50, reason: 'listed on barracuda: weight 100 -> 50' }, null);
    expect(listed).toMatchObject({ ok: true, detail: 'weight 100, configured (ips[].weight); lowered: listed on barracuda: weight 100 -> 50' });
  });

  it("refuses weight 0, an operator's or the configuration's", () => {
    const override = { weight: 0, by: 'night-shift', reason: 'draining', setAt: NOW };
    expect(describeWeight({ configured: 100, base: 0, weight: 0, reason: null }, override)).toEqual({
      check: 'weight',
      ok: false,
      detail: 'weight 0, set by night-shift (draining) in place of the configured 100: out of rotation',
      retryAt: null,
      restriction: null,
      warmup: null,
    });
    expect(describeWeight({ configured: 0, base: 0, weight: 0, reason: null }, null).detail).toBe('weight 0, configured (ips[].weight): out of rotation');
  });
});

describe('the gates', () => {
  it('refuses a suspension until it ends, naming who or what set it', () => {
    const operator: GateReading = { kind: 'suspension', gate: { kind: 'suspension', scope: ALL_PROVIDERS, restriction: { action: 'suspend', rule: 'operator', by: 'night-shift', reason: 'listed', until: NOW + 7_200_000 } } };
    expect(describeCheck(operator, NOW)).toMatchObject({
      check: 'suspended',
      ok: false,
      detail: `suspended for every provider until ${iso(NOW + 7_200_000)} by night-shift: listed`,
      retryAt: NOW + 7_200_000,
      restriction: { scope: 'all', provider: null, rule: 'operator', by: 'night-shift' },
    });
    const reaction: GateReading = { kind: 'suspension', gate: { kind: 'suspension', scope: gmail, restriction: { action: 'suspend', rule: 'spamhaus', reason: '554 listed', until: NOW + 1000 } } };
    expect(describeCheck(reaction, NOW).detail).toBe(`suspended for gmail until ${iso(NOW + 1000)} by rule spamhaus: 554 listed`);
  });

  it('passes a throttle with a token and refuses one without, saying when the next message may go', () => {
    const restriction = { action: 'throttle' as const, ratePerHour: 60, rule: 'gmail-unusual-rate', reason: '421 4.7.28', until: NOW + 3_600_000 };
    const gate = { kind: 'throttle' as const, scope: gmail, restriction, key: bucketKeys.throttle('127.0.0.2', gmail), limit: { ratePerSecond: 60 / 3600, burst: 1 } };
    const head = `throttled to 60/h for gmail until ${iso(NOW + 3_600_000)} by rule gmail-unusual-rate (421 4.7.28)`;
    expect(describeCheck({ kind: 'throttle', gate, taken: { allowed: true, retryAfterMs: 0 } }, NOW)).toMatchObject({ ok: true, detail: `${head}: a message may go now`, retryAt: null });
    expect(describeCheck({ kind: 'throttle', gate, taken: { allowed: false, retryAfterMs: 42_000 } }, NOW)).toMatchObject({
      ok: false,
      detail: `${head}: the next message may go at ${iso(NOW + 42_000)}`,
      retryAt: NOW + 42_000,
      restriction: { scope: 'provider', provider: 'gmail', action: 'throttle', ratePerHour: 60 },
    });
  });

  it('describes the ramp back, a site of other, the message rate and a path that cannot reach its site', () => {
    const site = siteScope('other', 'mx.tiny-isp.test');
    const recovery: GateReading = {
      kind: 'recovery',
      gate: { kind: 'recovery', scope: site, recovery: { action: { kind: 'suspend-provider' }, endedAt: NOW - 60_000 }, key: bucketKeys.recovery('127.0.0.2', site), limit: { ratePerSecond: 2.5, burst: 2 } },
      taken: { allowed: true, retryAfterMs: 0 },
    };
    expect(describeCheck(recovery, NOW)).toMatchObject({
      check: 'recovering',
      ok: true,
      detail: `coming back after a suspension for site mx.tiny-isp.test (other) ended at ${iso(NOW - 60_000)}: 2.5/s now, rising to the normal rate: a message may go now`,
    });
    const rate = { kind: 'rate' as const, limit: { ratePerSecond: 100, burst: 100 } };
    expect(describeCheck({ kind: 'rate', gate: rate, path: { allowed: false, retryAfterMs: 10, down: null } }, NOW)).toMatchObject({
      check: 'rate',
      ok: false,
      detail: `message rate 100/s per IP and site (shaping): the next message may go at ${iso(NOW + 10)}`,
    });
    const down = { since: NOW - 30_000, reason: 'connection refused by mx.dead.test', probeAt: NOW + 30_000 };
    expect(describeCheck({ kind: 'rate', gate: rate, path: { allowed: false, retryAfterMs: 30_000, down } }, NOW)).toEqual({
      check: 'unreachable',
      ok: false,
      detail: `cannot reach the site since ${iso(NOW - 30_000)} (connection refused by mx.dead.test); next probe at ${iso(NOW + 30_000)}`,
      retryAt: NOW + 30_000,
      restriction: null,
      warmup: null,
    });
  });

  it('refuses a warm-up plan that has not started or whose cap is reached, until the window ends', () => {
    const gate = { kind: 'warmup' as const, warmup: { plan: 'tiny', start: utcDayStart(NOW) } };
    const hour = hourWindow(NOW);
    const day = dayWindow(NOW);
    const warming = (hourUsed: number, dayUsed: number): GateReading => ({
      kind: 'warmup',
      gate,
      warmup: {
        start: utcDayStart(NOW),
        restartsOnNextSend: false,
        caps: { phase: 'warming', day: 0, hourly: 3, daily: 48 },
        windows: [
          { name: 'hour', window: hour, cap: 3, used: hourUsed },
          { name: 'day', window: day, cap: 48, used: dayUsed },
        ],
      },
    });
    expect(describeCheck(warming(2, 2), NOW)).toMatchObject({ ok: true, detail: 'warm-up plan tiny, day 0: 2 of 3 this hour, 2 of 48 this day', retryAt: null });
    const full = describeCheck(warming(3, 3), NOW);
    expect(full).toMatchObject({ ok: false, retryAt: hour.start + hour.ms, detail: `warm-up plan tiny, day 0: 3 of 3 this hour, 3 of 48 this day: cap reached until ${iso(hour.start + hour.ms)}` });
    expect(full.warmup).toEqual({
      plan: 'tiny',
      start: utcDayStart(NOW),
      phase: 'warming',
      day: 0,
      restartsOnNextSend: false,
      hourly: { cap: 3, used: 3, windowStart: hour.start, windowEnd: hour.start + hour.ms },
      daily: { cap: 48, used: 3, windowStart: day.start, windowEnd: day.start + day.ms },
    });
    // The day's cap reached: nothing before tomorrow, whatever the hour has left.
    expect(describeCheck(warming(1, 48), NOW).retryAt).toBe(day.start + day.ms);

    const pending: GateReading = { kind: 'warmup', gate, warmup: { start: utcDayStart(NOW) + 86_400_000, restartsOnNextSend: false, caps: { phase: 'pending', day: -1, daily: 0, hourly: 0 }, windows: [] } };
    expect(describeCheck(pending, NOW)).toMatchObject({ ok: false, detail: 'warm-up plan tiny starts on 2026-11-02: nothing before', retryAt: utcDayStart(NOW) + 86_400_000 });
    const warm: GateReading = { kind: 'warmup', gate, warmup: { start: utcDayStart(NOW), restartsOnNextSend: false, caps: { phase: 'warm', day: null, daily: null, hourly: null }, windows: [] } };
    expect(describeCheck(warm, NOW)).toMatchObject({ ok: true, detail: 'warm-up plan tiny is over: no cap', warmup: { hourly: null, daily: null } });
  });
});
