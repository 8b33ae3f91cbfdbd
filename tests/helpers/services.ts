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
  return missing(`${service} is not reachable at ${where}: ${reason}`);
}

/**
 * For what a test needs from the machine rather than from a service (a program, root to mount
 * a filesystem): `problem` null when it is there; otherwise false locally, an error under CI.
 */
export function requireCapability(problem: string | null): boolean {
  return problem === null || missing(problem);
}

function missing(problem: string): false {
  if (process.env.CI === 'true') throw new Error(`required under CI: ${problem}`);
  console.warn(`${problem}; skipping the tests that need it`);
  return false;
}
