import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Log event names are lowercase words joined by dots, area first: `smtp.message.accepted`. */
const EVENT_NAME = /^[a-z]+(\.[a-z]+)+$/;
const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every literal event name (`event: '...'`, and the fixed part of a template) with its file. */
function eventNames(): Array<{ name: string; file: string }> {
  return sourceFiles(SRC).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/event: ['`]([^'`]+)['`]/g)].map((match) => ({
      // `delivery.${final}` is checked as the name it makes for a one-word value.
      name: match[1]!.replace(/\$\{[^}]+\}/g, 'x'),
      file: relative(SRC, file),
    })),
  );
}

describe('log event names', () => {
  const names = eventNames();

  it('finds the events of the source', () => {
    expect(names.length).toBeGreaterThan(50);
    expect(names.map((n) => n.name)).toContain('smtp.message.accepted');
  });

  it('are lowercase words joined by dots', () => {
    expect(names.filter((n) => !EVENT_NAME.test(n.name)).map((n) => `${n.file}: ${n.name}`)).toEqual([]);
  });
});
