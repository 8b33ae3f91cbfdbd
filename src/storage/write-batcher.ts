import type { Logger } from '../observability/logger.ts';

/** One write operation; it runs inside a transaction opened by the backend. */
export type WriteOp<C> = (tx: C) => unknown;

/**
 * Runs `ops` in order inside ONE transaction and commits it. Resolves with each op's result
 * (awaited) once the commit is durable; rejects with nothing committed when any op or the
 * commit fails.
 */
export type RunTransaction<C> = (ops: readonly WriteOp<C>[]) => Promise<unknown[]>;

/**
 * The transaction committed, but whether it is durable is unknown (the sync after COMMIT
 * failed). Its operations are not run again (they did take effect): every caller of the batch
 * gets this error.
 */
export class UncertainDurabilityError extends Error {
  override readonly name = 'UncertainDurabilityError';
}

interface Pending<C> {
  op: WriteOp<C>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

export interface WriteBatcherOptions<C> {
  run: RunTransaction<C>;
  /**
   * Makes what `run` committed durable (an fsync), for a backend whose COMMIT returns before the
   * disk has it. The callers of a batch are answered once it resolves; the next batch is written
   * meanwhile. Rejects with UncertainDurabilityError.
   */
  sync?: () => Promise<void>;
  logger: Logger;
  /** Upper bound of operations per transaction, so one commit never grows without limit. */
  maxBatch?: number;
}

/**
 * Group commit: the single write path of a store. Operations submitted in the same tick, or
 * while a commit is in progress, are written in one transaction, so N concurrent callers pay
 * for one durable commit (one fsync) instead of N. Each caller's promise settles only after
 * the commit that holds its operation.
 *
 * When a batch fails, only the operation that threw (a duplicate id, a constraint) fails, and
 * the rest of the batch is committed again without it; when the failure cannot be pinned on one
 * operation (COMMIT failed), each operation is retried alone. Either way one bad operation
 * fails only its own caller. A failure before any operation ran (BEGIN, no connection, the
 * database locked by another process) fails the whole batch at once.
 *
 * Operations must be safe to run again after a rollback, which every transactional write is.
 *
 * With `sync`, a committed batch is answered only when a sync started after its COMMIT resolves,
 * but the next batch is written as soon as the COMMIT returns, while that sync runs.
 */
export class WriteBatcher<C> {
  private readonly run: RunTransaction<C>;
  private readonly sync: (() => Promise<void>) | undefined;
  private readonly logger: Logger;
  private readonly maxBatch: number;
  private queue: Pending<C>[] = [];
  /** A flush is scheduled or running; new operations wait for it and go into the next batch. */
  private busy = false;
  private closed = false;
  /** Committed batches waiting for the next sync, and whether one is running. */
  private unsynced: Array<{ batch: readonly Pending<C>[]; results: readonly unknown[] }> = [];
  private syncRunning = false;
  private idleWaiters: (() => void)[] = [];

  constructor(options: WriteBatcherOptions<C>) {
    this.run = options.run;
    this.sync = options.sync;
    this.logger = options.logger;
    this.maxBatch = options.maxBatch ?? 500;
  }

  submit<T>(op: (tx: C) => T): Promise<Awaited<T>> {
    if (this.closed) return Promise.reject(new Error('storage is closed'));
    return new Promise<Awaited<T>>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Stops accepting operations and waits until every queued one has been committed or failed. */
  close(): Promise<void> {
    this.closed = true;
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    return !this.busy && this.queue.length === 0 && !this.syncRunning;
  }

  private wakeIdleWaiters(): void {
    if (!this.idle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Answers the callers of a committed batch: at once, or once a sync started after its commit
   * resolves. One sync runs at a time; the batches committed while it runs share the next one,
   * so a slow disk gets fewer, larger syncs rather than a growing line of them.
   */
  private settle(batch: readonly Pending<C>[], results: readonly unknown[]): void {
    if (!this.sync) {
      batch.forEach((pending, i) => pending.resolve(results[i]));
      return;
    }
    this.unsynced.push({ batch, results });
    if (!this.syncRunning) void this.runSync(this.sync);
  }

  private async runSync(sync: () => Promise<void>): Promise<void> {
    this.syncRunning = true;
    while (this.unsynced.length > 0) {
      const committed = this.unsynced;
      this.unsynced = [];
      try {
        await sync();
        for (const { batch, results } of committed) batch.forEach((pending, i) => pending.resolve(results[i]));
      } catch (err) {
        for (const { batch } of committed) for (const pending of batch) pending.reject(err);
      }
    }
    this.syncRunning = false;
    this.wakeIdleWaiters();
  }

  private schedule(): void {
    if (this.busy) return;
    this.busy = true;
    // setImmediate, not a microtask: I/O callbacks that are ready (other sessions finishing
    // their DATA) run first and join this batch.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, this.maxBatch);
    try {
      await this.commit(batch);
    } finally {
      this.busy = false;
      if (this.queue.length > 0) this.schedule();
      else this.wakeIdleWaiters();
    }
  }

  private async commit(batch: Pending<C>[]): Promise<void> {
    let remaining = batch;
    while (remaining.length > 0) {
      const outcome = await this.attempt(remaining);
      if (outcome.ok) {
        this.settle(remaining, outcome.results);
        return;
      }
      if (remaining.length === 1) {
        remaining[0]!.reject(outcome.error);
        return;
      }
      if (!outcome.started) {
        // Failed before any operation ran (BEGIN, no connection, database locked): nothing
        // here is specific to one operation, and retrying each alone would only wait N times.
        for (const pending of remaining) pending.reject(outcome.error);
        return;
      }
      if (outcome.failedAt < 0) break;
      // The operation that threw fails alone; the others did nothing wrong and are written
      // again together, so one bad caller does not turn group commit into one commit each.
      remaining[outcome.failedAt]!.reject(outcome.error);
      remaining = remaining.filter((_, i) => i !== outcome.failedAt);
      // Debug only: the caller receives the error and reports it where it has the context.
      this.logger.debug(
        { event: 'storage.operation.failed', operations: remaining.length, err: outcome.error },
        'write operation failed; committing the rest of its batch again',
      );
    }
    if (remaining.length === 0) return;
    // COMMIT failed: nothing tells which operation caused it, so each runs alone.
    this.logger.warn({ event: 'storage.batch.failed', operations: remaining.length }, 'write batch failed; retrying each operation alone');
    for (const pending of remaining) {
      const outcome = await this.attempt([pending]);
      if (outcome.ok) this.settle([pending], outcome.results);
      else pending.reject(outcome.error);
    }
  }

  /**
   * Runs one transaction and, when it fails, tells whether any operation ran and which one
   * threw (-1: none did).
   */
  private async attempt(
    batch: readonly Pending<C>[],
  ): Promise<{ ok: true; results: unknown[] } | { ok: false; error: unknown; started: boolean; failedAt: number }> {
    let failedAt = -1;
    let started = false;
    const ops = batch.map((pending, i): WriteOp<C> => (tx) => {
      started = true;
      try {
        const result = pending.op(tx);
        if (result instanceof Promise) {
          return result.catch((err: unknown) => {
            failedAt = i;
            throw err;
          });
        }
        return result;
      } catch (err) {
        failedAt = i;
        throw err;
      }
    });
    try {
      return { ok: true, results: await this.run(ops) };
    } catch (error) {
      return { ok: false, error, started, failedAt };
    }
  }
}
