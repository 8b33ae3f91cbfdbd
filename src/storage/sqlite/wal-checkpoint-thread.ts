import type { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../observability/logger.ts';

/**
 * WAL checkpoints on a thread of their own (wal-checkpoint-worker.ts). SQLite's automatic
 * checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages: on the event loop, it
 * copies those pages into the database file and syncs it, holding every SMTP session for the
 * milliseconds to tens of milliseconds a disk takes (a twentieth of the event loop's time under
 * load, and the slowest answers). The thread copies the committed frames a few times a second
 * instead, without blocking the writer.
 *
 * A checkpoint that runs beside a busy writer never quite catches up (frames are appended while it
 * copies), and only a fully copied WAL starts again from its beginning; so the daemon's connection
 * keeps checkpointing on its own past BACKSTOP_PAGES, by then with almost nothing left to copy.
 * When the thread cannot start or dies, the daemon's connection checkpoints as SQLite does by
 * default again: nothing waits for the thread, and nothing is lost without it (the WAL is durable).
 */

/** What the daemon's connection checkpoints past while the thread runs (about 16 MB of WAL). */
export const BACKSTOP_PAGES = 4000;
/** SQLite's default, restored when the thread is not there. */
export const INLINE_PAGES = 1000;
/** How often the thread copies what was committed. */
const INTERVAL_MS = 200;
/** How long a stopping thread may take to finish a checkpoint in progress before it is ended. */
const STOP_GRACE_MS = 10_000;

export interface CheckpointSettings {
  path: string;
  intervalMs: number;
}

/** What the thread posts: once when it is connected (or could not be), then on a change of health. */
export type CheckpointThreadMessage =
  | { kind: 'ready' }
  | { kind: 'start-failed'; error: string }
  | { kind: 'failed'; error: string }
  | { kind: 'recovered' };

export interface WalCheckpointThread {
  /** Ends the thread; the daemon's connection checkpoints on its own again. Safe to call twice. */
  stop(): Promise<void>;
}

export interface WalCheckpointThreadOptions {
  /** The daemon's connection, in WAL mode. */
  db: DatabaseSync;
  /** The database file the thread opens. */
  path: string;
  logger: Logger;
  intervalMs?: number;
  /** The thread's entry file; tests give one that fails. */
  workerFile?: URL;
}

const WORKER_FILE = new URL('./wal-checkpoint-worker.ts', import.meta.url);

export function startWalCheckpointThread(options: WalCheckpointThreadOptions): WalCheckpointThread {
  const { db, logger } = options;
  const settings: CheckpointSettings = { path: options.path, intervalMs: options.intervalMs ?? INTERVAL_MS };
  const worker = new Worker(options.workerFile ?? WORKER_FILE, { workerData: settings });
  // An open store does not keep the process alive; its close() ends the thread.
  worker.unref();
  let stopping = false;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const checkpointInline = () => {
    if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${INLINE_PAGES}`);
  };
  const lost = (why: string) => {
    if (stopping) return;
    stopping = true;
    checkpointInline();
    logger.error({ event: 'storage.checkpoint.thread.failed', error: why }, 'the WAL checkpoint thread stopped; checkpoints run in commits again');
  };

  worker.on('message', (message: CheckpointThreadMessage) => {
    if (message.kind === 'ready') {
      if (!stopping) db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    } else if (message.kind === 'start-failed') {
      lost(message.error);
    } else if (message.kind === 'failed') {
      logger.warn({ event: 'storage.checkpoint.failed', error: message.error }, 'a WAL checkpoint failed; the frames stay in the WAL and the next one tries again');
    } else {
      logger.info({ event: 'storage.checkpoint.recovered' }, 'WAL checkpoints work again');
    }
  });
  worker.on('error', (err) => lost(err.message));
  worker.on('exit', (code) => lost(`exited with code ${code}`));

  return {
    async stop() {
      if (!stopping) {
        stopping = true;
        checkpointInline();
        worker.postMessage('stop');
        // Finishing a checkpoint in progress closes the thread's connection cleanly; one stuck on the disk is ended.
        const limit = setTimeout(() => void worker.terminate(), STOP_GRACE_MS);
        await exited;
        clearTimeout(limit);
      }
      await exited;
    },
  };
}
