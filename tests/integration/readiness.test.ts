import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startDaemon, type Daemon } from '../../src/main.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createFixtureResolver } from '../helpers/fixture-resolver.ts';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres.ts';
import { postgresUrl, requirePostgres } from '../helpers/services.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { testDaemonConfig } from '../helpers/test-config.ts';

const postgresAvailable = await requirePostgres();

interface Readiness {
  status: number;
  body: { status: string; checks: Record<string, { ok: boolean; error?: string }> };
}

/**
 * /readyz of a running daemon follows whether its store can take a write, not only whether it
 * answers: a load balancer must move clients off a node whose database turned read-only.
 */
describe('readiness follows whether the store can write', () => {
  let dir: TempDir;
  let daemon: Daemon | undefined;
  let scratch: ScratchDatabase | undefined;
  let lock: DatabaseSync | undefined;

  beforeEach(async () => {
    dir = await createTempDir('rookery-readiness');
  });
  afterEach(async () => {
    lock?.close();
    lock = undefined;
    await daemon?.stop();
    daemon = undefined;
    await scratch?.drop();
    scratch = undefined;
    await dir.remove();
  });

  async function start(extra: ConfigInput, store?: Store): Promise<Daemon> {
    const input = testDaemonConfig({ dir: dir.path, extra });
    daemon = await startDaemon({ resolved: resolveConfig(input, { source: 'test', env: {} }), logger: createLogger('silent'), store, resolver: createFixtureResolver({}) });
    return daemon;
  }

  async function readyz(d: Daemon): Promise<Readiness> {
    const { host, port } = d.apiAddress();
    const res = await fetch(`http://${host}:${port}/readyz`);
    return { status: res.status, body: (await res.json()) as Readiness['body'] };
  }

  /** Asks until the answer satisfies `done` (connections closed under the daemon take a moment to be noticed). */
  async function readyzUntil(d: Daemon, done: (r: Readiness) => boolean): Promise<Readiness> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await readyz(d);
      if (done(r) || Date.now() > deadline) return r;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it.skipIf(!postgresAvailable)('PostgreSQL: 503 while the database is read-only, 200 once it takes writes again', async () => {
    scratch = await createScratchDatabase(postgresUrl(), 'readyz');
    const name = new URL(scratch.url).pathname.slice(1);
    const admin = async (sql: string) => {
      const client = new pg.Client({ connectionString: postgresUrl() });
      await client.connect();
      try {
        await client.query(sql);
        // Settings apply to new sessions: end the daemon's, so its pool opens new ones.
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      } finally {
        await client.end();
      }
    };
    const d = await start({ storage: { driver: 'postgres', url: scratch.url } });
    expect(await readyz(d)).toEqual({ status: 200, body: { status: 'ready', checks: { storage: { ok: true } } } });

    await admin(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    const readOnly = await readyzUntil(d, (r) => /read-only/.test(r.body.checks.storage?.error ?? ''));
    expect(readOnly.status).toBe(503);
    expect(readOnly.body.status).toBe('not-ready');
    expect(readOnly.body.checks.storage).toEqual({ ok: false, error: 'cannot execute INSERT in a read-only transaction' });

    await admin(`ALTER DATABASE ${name} RESET default_transaction_read_only`);
    expect((await readyzUntil(d, (r) => r.status === 200)).body).toEqual({ status: 'ready', checks: { storage: { ok: true } } });
  });

  it('SQLite: 503 while another process holds the write lock, 200 once it lets go', async () => {
    const path = dir.file('queue.db');
    const store = createSqliteStore({ path, logger: createLogger('silent'), busyTimeoutMs: 50 });
    const d = await start({ storage: { path } }, store);
    expect((await readyz(d)).status).toBe(200);

    lock = new DatabaseSync(path);
    lock.exec('BEGIN IMMEDIATE');
    const locked = await readyz(d);
    expect(locked.status).toBe(503);
    expect(locked.body.checks.storage).toEqual({ ok: false, error: 'database is locked' });

    lock.exec('ROLLBACK');
    expect((await readyz(d)).status).toBe(200);
  });
});
