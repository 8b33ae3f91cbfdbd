/**
 * Lines callers up per key: each runs only after the one before it in the same line finished.
 * Jobs waiting for the same (pool, destination site) queue here, so one of them polls the rate
 * limit at a time instead of all of them at once, and they go out in the order they came.
 * `K` is the (branded) type of the keys, made by one key function.
 */
export class WaitLine<K extends string = string> {
  private readonly tails = new Map<K, Promise<unknown>>();

  async run<T>(key: K, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.then(work, work);
    const tail = mine.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await mine;
    } finally {
      // The last in line leaves nothing behind.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Lines with someone in them (for tests). */
  get size(): number {
    return this.tails.size;
  }
}
