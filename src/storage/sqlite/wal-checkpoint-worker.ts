import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import type { CheckpointSettings, CheckpointThreadMessage } from './wal-checkpoint-thread.ts';

/**
 * The checkpointing thread of wal-checkpoint-thread.ts: its own connection to the database, which
 * copies the WAL's committed frames into the database file (a PASSIVE checkpoint: it never waits
 * for, nor blocks, the daemon's writer) every `intervalMs`, and syncs both files as SQLite does.
 * A checkpoint with nothing to copy reads shared memory and returns, so an idle queue costs
 * nothing.
 */
const settings = workerData as CheckpointSettings;
const port = parentPort!;
const send = (message: CheckpointThreadMessage) => port.postMessage(message);

let db: DatabaseSync;
try {
  db = new DatabaseSync(settings.path);
  db.exec('PRAGMA busy_timeout = 5000');
  // Syncs the WAL before copying from it and the database file after, as the daemon's own
  // connection does; this connection writes nothing, so it never checkpoints on its own.
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA wal_autocheckpoint = 0');
} catch (err) {
  send({ kind: 'start-failed', error: (err as Error).message });
  process.exit(1);
}

const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let failing = false;
let timer: NodeJS.Timeout | null = null;

function run(): void {
  try {
    checkpoint.get();
    if (failing) send({ kind: 'recovered' });
    failing = false;
  } catch (err) {
    // A full disk, for one: the frames stay in the WAL, which is durable, and the next pass tries again.
    if (!failing) send({ kind: 'failed', error: (err as Error).message });
    failing = true;
  }
  timer = setTimeout(run, settings.intervalMs);
}

port.on('message', (message: 'stop') => {
  if (message !== 'stop') return;
  if (timer) clearTimeout(timer);
  db.close();
  port.close();
});
send({ kind: 'ready' });
run();
