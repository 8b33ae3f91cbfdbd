import type { Redis } from 'ioredis';
import type { RateLimiter } from '../contracts.ts';
import { gcraIntervalUs, gcraTake, toMicros, type GcraLimit } from './gcra.ts';
import { RedisScript } from './redis-script.ts';

/**
 * gcraTake (gcra.ts) in Lua: the same integer arithmetic in microseconds, so a sequence of takes
 * gets the decisions of the in-process limiter. The TAT is stored as an integer and expires
 * when it passes, since a TAT in the past is the same as none. `now` is the caller's clock, not
 * Redis TIME.
 * ARGV: now µs, interval µs, burst, cost. Returns { 1 | 0, retryAfterMs }.
 */
const TAKE_SCRIPT = new RedisScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local base = tonumber(redis.call('GET', KEYS[1]))
if not base or base < now then base = now end
local wait = base - now + (cost - burst) * interval
if wait > 0 then
  return {0, math.ceil(wait / 1000)}
end
local tat = base + cost * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
return {1, 0}
`);

/** GCRA shared by every node: one bucket per key across the cluster. */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async take(key: string, limit: GcraLimit, now: number, cost = 1): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const interval = gcraIntervalUs(limit, now, cost);
    const [allowed, retryAfterMs] = (await TAKE_SCRIPT.run(
      this.redis,
      [this.keyOf(key)],
      [toMicros(now), interval, limit.burst, cost],
    )) as [number, number];
    return { allowed: allowed === 1, retryAfterMs };
  }

  /** A plain read of the TAT, decided by gcraTake: the same arithmetic the script mirrors, and nothing written. */
  async peek(key: string, limit: GcraLimit, now: number, cost = 1): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const interval = gcraIntervalUs(limit, now, cost);
    const stored = await this.redis.get(this.keyOf(key));
    const decision = gcraTake(stored === null ? null : Number(stored), toMicros(now), interval, limit.burst, cost);
    return { allowed: decision.allowed, retryAfterMs: decision.retryAfterMs };
  }

  private keyOf(key: string): string {
    return `${this.prefix}gcra:${key}`;
  }
}
