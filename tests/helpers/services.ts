import { Redis } from 'ioredis';
import pg from 'pg';

/*
 * External services used by integration tests. Locally a missing service skips the files that
 * need it (`describe.skipIf(!available)`); under CI (CI=true) it is an error, so a broken CI
 * setup fails the run instead of silently skipping the tests.
 */

const PROBE_TIMEOUT_MS = 2000;

export function postgresUrl(): string {
  return process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
}

export function redisUrl(): string {
  return process.env.REDIS_URL || 'redis://127.0.0.1:6379';
}

/** True when PostgreSQL answers; false locally when it does not; throws under CI. */
export async function requirePostgres(): Promise<boolean> {
  const client = new pg.Client({ connectionString: postgresUrl(), connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (err) {
    return unavailable('PostgreSQL', postgresUrl(), err);
  } finally {
    await client.end().catch(() => {});
  }
}

/** True when Redis answers PING; false locally when it does not; throws under CI. */
export async function requireRedis(): Promise<boolean> {
  const client = new Redis(redisUrl(), {
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // The socket error says more than the "Connection is closed" the command is rejected with.
  let socketError: unknown;
  client.on('error', (err) => {
    socketError ??= err;
  });
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch (err) {
    return unavailable('Redis', redisUrl(), socketError ?? err);
  } finally {
    client.disconnect();
  }
}

function unavailable(service: string, url: string, err: unknown): false {
  const reason = err instanceof Error ? err.message : String(err);
  const where = url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  if (process.env.CI === 'true') {
    throw new Error(`${service} is required under CI but is not reachable at ${where}: ${reason}`);
  }
  console.warn(`${service} not reachable at ${where} (${reason}); skipping the tests that need it`);
  return false;
}
