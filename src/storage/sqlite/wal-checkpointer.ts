import { Worker } from 'node:worker_threads';
import type { Logger } from '../../observability/logger.ts';

/** A checkpoint thread's answer (wal-checkpoint-thread.ts): PRAGMA wal_checkpoint's counts, or its error. */
type Reply = { id: number; busy: boolean; log: number; checkpointed: number } | { id: number; error: string };

export interface WalCheckpointerOptions {
  /** The database file (the WAL is beside it). */
  file: string;
  logger: Logger;
  /** Called once if the thread is lost: the store checkpoints inside its commits again. */
  fallback: () => void;
  /** WAL frames between checkpoints, as SQLite's own wal_autocheckpoint counts them. */
  framesPerCheckpoint?: number;
  /** Longest the writes wait for the closing pass (see beforeWrite); they go on without it after. */
  finishTimeoutMs?: number;
  threadFile?: URL;
}

const THREAD_FILE = new URL('./wal-checkpoint-thread.ts', import.meta.url);
/** Commits between the first two checkpoints, before a frame count says how large a commit is. */
const FIRST_INTERVAL = 16;
/** The most commits between checkpoints, however small each one. */
const MAX_INTERVAL = 256;

/**
 * Checkpoints a SQLite store's WAL on a thread of their own. Left to SQLite, a checkpoint runs
 * inside the COMMIT that crosses wal_autocheckpoint's 1000 frames: the event loop copies some 4 MB
 * into the database file and waits for two fsyncs, several milliseconds in which no SMTP session
 * is served, a few percent of its time under load.
 *
 * Two passes per checkpoint. The first, started after enough commits, copies what is in the WAL
 * while the store goes on writing. The WAL can only start over from its beginning (instead of
 * growing) when a write transaction begins with every frame copied, so before the next
 * transaction after the first pass, writes wait for a second pass over the few frames written
 * meanwhile (beforeWrite). The event loop serves everything else during both.
 *
 * If the thread fails or ends, the store is told (`fallback`) and SQLite checkpoints inside its
 * commits again, as it would without this.
 */
export class WalCheckpointer {
  private readonly options: WalCheckpointerOptions;
  private readonly framesPerCheckpoint: number;
  private worker: Worker | null = null;
  /** Settles when the thread has exited; null before it starts and after. */
  private running: Promise<void> | null = null;
  private lost = false;
  private closed = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply | null) => void>();
  /** Commits since the WAL last started over, and how many to let pass before a first pass. */
  private commits = 0;
  private interval = FIRST_INTERVAL;
  private firstPassRunning = false;
  private secondPassDue = false;
  private failing = false;

  constructor(options: WalCheckpointerOptions) {
    this.options = options;
    this.framesPerCheckpoint = options.framesPerCheckpoint ?? 1000;
  }

  /** After each COMMIT: may start the first pass. */
  committed(): void {
    if (this.lost || this.closed || this.firstPassRunning || this.secondPassDue) return;
    if (++this.commits < this.interval) return;
    this.firstPassRunning = true;
    const commits = this.commits;
    void this.ask(null).then((reply) => {
      this.firstPassRunning = false;
      if (!reply || 'error' in reply || reply.log === 0) {
        // Nothing to copy, or no checkpoint possible now: the next try after another interval.
        this.commits = 0;
        return;
      }
      // The next interval: about framesPerCheckpoint frames, at the size commits have had lately.
      this.interval = Math.min(MAX_INTERVAL, Math.max(1, Math.round((this.framesPerCheckpoint * commits) / reply.log)));
      this.secondPassDue = true;
    });
  }

  /** Before each write transaction: the second pass to wait for, or null when none is due. */
  beforeWrite(): Promise<void> | null {
    if (!this.secondPassDue) return null;
    this.secondPassDue = false;
    return this.ask(this.options.finishTimeoutMs ?? 10_000).then((reply) => {
      if (reply && !('error' in reply) && reply.checkpointed === reply.log) this.commits = 0;
    });
  }

  /** Ends the thread (its connection closed) before the store closes its own. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (!worker || !this.running) return;
    worker.postMessage('close');
    const timer = setTimeout(() => void worker.terminate(), 5_000);
    await this.running;
    clearTimeout(timer);
  }

  /** Runs a checkpoint on the thread; null when it could not (the thread lost, or out of time). */
  private ask(timeoutMs: number | null): Promise<Reply | null> {
    const worker = this.thread();
    if (!worker) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer =
        timeoutMs === null
          ? null
          : setTimeout(() => {
              this.waiting.delete(id);
              this.options.logger.warn({ event: 'storage.checkpoint.slow', timeoutMs }, 'a WAL checkpoint took too long; writes go on without waiting for it');
              resolve(null);
            }, timeoutMs);
      this.waiting.set(id, (reply) => {
        if (timer) clearTimeout(timer);
        resolve(reply);
      });
      worker.postMessage({ id });
    });
  }

  private thread(): Worker | null {
    if (this.lost || this.closed) return null;
    if (this.worker) return this.worker;
    // execArgv: the thread needs neither tsx nor anything else the daemon was started with.
    const worker = new Worker(this.options.threadFile ?? THREAD_FILE, { workerData: this.options.file, execArgv: [] });
    // Never what keeps the process alive; close() ends it on a stop.
    worker.unref();
    worker.on('message', (reply: Reply) => this.answer(reply));
    worker.on('error', (err) => this.lose(err));
    this.running = new Promise((resolve) =>
      worker.once('exit', (code) => {
        this.running = null;
        if (!this.closed) this.lose(new Error(`the checkpoint thread exited (${code})`));
        resolve();
      }),
    );
    this.worker = worker;
    return worker;
  }

  private answer(reply: Reply): void {
    const settle = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    const { logger } = this.options;
    if ('error' in reply) {
      // A full disk, most likely: the frames stay in the WAL, and a later checkpoint copies them.
      if (!this.failing) logger.warn({ event: 'storage.checkpoint.failed', error: reply.error }, 'a WAL checkpoint failed; the WAL grows until one succeeds');
      this.failing = true;
    } else if (this.failing) {
      this.failing = false;
      logger.info({ event: 'storage.checkpoint.ok' }, 'WAL checkpoints succeed again');
    }
    settle?.(reply);
  }

  private lose(err: Error): void {
    if (this.lost) return;
    this.lost = true;
    this.options.logger.error({ event: 'storage.checkpoint.lost', err }, 'the WAL checkpoint thread failed; commits checkpoint the WAL themselves');
    for (const settle of this.waiting.values()) settle(null);
    this.waiting.clear();
    this.options.fallback();
  }
}
