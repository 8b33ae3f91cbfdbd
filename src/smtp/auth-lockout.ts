import type { Clock } from '../clock.ts';

/** Above this many tracked addresses, stale entries are swept so a wide attack cannot grow the map forever. */
const SWEEP_THRESHOLD = 10_000;

/**
 * Failed AUTH attempts per client IP over a sliding window. Once an address has `max` failures
 * within `windowMs`, it is locked until the oldest of them leaves the window. Attempts refused
 * while locked are not failures (the credentials were never checked), and a success does not
 * clear the count: one valid account must not reset an attacker's budget.
 */
export class AuthLockout {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly options: { max: number; windowMs: number; clock: Clock }) {}

  isLocked(ip: string): boolean {
    return this.recent(ip).length >= this.options.max;
  }

  recordFailure(ip: string): void {
    const times = this.recent(ip);
    times.push(this.options.clock.now());
    // Only the newest `max` failures decide the lock.
    if (times.length > this.options.max) times.splice(0, times.length - this.options.max);
    this.failures.set(ip, times);
    if (this.failures.size > SWEEP_THRESHOLD) this.sweep();
  }

  /** Number of addresses tracked (for tests and diagnostics). */
  get size(): number {
    return this.failures.size;
  }

  private recent(ip: string): number[] {
    const cutoff = this.options.clock.now() - this.options.windowMs;
    const times = (this.failures.get(ip) ?? []).filter((t) => t > cutoff);
    if (times.length === 0) this.failures.delete(ip);
    return times;
  }

  private sweep(): void {
    const cutoff = this.options.clock.now() - this.options.windowMs;
    for (const [ip, times] of this.failures) {
      if (times.every((t) => t <= cutoff)) this.failures.delete(ip);
    }
  }
}
