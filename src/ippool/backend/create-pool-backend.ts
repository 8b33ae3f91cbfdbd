import type { Redis } from 'ioredis';
import type { Clock } from '../../clock.ts';
import type { Store } from '../../storage/store.ts';
import type { PoolBackend } from '../contracts.ts';
import { LocalRateLimiter } from './local-rate-limiter.ts';
import { RedisPoolState } from './redis-pool-state.ts';
import { RedisRateLimiter } from './redis-rate-limiter.ts';
import { RedisUsageCounters } from './redis-usage-counters.ts';
import { StorePoolState } from './store-pool-state.ts';
import { StoreUsageCounters } from './store-usage-counters.ts';

export interface PoolBackendOptions {
  /** The daemon's store (migrated); holds counters and state when there is no Redis. */
  store: Store;
  /** The shared Redis client (createRedisClient(...).redis); null or absent: local backend. */
  redis?: Redis | null;
  /** Prefix of every Redis key, so several deployments can share one Redis. Default "rookery:". */
  keyPrefix?: string;
  clock: Clock;
}

export interface PoolBackendHandle extends PoolBackend {
  /** 'redis': counters, limiter and state shared through Redis; 'local': store and process. */
  readonly kind: 'local' | 'redis';
  /**
   * Deletes expired counters and state from the store; Redis expires its own keys. Meant for a
   * periodic sweep (with retention); returns how many rows went.
   */
  purgeExpired(): Promise<number>;
}

export const DEFAULT_KEY_PREFIX = 'rookery:';

/**
 * Everything the pool keeps outside the process. With Redis, all of it is shared by every node
 * through atomic scripts. Without, counters and state live in the store (surviving a restart,
 * and shared by the nodes of one PostgreSQL database) and rate limits are kept in process.
 * Neither holds timers or connections of its own: the store and the Redis client belong to the
 * caller, who closes them.
 */
export function createPoolBackend(options: PoolBackendOptions): PoolBackendHandle {
  const { store, redis, clock } = options;
  const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const purgeExpired = () => store.purgeExpiredPoolData(clock.now());
  if (redis) {
    return {
      kind: 'redis',
      counters: new RedisUsageCounters(redis, prefix, clock),
      limiter: new RedisRateLimiter(redis, prefix),
      state: new RedisPoolState(redis, prefix, clock),
      purgeExpired,
    };
  }
  return {
    kind: 'local',
    counters: new StoreUsageCounters(store, clock),
    limiter: new LocalRateLimiter(),
    state: new StorePoolState(store, clock),
    purgeExpired,
  };
}
