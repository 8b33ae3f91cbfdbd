import type { Redis } from 'ioredis';
import type { RateLimiter } from '../contracts.ts';
import { gcraInterval, type GcraLimit } from './gcra.ts';
import { RedisScript } from './redis-script.ts';

/**
 * gcraTake (gcra.ts) in Lua, the same operations in the same order on the same doubles, so a
 * sequence of takes gets the decisions of the in-process limiter. The TAT is stored with 17
 * significant digits (exact for a double) and expires when it passes, since a TAT in the past
 * is the same as none. `now` is the caller's clock, not Redis TIME.
 * ARGV: now, interval ms, burst, cost. Returns { 1 | 0, retryAfterMs }.
 */
const TAKE_SCRIPT = new RedisScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local base = tonumber(redis.call('GET', KEYS[1]))
if not base or base < now then base = now end
local nextTat = base + cost * interval
local allowAt = nextTat - burst * interval
if allowAt > now then
  return {0, math.ceil(allowAt - now)}
end
redis.call('SET', KEYS[1], string.format('%.17g', nextTat), 'PX', math.ceil(nextTat - now))
return {1, 0}
`);

/** GCRA shared by every node: one bucket per key across the cluster. */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async take(key: string, limit: GcraLimit, now: number, cost = 1): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const interval = gcraInterval(limit, now, cost);
    // String(x) is the shortest text that reads back as the same double in Lua's tonumber.
    const [allowed, retryAfterMs] = (await TAKE_SCRIPT.run(
      this.redis,
      [`${this.prefix}gcra:${key}`],
      [String(now), String(interval), String(limit.burst), String(cost)],
    )) as [number, number];
    return { allowed: allowed === 1, retryAfterMs };
  }
}
