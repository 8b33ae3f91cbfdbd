import type { RateLimiter } from '../contracts.ts';
import { gcraIntervalUs, gcraTake, toMicros, type GcraLimit } from './gcra.ts';

/** Below this many keys the map is never swept: sweeping a small map buys nothing. */
const MIN_SWEEP_SIZE = 1024;

/**
 * GCRA in process: the rate limiter of a node without Redis. Limits are per node then (each
 * daemon shapes its own IPs' traffic, which is what a node owning its IPs needs).
 *
 * Memory stays bounded by the keys active now: a key whose TAT is in the past holds nothing a
 * fresh key would not, so it is dropped. Sweeps run when the map has doubled since the last one,
 * which keeps their cost constant per take.
 */
export class LocalRateLimiter implements RateLimiter {
  /** Key -> TAT in microseconds. */
  private readonly tats = new Map<string, number>();
  private sweepAtSize = MIN_SWEEP_SIZE;

  async take(key: string, limit: GcraLimit, now: number, cost = 1): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const interval = gcraIntervalUs(limit, now, cost);
    const nowUs = toMicros(now);
    const decision = gcraTake(this.tats.get(key) ?? null, nowUs, interval, limit.burst, cost);
    if (decision.allowed) {
      this.tats.set(key, decision.tat);
      if (this.tats.size >= this.sweepAtSize) this.sweep(nowUs);
    }
    return { allowed: decision.allowed, retryAfterMs: decision.retryAfterMs };
  }

  async peek(key: string, limit: GcraLimit, now: number, cost = 1): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const decision = gcraTake(this.tats.get(key) ?? null, toMicros(now), gcraIntervalUs(limit, now, cost), limit.burst, cost);
    return { allowed: decision.allowed, retryAfterMs: decision.retryAfterMs };
  }

  /** Keys currently held (for tests and metrics). */
  get size(): number {
    return this.tats.size;
  }

  private sweep(nowUs: number): void {
    for (const [key, tat] of this.tats) if (tat <= nowUs) this.tats.delete(key);
    this.sweepAtSize = Math.max(MIN_SWEEP_SIZE, this.tats.size * 2);
  }
}
