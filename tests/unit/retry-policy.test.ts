import { describe, expect, it } from 'vitest';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import { decide, expiredOutcome, nextAttemptDelay } from '../../src/engine/retry-policy.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
const retry = { initial: MIN, max: 4 * HOUR, multiplier: 2, jitter: 0.2 };
const middle = () => 0.5; // no jitter: 2 * 0.5 - 1 = 0

function outcome(disposition: DeliveryOutcome['disposition'], extra: Partial<DeliveryOutcome> = {}): DeliveryOutcome {
  return {
    disposition,
    code: disposition === 'delivered' ? 250 : disposition === 'permanent' ? 550 : 451,
    enhanced: null,
    response: '4.7.1 try later',
    stage: 'rcpt',
    bounceClass: 'other',
    remoteHost: 'mx.dest.test',
    egressIp: '127.0.0.2',
    ...extra,
  };
}

describe('nextAttemptDelay', () => {
  it('grows exponentially from initial by the multiplier', () => {
    expect([1, 2, 3, 4, 5].map((n) => nextAttemptDelay(n, retry, middle))).toEqual([MIN, 2 * MIN, 4 * MIN, 8 * MIN, 16 * MIN]);
  });

  it('is capped at max, however many attempts', () => {
    expect(nextAttemptDelay(9, retry, middle)).toBe(4 * HOUR);
    expect(nextAttemptDelay(10_000, retry, middle)).toBe(4 * HOUR);
  });

  it('spreads by +/- jitter', () => {
    expect(nextAttemptDelay(1, retry, () => 0)).toBe(0.8 * MIN);
    expect(nextAttemptDelay(1, retry, () => 1)).toBe(1.2 * MIN);
    expect(nextAttemptDelay(9, retry, () => 1)).toBe(1.2 * 4 * HOUR);
  });

  it('treats zero attempts like the first', () => {
    expect(nextAttemptDelay(0, retry, middle)).toBe(MIN);
  });
});

describe('decide', () => {
  const base = { createdAt: 0, now: 10 * MIN, maxAge: 5 * 24 * HOUR, retry, random: middle };

  it('delivered -> delivered', () => {
    expect(decide({ ...base, outcome: outcome('delivered'), attempts: 1 })).toEqual({ newState: 'delivered', expired: false });
  });

  it('permanent -> bounced, not expired', () => {
    expect(decide({ ...base, outcome: outcome('permanent'), attempts: 1 })).toEqual({ newState: 'bounced', expired: false });
  });

  it('transient -> queued after the backoff delay for this attempt number', () => {
    expect(decide({ ...base, outcome: outcome('transient'), attempts: 3 })).toEqual({
      newState: 'queued',
      nextAttemptAt: base.now + 4 * MIN,
      expired: false,
    });
  });

  it('transient -> a last attempt at maxAge, then bounced as expired', () => {
    const maxAge = HOUR;
    const justInside = decide({ ...base, maxAge, now: maxAge - 4 * MIN, outcome: outcome('transient'), attempts: 3 });
    expect(justInside).toEqual({ newState: 'queued', nextAttemptAt: maxAge, expired: false });
    // The backoff would land past the deadline: the retry happens at the deadline instead of never.
    const late = decide({ ...base, maxAge, now: maxAge - MIN, outcome: outcome('transient'), attempts: 3 });
    expect(late).toEqual({ newState: 'queued', nextAttemptAt: maxAge, expired: false });
    const past = decide({ ...base, maxAge, now: maxAge, outcome: outcome('transient'), attempts: 3 });
    expect(past).toEqual({ newState: 'bounced', expired: true });
  });

  it('throttled -> queued, whatever the attempt count, until maxAge', () => {
    const throttled = decide({ ...base, outcome: outcome('throttled'), attempts: 500 });
    expect(throttled).toEqual({ newState: 'queued', nextAttemptAt: base.now + MIN, expired: false });
    const until = decide({ ...base, outcome: outcome('throttled'), attempts: 1, throttledUntil: base.now + 5_000 });
    expect(until.nextAttemptAt).toBe(base.now + 5_000);
    const late = decide({ ...base, now: base.maxAge, outcome: outcome('throttled'), attempts: 1 });
    expect(late).toEqual({ newState: 'bounced', expired: true });
  });

  it('never schedules a throttled retry past the deadline', () => {
    const near = decide({ ...base, now: base.maxAge - 1_000, outcome: outcome('throttled'), attempts: 1 });
    expect(near).toEqual({ newState: 'queued', nextAttemptAt: base.maxAge, expired: false });
  });

  it("never expires mail that waits for an operator's pause of its egress IPs, even past the deadline", () => {
    const late = decide({ ...base, now: base.maxAge + HOUR, outcome: outcome('throttled'), attempts: 1, throttledUntil: base.maxAge + 2 * HOUR, paused: true });
    expect(late).toEqual({ newState: 'queued', nextAttemptAt: base.maxAge + 2 * HOUR, expired: false });
    const near = decide({ ...base, now: base.maxAge - 1_000, outcome: outcome('throttled'), attempts: 1, throttledUntil: base.maxAge + 10 * MIN, paused: true });
    expect(near.nextAttemptAt).toBe(base.maxAge + 10 * MIN);
    // After the pause, the first try decides: a failure past the deadline bounces as expired.
    expect(decide({ ...base, now: base.maxAge + 3 * HOUR, outcome: outcome('transient'), attempts: 1 })).toEqual({ newState: 'bounced', expired: true });
  });
});

describe('expiredOutcome', () => {
  it('is permanent 5.4.7 and keeps the last remote reply', () => {
    const last = outcome('transient', { code: 451, enhanced: '4.7.1', response: '4.7.1 try later', bounceClass: 'policy' });
    expect(expiredOutcome(last)).toEqual({
      disposition: 'permanent',
      code: 451,
      enhanced: '5.4.7',
      response: '4.7.1 try later',
      stage: 'rcpt',
      bounceClass: 'expired',
      remoteHost: 'mx.dest.test',
      egressIp: '127.0.0.2',
    });
  });

  it('describes the expiry when there was no reply', () => {
    expect(expiredOutcome(null)).toMatchObject({ disposition: 'permanent', code: null, stage: 'queue', bounceClass: 'expired' });
  });
});
