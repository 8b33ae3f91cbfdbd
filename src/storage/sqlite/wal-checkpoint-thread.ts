import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';

/**
 * The checkpoint thread of a SQLite store (wal-checkpointer.ts): its own connection to the
 * database file, which copies the WAL's frames into the file when asked, so the event loop never
 * does. It is started without tsx (Node strips the types itself) and imports nothing of Rookery,
 * so it costs one small isolate. Messages are typed in wal-checkpointer.ts.
 */
const db = new DatabaseSync(workerData as string);
// SQLite syncs the WAL before copying it and the file after (synchronous=NORMAL), so a
// checkpoint never loses a frame.
db.exec('PRAGMA synchronous = NORMAL');
// A checkpoint copies pages once; it needs no cache to speak of.
db.exec('PRAGMA cache_size = -512');
// PASSIVE: copies what no reader still needs, without waiting for (or blocking) the writer.
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');

parentPort!.on('message', (request: { id: number } | 'close') => {
  if (request === 'close') {
    db.close();
    parentPort!.close();
    return;
  }
  try {
    const { busy, log, checkpointed } = checkpoint.get() as { busy: number; log: number; checkpointed: number };
    parentPort!.postMessage({ id: request.id, busy: busy !== 0, log, checkpointed });
  } catch (err) {
    const errcode = (err as { errcode?: unknown }).errcode;
    parentPort!.postMessage({ id: request.id, error: (err as Error).message, errcode: typeof errcode === 'number' ? errcode : null });
  }
});
