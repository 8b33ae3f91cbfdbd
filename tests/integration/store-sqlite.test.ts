import { spawn } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { minFreeBytesFor } from '../../src/control-api/readiness.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { mountSmallDisk, requireSmallDisk } from '../helpers/small-disk.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { runStoreContract } from './store-contract.ts';

const logger = createLogger('silent');
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const canMount = await requireSmallDisk();
const MIB = 1 << 20;

runStoreContract('sqlite', async () => {
  const dir = await createTempDir('rookery-store-sqlite');
  const path = dir.file('queue', 'rookery.db');
  return {
    async open(clock) {
      const store = createSqliteStore({ path, clock, logger });
      await store.migrate();
      return store;
    },
    destroy: () => dir.remove(),
  };
});

describe('SQLite store', () => {
  let dir: TempDir;
  const stores: Store[] = [];

  beforeEach(async () => {
    dir = await createTempDir('rookery-store-sqlite');
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await dir.remove();
  });

  it('creates the directory and opens the file in WAL mode with durable commits', async () => {
    const path = dir.file('a', 'b', 'rookery.db');
    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await store.migrate();
    await store.ping();
    expect(store.driver).toBe('sqlite');

    const db = new DatabaseSync(path, { readOnly: true });
    try {
      expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      expect(db.prepare('SELECT version FROM schema_migrations').all().map((r) => r.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    } finally {
      db.close();
    }
  });

  it('answers a commit only once its WAL is synced; a failed sync fails the whole batch and runs nothing again', async () => {
    const path = dir.file('rookery.db');
    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await store.migrate();
    const message = (id: string) => ({
      id, sender: 'app@sender.test', recipients: [`${id}@dest.test`], messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
      submitter: null, source: 'smtp' as const, clientAddress: null, pool: 'default', createdAt: 0, dueAt: 0,
    });
    await store.enqueue([message('m1')]);
    // A WAL that cannot be opened to sync (removed under the open database): the batch did
    // commit, but it cannot be called durable, so both callers hear so, and neither message is
    // written a second time by a retry of each operation alone.
    await rm(`${path}-wal`);
    const results = await Promise.allSettled([store.enqueue([message('m2')]), store.enqueue([message('m3')])]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as Error).name)).toEqual(['UncertainDurabilityError', 'UncertainDurabilityError']);
    expect(await store.countByState()).toMatchObject({ queued: 3 });
    // From then on nothing is written: later frames would follow ones the disk may not have.
    await expect(store.enqueue([message('m4')])).rejects.toThrow(/no write is taken until the daemon restarts/);
    await expect(store.checkWritable(0)).rejects.toThrow(/no write is taken/);
    expect(await store.countByState()).toMatchObject({ queued: 3 });
  });

  it('never answers an idempotency record whose commit failed to sync', async () => {
    const path = dir.file('rookery.db');
    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await store.migrate();
    const record = (key: string) => ({ scope: 'app', key, requestHash: 'h', status: 202, response: '{}', createdAt: 1000 });
    await store.enqueueOnce([], record('synced'), 0);
    expect(await store.getIdempotencyRecord('app', 'synced', 0)).toMatchObject({ key: 'synced' });
    await rm(`${path}-wal`);
    // Committed and visible on the connection, but the disk never confirmed it: the first
    // caller heard 503, and a retry must not hear 202 from the same row.
    await expect(store.enqueueOnce([], record('unsynced'), 0)).rejects.toThrow(/could not be synced/);
    await expect(store.getIdempotencyRecord('app', 'unsynced', 0)).rejects.toThrow(/no write is taken until the daemon restarts/);
    await expect(store.getIdempotencyRecord('app', 'synced', 0)).rejects.toThrow(/no write is taken/);
    expect(await store.getIdempotencyRecord('app', 'never', 0)).toBeNull();
  });

  it.skipIf(!canMount)('is not writable on a full disk, even when the WAL has room for a tiny commit', async () => {
    const disk = await mountSmallDisk(32 << 20);
    try {
      const path = `${disk.path}/rookery.db`;
      const store = createSqliteStore({ path, logger });
      stores.push(store);
      await store.migrate();
      await store.checkWritable(MIB);
      // A checkpoint that restarts the WAL: the next commit writes over old frames, needing no new space.
      const other = new DatabaseSync(path);
      other.prepare('PRAGMA wal_checkpoint(RESTART)').get();
      other.close();
      disk.fill();
      await expect(store.checkWritable(MIB)).rejects.toThrow(/^disk full: \d+ bytes free beside .*, 1048576 needed$/);
      disk.free();
      await store.checkWritable(MIB);
      await store.close();
    } finally {
      await disk.remove();
    }
  });

  it.skipIf(!canMount)('is not writable with less room than the margin asked, though a commit goes through', async () => {
    const disk = await mountSmallDisk(32 * MIB);
    try {
      const store = createSqliteStore({ path: `${disk.path}/rookery.db`, logger });
      stores.push(store);
      await store.migrate();
      // About 31 MiB free: enough for messages of 16 MiB (24 MiB asked), not for the default 25 MiB (37.5).
      await store.checkWritable(minFreeBytesFor(16 * MIB));
      await expect(store.checkWritable(minFreeBytesFor(25 * MIB))).rejects.toThrow(/^disk full: \d+ bytes free beside .*, 39321600 needed$/);
      await store.close();
    } finally {
      await disk.remove();
    }
  });

  it('syncs the WAL SQLite writes when the configured path goes through a symlink', async () => {
    await mkdir(dir.file('real'));
    await symlink(dir.file('real'), dir.file('link'));
    const store = createSqliteStore({ path: dir.file('link', 'rookery.db'), logger });
    stores.push(store);
    await store.migrate();
    await store.enqueue([{
      id: 'm1', sender: 'app@sender.test', recipients: ['m1@dest.test'], messageIdHeader: null, body: Buffer.from('Subject: x\r\n\r\nx\r\n'),
      submitter: null, source: 'smtp', clientAddress: null, pool: 'default', createdAt: 0, dueAt: 0,
    }]);
    expect(await store.countByState()).toMatchObject({ queued: 1 });
  });

  it('refuses to be used before migrate()', async () => {
    const store = createSqliteStore({ path: dir.file('rookery.db'), logger });
    stores.push(store);
    await expect(store.countByState()).rejects.toThrow(/before migrate/);
  });

  it('applies a migration a database lacks even when a later one is applied (versions added side by side)', async () => {
    const path = dir.file('rookery.db');
    const first = createSqliteStore({ path, logger });
    await first.migrate();
    await first.close();
    const db = new DatabaseSync(path);
    db.exec('DROP TABLE feedback_events; DROP INDEX messages_message_id_header; DELETE FROM schema_migrations WHERE version = 13');
    db.close();

    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await store.migrate();
    const check = new DatabaseSync(path, { readOnly: true });
    const table = check.prepare(`SELECT name FROM sqlite_schema WHERE name = 'feedback_events'`).get();
    const versions = check.prepare('SELECT version FROM schema_migrations ORDER BY version').all().map((r) => r.version);
    check.close();
    expect(table).toEqual({ name: 'feedback_events' });
    expect(versions).toContain(13);
  });

  it('refuses a database migrated by a newer version', async () => {
    const path = dir.file('rookery.db');
    const first = createSqliteStore({ path, logger });
    await first.migrate();
    await first.close();
    const db = new DatabaseSync(path);
    db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)').run();
    db.close();

    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await expect(store.migrate()).rejects.toThrow(/version 999, newer than this Rookery supports/);
  });

  it('keeps every acknowledged message when the process is killed while enqueuing', async () => {
    const path = dir.file('rookery.db');
    const script = dir.file('enqueue-forever.mts');
    const storeModule = pathToFileURL(`${repoRoot}src/storage/sqlite/sqlite-store.ts`).href;
    const loggerModule = pathToFileURL(`${repoRoot}src/observability/logger.ts`).href;
    await writeFile(
      script,
      `
      import { createSqliteStore } from ${JSON.stringify(storeModule)};
      import { createLogger } from ${JSON.stringify(loggerModule)};
      const store = createSqliteStore({ path: process.argv[2], logger: createLogger('silent') });
      await store.migrate();
      process.stdout.write('ready\\n');
      let n = 0;
      const body = Buffer.alloc(4096, 'x');
      async function session(s) {
        for (;;) {
          const id = 'kill-' + s + '-' + n++;
          const now = Date.now();
          await store.enqueue([{ id, sender: 'app@sender.test', recipients: ['a@x.test', 'b@y.test'], messageIdHeader: null,
            body, submitter: null, source: 'smtp', clientAddress: null, createdAt: now, dueAt: now, pool: 'default' }]);
          process.stdout.write(id + '\\n');
        }
      }
      await Promise.all(Array.from({ length: 20 }, (_, s) => session(s)));
      `,
    );

    const child = spawn(process.execPath, ['--import', 'tsx', script, path], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const acknowledged: string[] = [];
    let pendingText = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    const stdoutClosed = new Promise<void>((resolve) => child.stdout.on('close', () => resolve()));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pendingText + chunk).split('\n');
      // The last piece is an incomplete line (or ''): an id only counts once fully printed.
      pendingText = lines.pop()!;
      for (const line of lines) if (line.startsWith('kill-')) acknowledged.push(line);
      if (acknowledged.length >= 600 && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });

    expect(await exited, stderr).toBe('SIGKILL');
    await stdoutClosed;
    expect(acknowledged.length).toBeGreaterThanOrEqual(600);

    const store = createSqliteStore({ path, logger });
    stores.push(store);
    await store.migrate();
    const missing: string[] = [];
    for (const id of acknowledged) {
      const rows = await store.listRecipients(id);
      if (rows.length !== 2 || !(await store.loadMessage(id))) missing.push(id);
    }
    expect(missing).toEqual([]);
    const counts = await store.countByState();
    expect(counts.queued).toBeGreaterThanOrEqual(acknowledged.length * 2);
  });
});
