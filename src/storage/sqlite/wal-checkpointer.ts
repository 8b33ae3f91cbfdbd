import { Worker } from 'node:worker_threads';
import type { Logger } from '../../observability/logger.ts';

/**
 * A checkpoint thread's answer (wal-checkpoint-thread.ts): PRAGMA wal_checkpoint's counts (busy,
 * with counts of -1, when another connection was checkpointing), or its error with SQLite's code.
 */
type Reply = { id: number; busy: boolean; log: number; checkpointed: number } | { id: number; error: string; errcode: number | null };

export interface WalCheckpointerOptions {
  /** The database file (the WAL is beside it). */
  file: string;
  logger: Logger;
  /** Called once if the thread is lost (it failed, ended or hung): the store checkpoints inside its commits again. */
  fallback: () => void;
  /**
   * Called once when a checkpoint hit an I/O error: the database file may lack pages SQLite now
   * counts as copied, and a later checkpoint whose sync succeeds would let the WAL start over on
   * top of them. The store takes no more writes; no checkpoint runs again.
   */
  onFatal: (err: Error) => void;
  /** WAL frames between checkpoints, as SQLite's own wal_autocheckpoint counts them. */
  framesPerCheckpoint?: number;
  /** Longest a pass may take (the second one holds the writes back) before the thread is given up as hung. */
  firstPassTimeoutMs?: number;
  secondPassTimeoutMs?: number;
  threadFile?: URL;
}

const THREAD_FILE = new URL('./wal-checkpoint-thread.ts', import.meta.url);
/** Commits between the first two checkpoints, before a frame count says how large a commit is. */
const FIRST_INTERVAL = 16;
/** The most commits between checkpoints, however small each one. */
const MAX_INTERVAL = 256;
/** SQLite's primary result codes for a checkpoint that could not run now, but lost nothing: BUSY, LOCKED, FULL. */
const NOT_NOW = new Set([5, 6, 13]);

/**
 * Checkpoints a SQLite store's WAL on a thread of their own. Left to SQLite, a checkpoint runs
 * inside the COMMIT that crosses wal_autocheckpoint's 1000 frames: the event loop copies some 4 MB
 * into the database file and waits for two fsyncs, several milliseconds in which no SMTP session
 * is served, a few percent of its time under load.
 *
 * Two passes per checkpoint. The first, started after enough commits, copies what is in the WAL
 * while the store goes on writing. The WAL can only start over from its beginning (instead of
 * growing) when a write transaction begins with every frame copied, so before the next
 * transaction after the first pass, writes wait for a second pass over the frames written
 * meanwhile (beforeWrite). The event loop serves everything else during both. A reader that
 * holds old frames (a backup) keeps the second pass from finishing; the next try comes an
 * interval later, as for any checkpoint.
 *
 * If the thread fails, ends or hangs, the store is told (`fallback`) and SQLite checkpoints
 * inside its commits again, as it would without this.
 */
export class WalCheckpointer {
  private readonly options: WalCheckpointerOptions;
  private readonly framesPerCheckpoint: number;
  private worker: Worker | null = null;
  /** Settles when the thread has exited; null before it starts and after. */
  private running: Promise<void> | null = null;
  /** No checkpoint runs again: the thread was lost, a checkpoint failed for good, or closed. */
  private stopped = false;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply | null) => void>();
  /** Commits since the last pass, how many to let pass before the next, and the WAL's frames then. */
  private commits = 0;
  private interval = FIRST_INTERVAL;
  private framesAtLastPass = 0;
  private firstPassRunning = false;
  private secondPassDue = false;
  private failing = false;

  constructor(options: WalCheckpointerOptions) {
    this.options = options;
    this.framesPerCheckpoint = options.framesPerCheckpoint ?? 1000;
  }

  /** After each COMMIT: may start the first pass. */
  committed(): void {
    if (this.stopped || this.firstPassRunning || this.secondPassDue) return;
    if (++this.commits < this.interval) return;
    this.firstPassRunning = true;
    const commits = this.commits;
    void this.ask(this.options.firstPassTimeoutMs ?? 60_000).then((reply) => {
      this.firstPassRunning = false;
      this.commits = 0;
      const counts = copied(reply);
      if (!counts) return;
      // The next interval: about framesPerCheckpoint frames, at the size commits have had lately
      // (the frames since the last pass: a WAL that could not start over holds older ones too).
      const added = counts.log >= this.framesAtLastPass ? counts.log - this.framesAtLastPass : counts.log;
      this.framesAtLastPass = counts.log;
      if (added > 0) this.interval = Math.min(MAX_INTERVAL, Math.max(1, Math.round((this.framesPerCheckpoint * commits) / added)));
      this.secondPassDue = counts.checkpointed > 0;
    });
  }

  /** Before each write transaction: the second pass to wait for, or null when none is due. */
  beforeWrite(): Promise<void> | null {
    if (!this.secondPassDue) return null;
    this.secondPassDue = false;
    return this.ask(this.options.secondPassTimeoutMs ?? 10_000).then((reply) => {
      const counts = copied(reply);
      if (counts) this.framesAtLastPass = counts.log;
    });
  }

  /** Ends the thread (its connection closed) before the store closes its own. */
  async close(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    const running = this.running;
    if (!worker || !running) return;
    worker.postMessage('close');
    // A thread stuck in I/O cannot be ended; the store closes without waiting for it forever.
    let timer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        void worker.terminate();
        resolve();
      }, 5_000);
    });
    await Promise.race([running, outOfTime]);
    clearTimeout(timer);
  }

  /** Runs a checkpoint on the thread; null when it could not (the thread lost, or out of time). */
  private ask(timeoutMs: number): Promise<Reply | null> {
    const worker = this.thread();
    if (!worker) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        this.lose(new Error(`a WAL checkpoint did not answer in ${timeoutMs} ms`));
        resolve(null);
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      worker.postMessage({ id });
    });
  }

  private thread(): Worker | null {
    if (this.stopped) return null;
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
        // After close() or stop() this is the end asked for: lose() does nothing then.
        this.lose(new Error(`the checkpoint thread exited (${code})`));
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
    if ('error' in reply && !NOT_NOW.has((reply.errcode ?? 0) & 0xff)) {
      this.stop();
      this.options.onFatal(new Error(`a WAL checkpoint failed: ${reply.error}`));
    } else if ('error' in reply) {
      // A full disk, most likely: nothing was counted as copied, and a later checkpoint copies it.
      if (!this.failing) logger.warn({ event: 'storage.checkpoint.failed', error: reply.error }, 'a WAL checkpoint failed; the WAL grows until one succeeds');
      this.failing = true;
    } else if (this.failing) {
      this.failing = false;
      logger.info({ event: 'storage.checkpoint.ok' }, 'WAL checkpoints succeed again');
    }
    settle?.(reply);
  }

  private lose(err: Error): void {
    if (this.stopped) return;
    this.stop();
    this.options.logger.error({ event: 'storage.checkpoint.lost', err }, 'the WAL checkpoint thread failed; commits checkpoint the WAL themselves');
    this.options.fallback();
  }

  /** No checkpoint runs again; the thread is ended and whatever waited on it goes on. */
  private stop(): void {
    this.stopped = true;
    for (const settle of this.waiting.values()) settle(null);
    this.waiting.clear();
    void this.worker?.terminate();
  }
}

/** The counts of a checkpoint that ran; null for an error, or when another connection was checkpointing. */
function copied(reply: Reply | null): { log: number; checkpointed: number } | null {
  if (!reply || 'error' in reply || reply.busy || reply.log < 0) return null;
  return reply;
}
