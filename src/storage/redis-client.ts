import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import { maskCredentials } from '../observability/mask-credentials.ts';

/** A Redis connection shared by readiness checks and the shared hot counters. */
export interface RedisClient {
  /** The underlying ioredis client, for components that run their own commands. */
  readonly redis: Redis;
  /** Throws when Redis does not answer PING within `timeoutMs`. */
  ping(timeoutMs?: number): Promise<void>;
  /** Closes the connection and stops reconnecting. Safe to call twice. */
  close(): Promise<void>;
}

/** Longest pause between reconnection attempts; Redis coming back is noticed within this. */
const MAX_RECONNECT_DELAY_MS = 5_000;
const DEFAULT_PING_TIMEOUT_MS = 2_000;
const QUIT_TIMEOUT_MS = 1_000;

/**
 * Creates a client for `url` (redis:// or rediss://). Nothing connects until the first command:
 * building the daemon's components must not depend on Redis being up. Commands fail after two
 * reconnection attempts instead of waiting for ever, so a Redis outage shows up as errors (and
 * a failing /readyz) rather than as a stuck daemon; reconnection itself goes on with backoff.
 */
export function createRedisClient(url: string, logger: Logger): RedisClient {
  const log = logger.child({ component: 'redis' });
  // Logged URLs never carry the password.
  const target = maskCredentials(url);
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 5_000,
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
  });

  // One line per outage, not one per reconnection attempt.
  let healthy = true;
  let lastError: Error | null = null;
  redis.on('ready', () => {
    if (!healthy) log.info({ event: 'redis.reconnected', target }, 'redis connection restored');
    healthy = true;
    lastError = null;
  });
  redis.on('error', (err: Error) => {
    if (healthy) log.warn({ event: 'redis.error', target, error: err.message }, 'redis connection failed');
    healthy = false;
    lastError = err;
  });

  let closing: Promise<void> | undefined;

  return {
    redis,

    async ping(timeoutMs = DEFAULT_PING_TIMEOUT_MS) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer to PING within ${timeoutMs}ms`)), timeoutMs);
      });
      try {
        await Promise.race([redis.ping(), timeout]);
      } catch (err) {
        // "max retries per request reached" says nothing useful; the connection error does.
        throw lastError && redis.status !== 'ready' ? new Error(`redis unreachable: ${lastError.message}`) : err;
      } finally {
        clearTimeout(timer);
      }
    },

    close() {
      closing ??= (async () => {
        if (redis.status === 'ready') {
          // QUIT lets Redis finish pending replies; disconnect() below is the backstop.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            redis.quit().catch(() => undefined),
            new Promise<void>((resolve) => {
              timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
            }),
          ]);
          clearTimeout(timer);
        }
        redis.disconnect(false);
      })();
      return closing;
    },
  };
}
