import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  path: string;
  /** Joins segments onto the directory. */
  file(...segments: string[]): string;
  /** Deletes the directory and its contents. Safe to call twice. */
  remove(): Promise<void>;
}

/** A fresh directory under the OS temp dir; call remove() in afterEach / afterAll. */
export async function createTempDir(prefix = 'rookery-test'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`));
  return {
    path,
    file: (...segments) => join(path, ...segments),
    remove: () => rm(path, { recursive: true, force: true }),
  };
}
