import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { UncertainDurabilityError, WriteBatcher, type WriteOp } from '../../src/storage/write-batcher.ts';

/**
 * A tiny transactional key set standing in for a database: ops write into a copy that replaces
 * the committed state only when the whole transaction succeeds.
 */
class KeySet {
  committed = new Set<string>();
  transactions: number[] = [];
  failNextCommit = false;

  async run(ops: readonly WriteOp<Set<string>>[]): Promise<unknown[]> {
    this.transactions.push(ops.length);
    const working = new Set(this.committed);
    const results: unknown[] = [];
    for (const op of ops) results.push(await op(working));
    if (this.failNextCommit) {
      this.failNextCommit = false;
      throw new Error('commit failed');
    }
    this.committed = working;
    return results;
  }
}

const logger = createLogger('silent');

function insert(key: string): (tx: Set<string>) => string {
  return (tx) => {
    if (tx.has(key)) throw new Error(`duplicate ${key}`);
    tx.add(key);
    return key;
  };
}

describe('WriteBatcher', () => {
  it('writes operations submitted in the same tick in one transaction', async () => {
    const db = new KeySet();
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger });
    const results = await Promise.all(['a', 'b', 'c'].map((k) => batcher.submit(insert(k))));
    expect(results).toEqual(['a', 'b', 'c']);
    expect(db.transactions).toEqual([3]);
    expect([...db.committed]).toEqual(['a', 'b', 'c']);
  });

  it('settles a caller only after the commit that holds its operation', async () => {
    const db = new KeySet();
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger });
    const seen: boolean[] = [];
    await Promise.all(['a', 'b'].map((k) => batcher.submit(insert(k)).then(() => seen.push(db.committed.has(k)))));
    expect(seen).toEqual([true, true]);
  });

  it('fails only the operation that threw and commits the rest of the batch', async () => {
    const db = new KeySet();
    db.committed.add('taken');
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger });
    const settled = await Promise.allSettled(['a', 'taken', 'b', 'a'].map((k) => batcher.submit(insert(k))));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((settled[1] as PromiseRejectedResult).reason.message).toBe('duplicate taken');
    expect([...db.committed].sort()).toEqual(['a', 'b', 'taken']);
    // First attempt, then without 'taken', then without the second 'a'.
    expect(db.transactions).toEqual([4, 3, 2]);
  });

  it('retries each operation alone when the commit itself fails', async () => {
    const db = new KeySet();
    db.failNextCommit = true;
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger });
    const results = await Promise.all(['a', 'b'].map((k) => batcher.submit(insert(k))));
    expect(results).toEqual(['a', 'b']);
    expect(db.transactions).toEqual([2, 1, 1]);
  });

  it('fails the whole batch at once when the transaction cannot begin', async () => {
    let runs = 0;
    const batcher = new WriteBatcher<Set<string>>({
      run: async () => {
        runs += 1;
        throw new Error('database is locked');
      },
      logger,
    });
    const settled = await Promise.allSettled(['a', 'b', 'c'].map((k) => batcher.submit(insert(k))));
    expect(settled.map((s) => s.status === 'rejected' && s.reason.message)).toEqual(['database is locked', 'database is locked', 'database is locked']);
    expect(runs).toBe(1);
  });

  it('caps the operations per transaction', async () => {
    const db = new KeySet();
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger, maxBatch: 2 });
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((k) => batcher.submit(insert(k))));
    expect(db.transactions).toEqual([2, 2, 1]);
  });

  it('groups operations that arrive while a commit is in progress', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const db = new KeySet();
    const batcher = new WriteBatcher<Set<string>>({
      run: async (ops) => {
        if (db.transactions.length === 0) await gate;
        return db.run(ops);
      },
      logger,
    });
    const first = batcher.submit(insert('a'));
    await new Promise((r) => setImmediate(r));
    const later = ['b', 'c', 'd'].map((k) => batcher.submit(insert(k)));
    release();
    await Promise.all([first, ...later]);
    expect(db.transactions).toEqual([1, 3]);
  });

  it('waits for queued operations on close and refuses new ones', async () => {
    const db = new KeySet();
    const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), logger });
    const pending = batcher.submit(insert('a'));
    await batcher.close();
    expect(db.committed.has('a')).toBe(true);
    await expect(pending).resolves.toBe('a');
    await expect(batcher.submit(insert('b'))).rejects.toThrow(/closed/);
    await batcher.close();
  });

  describe('with a sync after each commit', () => {
    /** Syncs that settle only when the test says so, in the order they were asked for. */
    function manualSyncs() {
      const waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
      return {
        waiting,
        sync: () => new Promise<void>((resolve, reject) => waiting.push({ resolve, reject })),
      };
    }
    const tick = () => new Promise((resolve) => setImmediate(resolve));

    it('answers a batch only once a sync after it resolves; writes the next batch meanwhile, and syncs it with the next sync', async () => {
      const db = new KeySet();
      const syncs = manualSyncs();
      const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), sync: syncs.sync, logger });
      const answered: string[] = [];
      const first = Promise.all(['a', 'b'].map((k) => batcher.submit(insert(k)).then((r) => answered.push(r))));
      await tick();
      await tick();
      expect(db.transactions).toEqual([2]);
      expect(answered).toEqual([]);

      const later = Promise.all(['c', 'd'].map((k) => batcher.submit(insert(k)).then((r) => answered.push(r))));
      await tick();
      await tick();
      const third = batcher.submit(insert('e')).then((r) => answered.push(r));
      await tick();
      await tick();
      // Written while the first sync is out; one sync at a time, so none of its own yet.
      expect(db.transactions).toEqual([2, 2, 1]);
      expect(syncs.waiting).toHaveLength(1);
      syncs.waiting[0]!.resolve();
      await first;
      expect(answered.sort()).toEqual(['a', 'b']);
      // The batches committed meanwhile share the next sync.
      await tick();
      expect(syncs.waiting).toHaveLength(2);
      syncs.waiting[1]!.resolve();
      await Promise.all([later, third]);
      expect(answered.sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    });

    it('fails every caller of a batch whose sync fails, and runs none of its operations again', async () => {
      const db = new KeySet();
      const syncs = manualSyncs();
      const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), sync: syncs.sync, logger });
      const settled = Promise.allSettled(['a', 'b'].map((k) => batcher.submit(insert(k))));
      await tick();
      await tick();
      syncs.waiting[0]!.reject(new UncertainDurabilityError('sync failed'));
      expect((await settled).map((s) => s.status === 'rejected' && (s.reason as Error).name)).toEqual(['UncertainDurabilityError', 'UncertainDurabilityError']);
      expect(db.transactions).toEqual([2]);
    });

    it('closes once every sync has settled', async () => {
      const db = new KeySet();
      const syncs = manualSyncs();
      const batcher = new WriteBatcher<Set<string>>({ run: (ops) => db.run(ops), sync: syncs.sync, logger });
      const write = batcher.submit(insert('a'));
      await tick();
      await tick();
      let closed = false;
      const closing = batcher.close().then(() => (closed = true));
      await tick();
      expect(closed).toBe(false);
      syncs.waiting[0]!.resolve();
      await Promise.all([write, closing]);
      expect(closed).toBe(true);
    });
  });
});
