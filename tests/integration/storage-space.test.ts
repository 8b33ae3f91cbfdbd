import { writeFileSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StorageSpace } from '../../src/engine/storage-space.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { capturingLogger } from '../helpers/log-capture.ts';
import { mountSmallDisk, requireSmallDisk } from '../helpers/small-disk.ts';

/*
 * The disk space watch over a real SQLite store on a 32 MiB tmpfs: low below its margin, and
 * back once space is freed, each change logged once.
 */

const canMount = await requireSmallDisk();
const MIB = 1 << 20;

async function until(what: string, done: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('disk space beside the queue', () => {
  it.skipIf(!canMount)('is low while less than the margin is free, and not once space comes back', async () => {
    const disk = await mountSmallDisk(32 * MIB);
    const { logger, logs } = capturingLogger();
    const store = createSqliteStore({ path: `${disk.path}/queue.db`, logger });
    const space = new StorageSpace({ store, minFreeBytes: 16 * MIB, logger, intervalMs: 30 });
    try {
      await store.migrate();
      await space.start();
      expect(space.low).toBe(false);
      writeFileSync(`${disk.path}/other`, Buffer.alloc(20 * MIB));
      await until('space is low', () => space.low);
      rmSync(`${disk.path}/other`);
      await until('space is back', () => !space.low);
      const changes = logs.filter((line) => String(line.event).startsWith('storage.space.'));
      expect(changes.map((line) => line.event)).toEqual(['storage.space.low', 'storage.space.ok']);
      expect(changes[0]).toMatchObject({ level: 40, minFreeBytes: 16 * MIB, freeBytes: expect.any(Number) });
      expect(changes[0]!.freeBytes as number).toBeLessThan(16 * MIB);
    } finally {
      space.stop();
      await store.close();
      await disk.remove();
    }
  });

  it.skipIf(!canMount)('once low, takes mail again only with a quarter more than the margin free, and says so to readiness', async () => {
    const disk = await mountSmallDisk(32 * MIB);
    const { logger, logs } = capturingLogger();
    const store = createSqliteStore({ path: `${disk.path}/queue.db`, logger });
    const space = new StorageSpace({ store, minFreeBytes: 8 * MIB, logger, intervalMs: 30 });
    const free = async () => (await store.freeBytes())!;
    try {
      await store.migrate();
      await space.start();
      expect(space.resumeBytes).toBe(10 * MIB);
      // Fill to 7 MiB free: low.
      const empty = await free();
      writeFileSync(`${disk.path}/fill`, Buffer.alloc(empty - 7 * MIB));
      await until('space is low', () => space.low);
      expect(() => space.check()).toThrow(`disk space low: new mail refused until ${10 * MIB} bytes are free beside the queue`);
      // Back over the margin, under the resume point: still low, and nothing logged.
      writeFileSync(`${disk.path}/fill`, Buffer.alloc(empty - 9 * MIB));
      expect(await free()).toBeGreaterThan(8 * MIB);
      expect(await free()).toBeLessThan(10 * MIB);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(space.low).toBe(true);
      // A restart there does not take mail either.
      const restarted = new StorageSpace({ store, minFreeBytes: 8 * MIB, logger, intervalMs: 30 });
      await restarted.start();
      restarted.stop();
      expect(restarted.low).toBe(true);
      // Past it: mail is taken again.
      writeFileSync(`${disk.path}/fill`, Buffer.alloc(MIB));
      await until('space is back', () => !space.low);
      expect(() => space.check()).not.toThrow();
      expect(logs.filter((line) => String(line.event).startsWith('storage.space.')).map((line) => line.event)).toEqual(['storage.space.low', 'storage.space.low', 'storage.space.ok']);
    } finally {
      space.stop();
      await store.close();
      await disk.remove();
    }
  });

  it('is never low for a store without local files', async () => {
    const { logger } = capturingLogger();
    const store = createSqliteStore({ path: ':memory:', logger });
    const space = new StorageSpace({ store, minFreeBytes: Number.MAX_SAFE_INTEGER, logger });
    await store.migrate();
    expect(await store.freeBytes()).toBeNull();
    await space.start();
    expect(space.low).toBe(false);
    space.stop();
    await store.close();
  });
});
