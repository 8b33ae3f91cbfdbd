import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { requireCapability } from './services.ts';
import { createTempDir } from './temp-dir.ts';

/**
 * A small filesystem of a test's own (a tmpfs mounted on a temp dir, which needs root) that the
 * test fills to the last byte and frees again: the disk-full fault. Where mounting is not
 * possible, the tests that need it are skipped locally and fail under CI=true, saying why.
 */
export interface SmallDisk {
  path: string;
  /** Writes a filler file until the filesystem refuses (ENOSPC). */
  fill(): void;
  /** Deletes the filler: the space is back at once. */
  free(): void;
  /** Unmounts and removes the mount point. Safe to call twice. */
  remove(): Promise<void>;
}

const FILLER = '.filler';

export async function mountSmallDisk(sizeBytes: number): Promise<SmallDisk> {
  const dir = await createTempDir('rookery-small-disk');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir.path], { stdio: 'pipe' });
  } catch (err) {
    await dir.remove();
    throw new Error(`cannot mount a tmpfs for the disk-full test (it needs root): ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`);
  }
  const filler = join(dir.path, FILLER);
  let removed: Promise<void> | undefined;
  return {
    path: dir.path,
    fill() {
      const fd = openSync(filler, 'a');
      try {
        for (const size of [1 << 20, 1 << 12, 1]) {
          const chunk = Buffer.alloc(size);
          try {
            for (;;) writeSync(fd, chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    remove() {
      removed ??= (async () => {
        try {
          execFileSync('umount', [dir.path], { stdio: 'pipe' });
        } catch {
          // Still in use by a process that is on its way out: detach it now, freed once unused.
          execFileSync('umount', ['-l', dir.path], { stdio: 'pipe' });
        }
        await dir.remove();
      })();
      return removed;
    },
  };
}

/** True when a small disk can be mounted here; false locally (with a warning) when not; throws under CI. */
export async function requireSmallDisk(): Promise<boolean> {
  const problem = await mountSmallDisk(1 << 20).then(
    (disk) => disk.remove().then(() => null),
    (err: unknown) => (err as Error).message,
  );
  return requireCapability(problem);
}
