import { existsSync, statSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { BACKSTOP_PAGES, INLINE_PAGES, startWalCheckpointThread, type WalCheckpointThread } from '../../src/storage/sqlite/wal-checkpoint-thread.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';

/*
 * WAL checkpoints on their own thread: the committed frames reach the database file without the
 * writing connection checkpointing in its commits, and without the thread the writing connection
 * checkpoints as SQLite does by default.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<TempDir> {
  const dir = await createTempDir('rookery-checkpoint');
  cleanups.push(() => dir.remove());
  return dir;
}

/** The daemon's side of it: a connection in WAL mode as the store opens it, with a table to fill. */
function openWriter(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, data BLOB)');
  cleanups.push(() => {
    if (db.isOpen) db.close();
  });
  return db;
}

/** About `pages` pages of WAL, in transactions of ten rows: well under SQLite's own 1,000. */
function fill(db: DatabaseSync, pages: number): void {
  const insert = db.prepare('INSERT INTO filler (data) VALUES (?)');
  for (let done = 0; done < pages; done += 10) {
    db.exec('BEGIN');
    for (let i = 0; i < 10; i++) insert.run(Buffer.alloc(3000, i));
    db.exec('COMMIT');
  }
}

const autocheckpoint = (db: DatabaseSync) => (db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint;

async function until(what: string, done: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function start(db: DatabaseSync, path: string, workerFile?: URL) {
  const { logger, logs } = capturingLogger();
  const thread: WalCheckpointThread = startWalCheckpointThread({ db, path, logger, intervalMs: 50, ...(workerFile ? { workerFile } : {}) });
  cleanups.push(() => thread.stop());
  return { thread, logs };
}

describe('WAL checkpoint thread', () => {
  it('copies committed frames into the database file while the writer never checkpoints in its commits', async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const db = openWriter(path);
    start(db, path);
    await until('the thread is ready', () => autocheckpoint(db) === BACKSTOP_PAGES);
    const before = statSync(path).size;
    fill(db, 300);
    await until('the database file has the frames', () => statSync(path).size > before + 250 * 4096);
  });

  it('without it, the same commits leave the frames in the WAL (the test above measures the thread)', async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const db = openWriter(path);
    const before = statSync(path).size;
    fill(db, 300);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(statSync(path).size).toBe(before);
    expect(autocheckpoint(db)).toBe(INLINE_PAGES);
  });

  it('stops with its connection closed, so the last close removes the WAL', async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const db = openWriter(path);
    const { thread } = start(db, path);
    await until('the thread is ready', () => autocheckpoint(db) === BACKSTOP_PAGES);
    fill(db, 50);
    await thread.stop();
    await thread.stop();
    expect(autocheckpoint(db)).toBe(INLINE_PAGES);
    db.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  it('a thread that cannot open the database leaves checkpoints in commits, with an error logged', async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const db = openWriter(path);
    // A directory is no database.
    const { logs } = start(db, dir.path);
    await until('the failure is logged', () => logs.some((line) => line.event === 'storage.checkpoint.thread.failed'));
    expect(autocheckpoint(db)).toBe(INLINE_PAGES);
    expect(logs.find((line) => line.event === 'storage.checkpoint.thread.failed')).toMatchObject({ level: 50, error: expect.stringMatching(/unable to open/) });
  });

  it('a thread that dies after it started hands checkpoints back to the commits', async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const db = openWriter(path);
    const { logs } = start(db, path, new URL('../fixtures/workers/dying-checkpoint-worker.ts', import.meta.url));
    await until('the thread is ready', () => autocheckpoint(db) === BACKSTOP_PAGES);
    await until('the death is logged', () => logs.some((line) => line.event === 'storage.checkpoint.thread.failed'));
    expect(autocheckpoint(db)).toBe(INLINE_PAGES);
    expect(logs.find((line) => line.event === 'storage.checkpoint.thread.failed')).toMatchObject({ error: 'exited with code 3' });
  });

  it("is the daemon's store's choice: messages enqueued reach the database file, and close removes the WAL", async () => {
    const dir = await tempDir();
    const path = dir.file('queue.db');
    const store = createSqliteStore({ path, logger: capturingLogger().logger, checkpoints: 'thread' });
    let closed = false;
    cleanups.push(() => (closed ? undefined : store.close()));
    await store.migrate();
    const before = statSync(path).size;
    const body = Buffer.alloc(8000, 'x');
    for (let batch = 0; batch < 10; batch++) {
      await store.enqueue(Array.from({ length: 10 }, (_, i) => newMessage(`m${batch}-${i}`, 1_000, { body })));
    }
    await until('the database file has the messages', () => statSync(path).size > before + 100 * 8000);
    expect(await store.getMessageInfo('m9-9')).toMatchObject({ id: 'm9-9' });
    await store.close();
    closed = true;
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});
