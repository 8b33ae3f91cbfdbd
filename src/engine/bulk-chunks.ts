/**
 * A large bulk change of queued rows made in chunks, each its own store call (its own
 * transaction), with a pause after each as long as it took: SQLite runs each call on the daemon's
 * one thread, so acceptance keeps at least half of it while a large backlog moves, and on
 * PostgreSQL no chunk holds many row locks for long.
 */
export interface ChunkOptions {
  /** Rows asked of each call. */
  size: number;
  /** The most rows moved in all; no bound by default. */
  limit?: number;
  /** Waits between chunks (cut short on stop by whoever owns the wait). */
  pause: (ms: number) => Promise<void>;
  /** True once the owner stops: the move ends after its current chunk. */
  stopped?: () => boolean;
}

/** Repeats `chunk` until it moves fewer rows than asked (or `limit` in all); returns how many moved. */
export async function inChunks(chunk: (limit: number) => Promise<number>, options: ChunkOptions): Promise<number> {
  const limit = options.limit ?? Infinity;
  let total = 0;
  for (;;) {
    const started = performance.now();
    const asked = Math.min(options.size, limit - total);
    const moved = await chunk(asked);
    total += moved;
    if (moved < asked || total >= limit || options.stopped?.()) return total;
    await options.pause(performance.now() - started);
  }
}

/** Waits `ms`, or less when `signal` aborts first (an owner's stop cuts the pauses between chunks short). */
export function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
