import { describe, expect, it } from 'vitest';
import { AuthLockout } from '../../src/smtp/auth-lockout.ts';
import { clientKeyOf } from '../../src/smtp/client-key.ts';
import { manualClock } from '../helpers/manual-clock.ts';

const A = clientKeyOf('192.0.2.1');
const B = clientKeyOf('192.0.2.2');

describe('AuthLockout', () => {
  it('locks a client after max failed attempts within the window, until the window passes', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 3, windowMs: 60_000, clock });
    lockout.begin(A);
    clock.advance(1_000);
    lockout.begin(A);
    expect(lockout.isLocked(A)).toBe(false);
    clock.advance(1_000);
    lockout.begin(A);
    expect(lockout.isLocked(A)).toBe(true);
    expect(lockout.isLocked(B)).toBe(false);
    // The first failure leaves the window 60 s after it happened.
    clock.advance(57_999);
    expect(lockout.isLocked(A)).toBe(true);
    expect(lockout.begin(A)).toBeNull();
    clock.advance(1);
    expect(lockout.isLocked(A)).toBe(false);
  });

  it('counts attempts in flight: no more than max can start before any of them has finished', () => {
    const lockout = new AuthLockout({ max: 5, windowMs: 60_000, clock: manualClock(1_000_000) });
    const started = Array.from({ length: 50 }, () => lockout.begin(A));
    expect(started.filter((attempt) => attempt !== null)).toHaveLength(5);
    expect(lockout.isLocked(A)).toBe(true);
  });

  it('a success undoes only its own attempt', () => {
    const lockout = new AuthLockout({ max: 2, windowMs: 60_000, clock: manualClock(1_000_000) });
    lockout.begin(A);
    const right = lockout.begin(A)!;
    expect(lockout.isLocked(A)).toBe(true);
    right.undo();
    expect(lockout.isLocked(A)).toBe(false);
    right.undo();
    lockout.begin(A);
    expect(lockout.isLocked(A)).toBe(true);
  });

  it('does not lock for failures spread wider than the window', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 2, windowMs: 10_000, clock });
    lockout.begin(A);
    clock.advance(10_001);
    lockout.begin(A);
    expect(lockout.isLocked(A)).toBe(false);
    lockout.begin(A);
    expect(lockout.isLocked(A)).toBe(true);
  });

  it('forgets clients whose failures have expired', () => {
    const clock = manualClock(1_000_000);
    const lockout = new AuthLockout({ max: 5, windowMs: 1_000, clock });
    lockout.begin(A);
    expect(lockout.size).toBe(1);
    clock.advance(1_001);
    expect(lockout.isLocked(A)).toBe(false);
    expect(lockout.size).toBe(0);
  });

  it('an IPv6 client is locked by its /64, whatever address in it it uses', () => {
    const lockout = new AuthLockout({ max: 2, windowMs: 60_000, clock: manualClock(1_000_000) });
    lockout.begin(clientKeyOf('2001:db8:1:2::10'));
    lockout.begin(clientKeyOf('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    expect(lockout.isLocked(clientKeyOf('2001:db8:1:2:abcd::1'))).toBe(true);
    expect(lockout.isLocked(clientKeyOf('2001:db8:1:3::10'))).toBe(false);
  });
});
