import type { Redis } from 'ioredis';
import type { Clock } from '../../clock.ts';
import type { PoolState } from '../contracts.ts';
import { checkStateEntry, checkStateKey } from './pool-state-checks.ts';
import { RedisScript } from './redis-script.ts';

/*
 * An entry is a hash { v: value, e: expiry in ms or '' } at `${prefix}state:${key}`, with a PX
 * expiry when it has one. As for counters, `e` decides visibility with the injected clock and
 * PEXPIRE only frees the memory. A sorted set `${prefix}state-index` holds every key (score 0,
 * ordered by bytes) so list(prefix) is a range read instead of a SCAN of the whole keyspace;
 * members whose entry has gone are removed by list.
 */

/** KEYS: entry, index. ARGV: key, value, expiry ('' = never), ttlMs ('' = none). */
const SET_SCRIPT = new RedisScript(`
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3])
if ARGV[4] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
`);

/** KEYS: entry, index. ARGV: key. */
const DELETE_SCRIPT = new RedisScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`);

/**
 * KEYS: index, then the entries of the members in ARGV. Returns key, value, expiry triples of
 * the entries that exist and drops from the index the members whose entry has gone; checking
 * inside the script means a key set again meanwhile is never dropped.
 */
const LIST_SCRIPT = new RedisScript(`
local found = {}
for i, member in ipairs(ARGV) do
  local stored = redis.call('HMGET', KEYS[i + 1], 'v', 'e')
  if stored[1] then
    found[#found + 1] = member
    found[#found + 1] = stored[1]
    found[#found + 1] = stored[2]
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return found
`);

/** Entries checked per list script call. */
const LIST_CHUNK = 500;

/** Pool state shared by every node through Redis. */
export class RedisPoolState implements PoolState {
  private readonly indexKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: Clock,
  ) {
    this.indexKey = `${prefix}state-index`;
  }

  async set(key: string, value: string, expiresAt: number | null): Promise<void> {
    checkStateKey(key);
    checkStateEntry(value, expiresAt);
    const ttlMs = expiresAt === null ? null : expiresAt - this.clock.now();
    // Already expired: what is left to keep is nothing (and any older value must go too).
    if (ttlMs !== null && ttlMs <= 0) return this.delete(key);
    await SET_SCRIPT.run(this.redis, [this.entryKey(key), this.indexKey], [key, value, expiresAt ?? '', ttlMs ?? '']);
  }

  async get(key: string): Promise<string | null> {
    checkStateKey(key);
    const [value, expiry] = await this.redis.hmget(this.entryKey(key), 'v', 'e');
    if (value === null || value === undefined || isExpired(expiry ?? null, this.clock.now())) return null;
    return value;
  }

  async delete(key: string): Promise<void> {
    checkStateKey(key);
    await DELETE_SCRIPT.run(this.redis, [this.entryKey(key), this.indexKey], [key]);
  }

  async list(prefix: string, now: number): Promise<Array<{ key: string; value: string; expiresAt: number | null }>> {
    const members = await this.redis.zrangebylex(this.indexKey, ...lexRange(prefix));
    const entries: Array<{ key: string; value: string; expiresAt: number | null }> = [];
    for (let start = 0; start < members.length; start += LIST_CHUNK) {
      const chunk = members.slice(start, start + LIST_CHUNK);
      const found = (await LIST_SCRIPT.run(this.redis, [this.indexKey, ...chunk.map((k) => this.entryKey(k))], chunk)) as string[];
      for (let i = 0; i < found.length; i += 3) {
        const expiry = found[i + 2]!;
        if (isExpired(expiry, now)) continue;
        entries.push({ key: found[i]!, value: found[i + 1]!, expiresAt: expiry === '' ? null : Number(expiry) });
      }
    }
    return entries;
  }

  private entryKey(key: string): string {
    return `${this.prefix}state:${key}`;
  }
}

function isExpired(expiry: string | null, now: number): boolean {
  return expiry !== null && expiry !== '' && Number(expiry) <= now;
}

/**
 * ZRANGEBYLEX bounds of the members starting with `prefix`: from the prefix itself up to, not
 * including, the prefix followed by byte 0xff, which no UTF-8 text contains (a Buffer, since a
 * JavaScript '\xff' would be sent as two bytes).
 */
function lexRange(prefix: string): [Buffer | string, Buffer | string] {
  if (prefix === '') return ['-', '+'];
  return [Buffer.from(`[${prefix}`), Buffer.concat([Buffer.from(`(${prefix}`), Buffer.from([0xff])])];
}
