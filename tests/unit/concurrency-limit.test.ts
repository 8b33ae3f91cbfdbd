import { describe, expect, it } from 'vitest';
import { createSemaphore, forEachLimited } from '../../src/engine/concurrency-limit.ts';

/** Work held open by the test: each task waits until the test releases it. */
function gate() {
  const open: Array<() => void> = [];
  return { wait: () => new Promise<void>((resolve) => open.push(resolve)), release: () => open.shift()?.(), get waiting() { return open.length; } };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('concurrency limits', () => {
  it('a semaphore runs at most its limit at once, the others in order, and a failed task frees its slot', async () => {
    const slots = createSemaphore(2);
    const g = gate();
    const started: number[] = [];
    const tasks = [1, 2, 3, 4].map((n) =>
      slots.run(async () => {
        started.push(n);
        await g.wait();
        if (n === 1) throw new Error('task 1 failed');
        return n;
      }),
    );
    await turn();
    expect(started).toEqual([1, 2]);
    g.release();
    await expect(tasks[0]).rejects.toThrow('task 1 failed');
    await turn();
    expect(started).toEqual([1, 2, 3]);
    while (g.waiting) {
      g.release();
      await turn();
    }
    expect(await Promise.all(tasks.slice(1))).toEqual([2, 3, 4]);
    expect(() => createSemaphore(0)).toThrow(RangeError);
  });

  it('forEachLimited keeps at most its limit in flight and visits every item once', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimited(Array.from({ length: 10 }, (_, i) => i), 3, async (item) => {
      most = Math.max(most, ++inFlight);
      await turn();
      seen.push(item);
      inFlight--;
    });
    expect(most).toBe(3);
    expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await forEachLimited([], 3, async () => expect.fail('no item'));
  });
});
