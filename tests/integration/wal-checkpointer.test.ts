import { existsSync, statSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { setImmediate as yieldToLoop, setTimeout } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WalCheckpointer, type WalCheckpointerOptions } from '../../src/storage/sqlite/wal-checkpointer.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { newMessage } from '../helpers/new-message.ts';
import { createTempDir, type TempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const ROW = Buffer.alloc(3000, 0x61);

/** A writer as the store is one: autocheckpoint off, each commit told to the checkpointer. */
function writer(file: string) {
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA wal_autocheckpoint = 0');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, b BLOB)');
  const insert = db.prepare('INSERT INTO t (b) VALUES (?)');
  return {
    db,
    rows: () => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n,
    async commit(checkpointer: WalCheckpointer): Promise<void> {
      const pending = checkpointer.beforeWrite();
      if (pending) await pending;
      db.exec('BEGIN IMMEDIATE');
      insert.run(ROW);
      db.exec('COMMIT');
      checkpointer.committed();
      // The thread's answers arrive between commits, as they do between a daemon's batches.
      await yieldToLoop();
    },
  };
}

describe('WAL checkpoints on their own thread', () => {
  let dir: TempDir;
  beforeEach(async () => {
    dir = await createTempDir('wal-checkpointer');
  });
  afterEach(async () => {
    await dir.remove();
  });

  /**
   * A stand-in for the checkpoint thread that answers its nth request (from 0) with `answers[n]`
   * (a reply without its id), and never answers once they run out: how a thread behaves when
   * SQLite reports a busy checkpoint or an I/O error, or the disk under it hangs.
   */
  function threadAnswering(answers: object[]): URL {
    const file = dir.file(`thread-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(
      file,
      [
        "import { parentPort } from 'node:worker_threads';",
        `const answers = ${JSON.stringify(answers)};`,
        'let asked = 0;',
        "parentPort.on('message', (m) => {",
        "  if (m === 'close') return parentPort.close();",
        '  const answer = answers[asked++];',
        '  if (answer) parentPort.postMessage({ id: m.id, ...answer });',
        '});',
      ].join('\n'),
    );
    return pathToFileURL(file);
  }

  function checkpointerWith(file: string, options: Partial<WalCheckpointerOptions>) {
    const { logger, logs } = capturingLogger();
    const calls = { fallback: 0, fatal: [] as Error[] };
    const checkpointer = new WalCheckpointer({
      file,
      logger,
      fallback: () => calls.fallback++,
      onFatal: (err) => calls.fatal.push(err),
      ...options,
    });
    return { checkpointer, logs, calls, events: () => logs.map((l) => l.event).filter((e) => String(e).startsWith('storage.checkpoint')) };
  }

  it('copies the WAL into the database file while the writer goes on, and the WAL starts over instead of growing', async () => {
    const file = dir.file('queue.db');
    const w = writer(file);
    const { checkpointer, calls, events } = checkpointerWith(file, { framesPerCheckpoint: 50 });
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 100; i++) await w.commit(checkpointer);
      // Time for the thread to start and answer, as a daemon's pauses between bursts give it.
      await setTimeout(5);
    }
    await checkpointer.close();

    // Without a checkpoint the 3,000 rows (9 MB) would all be in the WAL, and the file would hold none of them.
    expect(statSync(file).size).toBeGreaterThan(3000 * ROW.length);
    const probe = new DatabaseSync(file);
    const inWal = (probe.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number }).log;
    probe.close();
    expect(inWal).toBeLessThan(500);
    expect(w.rows()).toBe(3000);
    w.db.close();
    expect(events()).toEqual([]);
    expect(calls).toEqual({ fallback: 0, fatal: [] });
  });

  it('hands checkpoints back to the writer, once, when its thread cannot run', async () => {
    const file = dir.file('queue.db');
    const broken = dir.file('broken-thread.mjs');
    writeFileSync(broken, "throw new Error('no checkpoint thread here');\n");
    const w = writer(file);
    const { checkpointer, logs, calls } = checkpointerWith(file, { framesPerCheckpoint: 10, threadFile: pathToFileURL(broken) });
    for (let i = 0; i < 40; i++) await w.commit(checkpointer);
    await until(() => calls.fallback > 0, 'the fallback');
    for (let i = 0; i < 40; i++) await w.commit(checkpointer);

    expect(calls).toEqual({ fallback: 1, fatal: [] });
    expect(checkpointer.beforeWrite()).toBeNull();
    const lost = logs.filter((l) => l.event === 'storage.checkpoint.lost');
    expect(lost).toHaveLength(1);
    expect(JSON.stringify(lost[0])).toContain('no checkpoint thread here');
    await checkpointer.close();
    w.db.close();
  });

  it('gives a hung thread up: the writes waiting for it go on, and commits checkpoint again', async () => {
    const file = dir.file('queue.db');
    const w = writer(file);
    // Answers the first pass, never the second.
    const hung = threadAnswering([{ busy: false, log: 100, checkpointed: 100 }]);
    const { checkpointer, calls, events } = checkpointerWith(file, { secondPassTimeoutMs: 200, threadFile: hung });
    await until(async () => {
      await w.commit(checkpointer);
      return calls.fallback > 0;
    }, 'the fallback');
    for (let i = 0; i < 20; i++) await w.commit(checkpointer);

    expect(calls).toEqual({ fallback: 1, fatal: [] });
    expect(events()).toEqual(['storage.checkpoint.lost']);
    expect(checkpointer.beforeWrite()).toBeNull();
    await checkpointer.close();
    w.db.close();
  });

  it('waits for no second pass after a busy checkpoint (another connection was checkpointing)', async () => {
    const file = dir.file('queue.db');
    const w = writer(file);
    const busy = { busy: true, log: -1, checkpointed: -1 };
    const { checkpointer, calls, events } = checkpointerWith(file, { threadFile: threadAnswering([busy, busy, busy]) });
    for (let i = 0; i < 16 * 3; i++) {
      await w.commit(checkpointer);
      // Each first pass answers before the next commit: none of them leaves a second pass due.
      await setTimeout(20);
      expect(checkpointer.beforeWrite()).toBeNull();
    }
    expect(calls).toEqual({ fallback: 0, fatal: [] });
    expect(events()).toEqual([]);
    await checkpointer.close();
    w.db.close();
  });

  it('stops for good on an I/O error, and says so once; a full disk is only a warning until space returns', async () => {
    const file = dir.file('queue.db');
    const w = writer(file);
    const full = { error: 'database or disk is full', errcode: 13 };
    const fine = { busy: false, log: 10, checkpointed: 10 };
    const ioError = { error: 'disk I/O error', errcode: 4874 /* SQLITE_IOERR_FSYNC */ };
    const { checkpointer, calls, events } = checkpointerWith(file, { framesPerCheckpoint: 10, threadFile: threadAnswering([full, full, fine, fine, ioError]) });
    for (let i = 0; i < 2000 && calls.fatal.length === 0; i++) await w.commit(checkpointer);
    for (let i = 0; i < 40; i++) await w.commit(checkpointer);

    expect(events()).toEqual(['storage.checkpoint.failed', 'storage.checkpoint.ok']);
    expect(calls.fallback).toBe(0);
    expect(calls.fatal.map((e) => e.message)).toEqual(['a WAL checkpoint failed: disk I/O error']);
    expect(checkpointer.beforeWrite()).toBeNull();
    await checkpointer.close();
    w.db.close();
  });

  it('a store takes no write once a checkpoint hit an I/O error, and its readiness check says so', async () => {
    const file = dir.file('queue.db');
    const { logger, logs } = capturingLogger();
    const ioError = { error: 'disk I/O error', errcode: 4874 /* SQLITE_IOERR_FSYNC */ };
    const store = createSqliteStore({ path: file, logger, checkpointThread: threadAnswering([ioError]) });
    await store.migrate();
    // Mail is taken until the first pass's answer comes back.
    let taken = 0;
    while (taken < 2000 && !logs.some((l) => l.event === 'storage.checkpoint.failed')) {
      const refused = await store.enqueue([newMessage(`msg-${taken}`, 1_700_000_000_000 + taken)]).then(() => false, () => true);
      if (refused) break;
      taken++;
      await setTimeout(1);
    }

    const failed = logs.filter((l) => l.event === 'storage.checkpoint.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.level).toBe(60);
    await expect(store.enqueue([newMessage('after', 1_700_000_002_000)])).rejects.toThrow(/a WAL checkpoint failed: disk I\/O error; no write is taken until the daemon restarts/);
    await expect(store.checkWritable(0)).rejects.toThrow(/no write is taken/);
    expect((await store.countByState()).queued).toBe(taken);
    await store.close();
  });

  it('a store whose checkpoints another store makes (the webhook dispatcher beside the daemon) never copies the WAL itself', async () => {
    const file = dir.file('queue.db');
    const { logger } = capturingLogger();
    const sizes: number[] = [];
    for (const checkpoints of [false, true]) {
      const store = createSqliteStore({ path: file, logger, checkpoints });
      await store.migrate();
      const before = statSync(file).size;
      for (let i = 0; i < 300; i++) {
        await store.enqueue([newMessage(`${checkpoints}-${i}`, 1_700_000_000_000 + i, { body: ROW })]);
        if (i % 50 === 49) await setTimeout(20);
      }
      sizes.push(statSync(file).size - before);
      await store.close();
    }
    // Without checkpoints of its own not one page reached the file; the other store's thread copied 900 KB of bodies.
    expect(sizes[0]).toBe(0);
    expect(sizes[1]).toBeGreaterThan(300 * ROW.length);
  });

  it('a closed store leaves no WAL behind and its mail whole', async () => {
    const file = dir.file('queue.db');
    const { logger, logs } = capturingLogger();
    const store = createSqliteStore({ path: file, logger });
    await store.migrate();
    for (let i = 0; i < 80; i++) await store.enqueue([newMessage(`msg-${i}`, 1_700_000_000_000 + i)]);
    await store.close();

    expect(existsSync(`${file}-wal`)).toBe(false);
    expect(logs.filter((l) => String(l.event).startsWith('storage.checkpoint'))).toEqual([]);
    const reopened = createSqliteStore({ path: file, logger });
    await reopened.migrate();
    expect((await reopened.countByState()).queued).toBe(80);
    await reopened.close();
  });
});
