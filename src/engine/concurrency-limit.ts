/**
 * Bounds on work done at once: a semaphore that admits `limit` tasks and queues the rest (MTA-STS
 * policy fetches of every delivery share one), and a loop over items with at most `limit` in
 * flight (the TLS report lookups of a pass).
 */

export interface Semaphore {
  /** Runs `task` once fewer than `limit` run; the others wait their turn, in order. */
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createSemaphore(limit: number): Semaphore {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a semaphore's limit must be a positive integer, not ${limit}`);
  let running = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return {
    async run(task) {
      if (running < limit) running++;
      // A released slot passes straight to the next waiter, so `running` counts it already.
      else await new Promise<void>((admit) => waiting.push(admit));
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}

/** Calls `each` for every item, at most `limit` at once; resolves when all have ended (each must catch its own errors). */
export async function forEachLimited<T>(items: readonly T[], limit: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await each(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
