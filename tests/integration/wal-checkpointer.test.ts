import { existsSync, statSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { setImmediate as yieldToLoop, setTimeout } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WalCheckpointer } from '../../src/storage/sqlite/wal-checkpointer.ts';
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

  it('copies the WAL into the database file while the writer goes on, and the WAL starts over instead of growing', async () => {
    const file = dir.file('queue.db');
    const { logger, logs } = capturingLogger('debug');
    const w = writer(file);
    const checkpointer = new WalCheckpointer({ file, logger, fallback: () => expect.fail('the thread was lost'), framesPerCheckpoint: 50 });
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 100; i++) await w.commit(checkpointer);
      // Time for the thread to start and answer, as a daemon's pauses between bursts give it.
      await setTimeout(5);
    }
    await checkpointer.close();

    // Without a checkpoint the 3,000 rows (9 MB) would all be in the WAL, and the file would hold none of them.
    expect(statSync(file).size).toBeGreaterThan(3000 * ROW.length);
    const inWal = (new DatabaseSync(file).prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number }).log;
    expect(inWal).toBeLessThan(500);
    expect((w.db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(3000);
    w.db.close();
    expect(logs.filter((l) => String(l.event).startsWith('storage.checkpoint'))).toEqual([]);
  });

  it('hands checkpoints back to the writer, once, when its thread cannot run', async () => {
    const file = dir.file('queue.db');
    const broken = dir.file('broken-thread.mjs');
    writeFileSync(broken, "throw new Error('no checkpoint thread here');\n");
    const { logger, logs } = capturingLogger();
    const w = writer(file);
    let fallbacks = 0;
    const checkpointer = new WalCheckpointer({ file, logger, fallback: () => fallbacks++, framesPerCheckpoint: 10, threadFile: pathToFileURL(broken) });
    for (let i = 0; i < 40; i++) await w.commit(checkpointer);
    await until(() => fallbacks > 0, 'the fallback');
    for (let i = 0; i < 40; i++) await w.commit(checkpointer);

    expect(fallbacks).toBe(1);
    expect(checkpointer.beforeWrite()).toBeNull();
    const lost = logs.filter((l) => l.event === 'storage.checkpoint.lost');
    expect(lost).toHaveLength(1);
    expect(JSON.stringify(lost[0])).toContain('no checkpoint thread here');
    await checkpointer.close();
    w.db.close();
  });

  it('lets the writes go on when the closing pass does not answer in time', async () => {
    const file = dir.file('queue.db');
    const stuck = dir.file('stuck-thread.mjs');
    // Answers the first pass and never the second, as a thread stuck on a dying disk would.
    writeFileSync(
      stuck,
      [
        "import { parentPort } from 'node:worker_threads';",
        'let asked = 0;',
        "parentPort.on('message', (m) => {",
        "  if (m === 'close') parentPort.close();",
        "  else if (asked++ === 0) parentPort.postMessage({ id: m.id, busy: false, log: 100, checkpointed: 100 });",
        '});',
      ].join('\n'),
    );
    const { logger, logs } = capturingLogger();
    const w = writer(file);
    const checkpointer = new WalCheckpointer({ file, logger, fallback: () => expect.fail('the thread was lost'), finishTimeoutMs: 200, threadFile: pathToFileURL(stuck) });
    // The commit after the first pass waits for the second, which never answers: it goes on after the timeout.
    let commits = 0;
    await until(async () => {
      await w.commit(checkpointer);
      commits++;
      return logs.some((l) => l.event === 'storage.checkpoint.slow');
    }, 'a commit that waited for the closing pass');
    for (let i = 0; i < 20; i++) await w.commit(checkpointer);
    expect(logs.filter((l) => l.event === 'storage.checkpoint.slow')).toHaveLength(1);
    expect((w.db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(commits + 20);
    await checkpointer.close();
    w.db.close();
  });

  it('closes its connection before the store closes its own, so the store removes the WAL on close', async () => {
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
