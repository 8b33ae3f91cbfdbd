import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The folder layers of src/, top to bottom. An import may go to a folder on the same line or a
 * lower one, never up, and the folders never import each other in a cycle. A new folder must be
 * placed here before it can be imported.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['(root)'], // main.ts and the other composition-root files directly in src/
  ['smtp', 'control-api', 'feedback', 'webhooks'],
  ['engine'],
  ['ippool', 'sender-domains'],
  ['access'],
  ['storage'],
  ['mail', 'config', 'observability', 'vendor', 'errors.ts', 'clock.ts'],
];

const SRC = resolve(import.meta.dirname, '../../src');
const rank = new Map(LAYERS.flatMap((line, i) => line.map((unit) => [unit, i] as const)));

/** The layer unit of a file: its top folder under src/, or a root file's own name for the shared primitives. */
function unitOf(file: string): string {
  const path = relative(SRC, file);
  const [top, ...rest] = path.split('/');
  if (rest.length) return top!;
  return rank.has(top!) ? top! : '(root)';
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative import (static, type-only, re-export or dynamic) of every file, as unit -> unit edges. */
function importEdges(): Array<{ from: string; to: string; file: string; spec: string }> {
  return sourceFiles(SRC).flatMap((file) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    return importedFiles
      .map((ref) => ref.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => ({ from: unitOf(file), to: unitOf(resolve(dirname(file), spec)), file: relative(SRC, file), spec }));
  });
}

/** Folder-level cycles: strongly connected groups of more than one unit (Tarjan). */
function cycles(edges: ReadonlyArray<{ from: string; to: string }>): string[][] {
  const next = new Map<string, Set<string>>();
  for (const { from, to } of edges) if (from !== to) (next.get(from) ?? next.set(from, new Set()).get(from)!).add(to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (unit: string) => {
    index.set(unit, index.size);
    low.set(unit, index.get(unit)!);
    stack.push(unit);
    for (const to of next.get(unit) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(unit, Math.min(low.get(unit)!, low.get(to)!));
      } else if (stack.includes(to)) low.set(unit, Math.min(low.get(unit)!, index.get(to)!));
    }
    if (low.get(unit) === index.get(unit)) {
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        group.push(member);
      } while (member !== unit);
      if (group.length > 1) found.push(group.sort());
    }
  };
  for (const unit of next.keys()) if (!index.has(unit)) visit(unit);
  return found;
}

describe('source layers', () => {
  const edges = importEdges();

  it('reads the imports of every source file', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges.some((e) => e.from === 'engine' && e.to === 'storage')).toBe(true);
  });

  it('places every folder of src/ in a layer', () => {
    const units = new Set(sourceFiles(SRC).map(unitOf));
    expect([...units].filter((unit) => !rank.has(unit))).toEqual([]);
  });

  it('imports only from the same or a lower layer', () => {
    const upward = edges.filter((e) => rank.get(e.to)! < rank.get(e.from)!).map((e) => `${e.file} imports ${e.spec} (${e.from} -> ${e.to})`);
    expect(upward).toEqual([]);
  });

  it('has no cycle between folders', () => {
    expect(cycles(edges)).toEqual([]);
  });

  it('finds an upward import and a cycle when there is one', () => {
    const sample = [
      { from: 'storage', to: 'engine' },
      { from: 'engine', to: 'storage' },
      { from: 'smtp', to: 'engine' },
    ];
    expect(sample.filter((e) => rank.get(e.to)! < rank.get(e.from)!)).toEqual([{ from: 'storage', to: 'engine' }]);
    expect(cycles(sample)).toEqual([['engine', 'storage']]);
  });
});
