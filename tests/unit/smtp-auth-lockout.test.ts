import { describe, expect, it } from 'vitest';
import { AuthLockout } from '../../src/smtp/auth-lockout.ts';
import { manualClock } from '../helpers/manual-clock.ts';


describe('AuthLockout', () => {
  it('locks an address after max failures within the window, until the window passes', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 3, windowMs: 60_000, clock });
    lockout.recordFailure('192.0.2.1');
    clock.advance(1_000);
    lockout.recordFailure('192.0.2.1');
    expect(lockout.isLocked('192.0.2.1')).toBe(false);
    clock.advance(1_000);
    lockout.recordFailure('192.0.2.1');
    expect(lockout.isLocked('192.0.2.1')).toBe(true);
    expect(lockout.isLocked('192.0.2.2')).toBe(false);
    // The first failure leaves the window 60 s after it happened.
    clock.advance(57_999);
    expect(lockout.isLocked('192.0.2.1')).toBe(true);
    clock.advance(1);
    expect(lockout.isLocked('192.0.2.1')).toBe(false);
  });

  it('does not lock for failures spread wider than the window', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 2, windowMs: 10_000, clock });
    lockout.recordFailure('198.51.100.1');
    clock.advance(10_001);
    lockout.recordFailure('198.51.100.1');
    expect(lockout.isLocked('198.51.100.1')).toBe(false);
    lockout.recordFailure('198.51.100.1');
    expect(lockout.isLocked('198.51.100.1')).toBe(true);
  });

  it('forgets addresses whose failures have expired', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 5, windowMs: 1_000, clock });
    lockout.recordFailure('203.0.113.5');
    expect(lockout.size).toBe(1);
    clock.advance(1_001);
    expect(lockout.isLocked('203.0.113.5')).toBe(false);
    expect(lockout.size).toBe(0);
  });
});
