import type { Clock } from '../../clock.ts';
import type { Redis } from 'ioredis';
import type { UsageCounters } from '../contracts.ts';
import { RedisScript } from './redis-script.ts';
import { checkCount, checkUsageKey, checkWindow, usageExpiresAt } from './usage-windows.ts';

/*
 * A counter is a hash { n: total, e: expiry in ms } at `${prefix}usage:${key}:${windowStart}`.
 * The expiry is kept in the hash as well as set with PEXPIRE because time is the injected
 * clock's, not Redis's: a counter is expired when e <= now, exactly as in the local store,
 * while PEXPIRE (e - now from now on) only frees the memory. Every number is an integer and
 * is written as one ('%.0f'), never in exponent form, whatever the Redis version.
 */

/**
 * Adds to the counter, or refuses when a limit is given and would be passed. A counter expired
 * at `now` starts again from the amount. Returns { 1 | 0, total after the call }.
 * ARGV: amount, limit ('' = none), expiresAt, now.
 */
const ADD_SCRIPT = new RedisScript(`
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local stored = redis.call('HMGET', KEYS[1], 'n', 'e')
local total = 0
local storedExpiry = tonumber(stored[2])
if storedExpiry and storedExpiry > now then
  total = tonumber(stored[1])
  if storedExpiry > expiry then expiry = storedExpiry end
end
if limit and total + amount > limit then
  return {0, total}
end
total = total + amount
redis.call('HSET', KEYS[1], 'n', string.format('%.0f', total), 'e', string.format('%.0f', expiry))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', expiry - now))
return {1, total}
`);

/** The totals of KEYS (0 when missing or expired at ARGV[1]), read at one instant. */
const GET_SCRIPT = new RedisScript(`
local now = tonumber(ARGV[1])
local totals = {}
for i, key in ipairs(KEYS) do
  local stored = redis.call('HMGET', key, 'n', 'e')
  local expiry = tonumber(stored[2])
  if expiry and expiry > now then totals[i] = tonumber(stored[1]) else totals[i] = 0 end
end
return totals
`);

/** Windows read per script call: keeps each call's argument list and run time small. */
const GET_CHUNK = 500;

/** Usage counters shared by every node through Redis; each change is one atomic script. */
export class RedisUsageCounters implements UsageCounters {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: Clock,
  ) {}

  async reserve(key: string, windowStart: number, windowMs: number, amount: number, limit: number): Promise<{ ok: boolean; total: number }> {
    checkCount('limit', limit);
    const [ok, total] = await this.change(key, windowStart, windowMs, amount, String(limit));
    return { ok: ok === 1, total };
  }

  async add(key: string, windowStart: number, windowMs: number, amount: number): Promise<number> {
    const [, total] = await this.change(key, windowStart, windowMs, amount, '');
    return total;
  }

  async get(windows: Array<{ key: string; windowStart: number }>): Promise<number[]> {
    const now = this.clock.now();
    const totals: number[] = [];
    for (let start = 0; start < windows.length; start += GET_CHUNK) {
      const keys = windows.slice(start, start + GET_CHUNK).map((w) => this.counterKey(w.key, w.windowStart));
      totals.push(...((await GET_SCRIPT.run(this.redis, keys, [now])) as number[]));
    }
    return totals;
  }

  private async change(key: string, windowStart: number, windowMs: number, amount: number, limit: string): Promise<[number, number]> {
    checkUsageKey(key);
    checkWindow(windowStart, windowMs);
    checkCount('amount', amount);
    const now = this.clock.now();
    const expiresAt = usageExpiresAt(windowStart, windowMs, now);
    return (await ADD_SCRIPT.run(this.redis, [this.counterKey(key, windowStart)], [amount, limit, expiresAt, now])) as [number, number];
  }

  private counterKey(key: string, windowStart: number): string {
    return `${this.prefix}usage:${key}:${windowStart}`;
  }
}
