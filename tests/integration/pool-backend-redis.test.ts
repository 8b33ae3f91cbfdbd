import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { LocalRateLimiter } from '../../src/ippool/backend/local-rate-limiter.ts';
import { RedisRateLimiter } from '../../src/ippool/backend/redis-rate-limiter.ts';
import { RedisScript } from '../../src/ippool/backend/redis-script.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createRedisClient, type RedisClient } from '../../src/storage/redis-client.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { redisUrl, requireRedis } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { runPoolBackendContract, type OpenedBackend } from './pool-backend-contract.ts';

const logger = createLogger('silent');
const available = await requireRedis();

const freshPrefix = () => `rookery-test:${process.pid}:${randomBytes(4).toString('hex')}:`;

/** Deletes every key under `prefix`. */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(redisUrl());
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

/**
 * One instance: its own Redis connection (another daemon's) and, since the backend is built
 * from the daemon's store, a SQLite store the Redis backend leaves alone.
 */
async function openInstance(prefix: string, dir: TempDir, clock: Clock): Promise<OpenedBackend & { store: Store; client: RedisClient }> {
  const client = createRedisClient(redisUrl(), logger);
  const store = createSqliteStore({ path: dir.file(`${randomBytes(4).toString('hex')}.db`), clock, logger });
  await store.migrate();
  return {
    backend: createPoolBackend({ store, redis: client.redis, keyPrefix: prefix, clock }),
    store,
    client,
    close: async () => {
      await client.close();
      await store.close();
    },
  };
}

describe.skipIf(!available)('pool backend on Redis', () => {
  runPoolBackendContract('Redis', async () => {
    const prefix = freshPrefix();
    const dir = await createTempDir('rookery-pool-redis');
    return {
      sharedLimiter: true,
      open: (clock) => openInstance(prefix, dir, clock),
      async destroy() {
        await deleteKeys(prefix);
        await dir.remove();
      },
    };
  });

  describe('Redis specifics', () => {
    let prefix: string;
    let dir: TempDir;
    let instance: Awaited<ReturnType<typeof openInstance>>;
    let inspect: Redis;

    beforeEach(async () => {
      prefix = freshPrefix();
      dir = await createTempDir('rookery-pool-redis');
      instance = await openInstance(prefix, dir, manualClock(Date.now()));
      inspect = new Redis(redisUrl());
    });

    afterEach(async () => {
      inspect.disconnect();
      await instance.close();
      await deleteKeys(prefix);
      await dir.remove();
    });

    it('gives the decisions of the in-process limiter for a long random sequence', async () => {
      const local = new LocalRateLimiter();
      const shared = new RedisRateLimiter(instance.client.redis, prefix);
      const limits = [
        { ratePerSecond: 3, burst: 2 },
        { ratePerSecond: 7, burst: 4 },
        { ratePerSecond: 100, burst: 10 },
        { ratePerSecond: 0.3, burst: 3 },
        { ratePerSecond: 1 / 36, burst: 1 },
      ];
      // A fixed linear congruential sequence: the same steps on every run, no seed to chase.
      let seed = 12345;
      const next = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      let now = 1_700_000_000_000;
      const mismatches: string[] = [];
      let allowed = 0;
      for (let i = 0; i < 1500; i++) {
        const which = next(limits.length);
        const limit = limits[which]!;
        const cost = 1 + next(limit.burst);
        now += next(4) === 0 ? next(5000) : next(120);
        const key = `k${which}`;
        const a = await local.take(key, limit, now, cost);
        const b = await shared.take(key, limit, now, cost);
        if (a.allowed) allowed += 1;
        if (a.allowed !== b.allowed || a.retryAfterMs !== b.retryAfterMs) {
          mismatches.push(`step ${i} ${key} now=${now} cost=${cost}: local ${JSON.stringify(a)} redis ${JSON.stringify(b)}`);
        }
      }
      expect(mismatches).toEqual([]);
      // The sequence exercises both answers.
      expect(allowed).toBeGreaterThan(100);
      expect(allowed).toBeLessThan(1400);
    });

    it('stores counters with their expiry and frees them with PEXPIRE', async () => {
      const clock = manualClock(Date.now());
      const opened = await openInstance(prefix, dir, clock);
      try {
        const windowStart = clock.now() - 10;
        await opened.backend.counters.add('ip-a', windowStart, 3_600_000, 1_234_567);
        const key = `${prefix}usage:ip-a:${windowStart}`;
        expect(await inspect.hgetall(key)).toEqual({ n: '1234567', e: String(windowStart + 3_600_000 * 2) });
        const ttl = await inspect.pttl(key);
        expect(ttl).toBeGreaterThan(3_600_000);
        expect(ttl).toBeLessThanOrEqual(2 * 3_600_000);

        await opened.backend.limiter.take('ip-a>gmail', { ratePerSecond: 3, burst: 2 }, clock.now());
        // The TAT in whole microseconds: now plus one interval of 333 333 µs.
        expect(await inspect.get(`${prefix}gcra:ip-a>gmail`)).toBe(String(clock.now() * 1000 + 333_333));
        expect(await inspect.pttl(`${prefix}gcra:ip-a>gmail`)).toBeGreaterThan(0);
      } finally {
        await opened.close();
      }
    });

    it('drops index entries of state that Redis has expired', async () => {
      const clock = manualClock(Date.now());
      const opened = await openInstance(prefix, dir, clock);
      try {
        await opened.backend.state.set('short', 'x', clock.now() + 20);
        await opened.backend.state.set('long', 'y', null);
        expect(await inspect.zcard(`${prefix}state-index`)).toBe(2);
        // Real time passes while the injected clock stands still: only Redis's own expiry acts.
        while ((await inspect.exists(`${prefix}state:short`)) === 1) await new Promise((r) => setTimeout(r, 10));
        expect(await opened.backend.state.list('', clock.now())).toEqual([{ key: 'long', value: 'y', expiresAt: null }]);
        expect(await inspect.zrange(`${prefix}state-index`, '0', '-1')).toEqual(['long']);
      } finally {
        await opened.close();
      }
    });

    it('loads a script the server does not know yet, then runs it by its hash', async () => {
      // A script text no server has seen (SCRIPT FLUSH would disturb other tests sharing Redis).
      const script = new RedisScript(`-- ${prefix}\nreturn {KEYS[1], ARGV[1]}`);
      expect(await script.run(instance.client.redis, ['k'], ['v'])).toEqual(['k', 'v']);
      const sha = createHash('sha1').update(`-- ${prefix}\nreturn {KEYS[1], ARGV[1]}`).digest('hex');
      expect(await inspect.script('EXISTS', sha)).toEqual([1]);
      expect(await script.run(instance.client.redis, ['k2'], [3])).toEqual(['k2', '3']);
    });
  });
});
