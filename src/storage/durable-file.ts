import { link, open, rename } from 'node:fs/promises';

/**
 * Putting a file in place so that a power loss never leaves a partial one under its name: the
 * caller writes a temporary file beside it and syncs it, then moves it into place here, and the
 * directory entry is synced too. Shared by the DKIM key writer and the SQLite backup.
 */

/** fsync of a file or a directory (a directory's sync makes a new entry in it durable). */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Gives `temporary` the name `path`. Without `force` an existing `path` is kept and false is
 * returned: link() fails with EEXIST where rename() would replace it silently, and unlike a check
 * before the rename, no file can appear in between. The caller removes `temporary` in every case.
 */
export async function moveIntoPlace(temporary: string, path: string, options: { force?: boolean } = {}): Promise<boolean> {
  try {
    if (options.force) await rename(temporary, path);
    else await link(temporary, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && !options.force) return false;
    throw err;
  }
  return true;
}
