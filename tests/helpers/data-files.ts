import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';

/** A copy of the shipped data files (config/*.yaml) in `dir`, to resolve with `configDir` and edit. */
export function copyDataFiles(dir: string): { configDir: string; edit: (file: keyof typeof DATA_FILES, change: (text: string) => string) => void } {
  mkdirSync(dir, { recursive: true });
  for (const name of Object.values(DATA_FILES)) copyFileSync(join(DEFAULT_CONFIG_DIR, name), join(dir, name));
  return {
    configDir: dir,
    edit: (file, change) => {
      const path = join(dir, DATA_FILES[file]);
      writeFileSync(path, change(readFileSync(path, 'utf8')));
    },
  };
}
