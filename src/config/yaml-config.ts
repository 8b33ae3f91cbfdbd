import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, formatPath } from './config-error.ts';

/**
 * YAML and schema handling shared by the config file and the data files in config/ (plans,
 * providers, shaping, reaction rules): every problem becomes a ConfigError line that names
 * where it is.
 */

/** Reads a YAML file; unreadable files and syntax errors (with line and column) name the file. */
export function readYamlFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  return parseYaml(text, path);
}

/** Parses YAML text; duplicate keys are errors. */
export function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  // prettyErrors appends a code frame after "at line L, column C:"; keep the first line, without the colon.
  if (doc.errors.length) throw new ConfigError(source, doc.errors.map((e) => e.message.split('\n')[0]!.replace(/:$/, '')));
  const value: unknown = doc.toJS();
  const reserved = reservedKeyPaths(value, []);
  if (reserved.length) throw new ConfigError(source, reserved.map((path) => `${formatPath(path)}: a key of this name cannot be used (it names a member of every object)`));
  return value;
}

/**
 * Where a mapping has the key `__proto__`: the schemas would drop it without a word (a tenant
 * so named would vanish with its settings), so it is refused with its path instead.
 */
function reservedKeyPaths(value: unknown, path: (string | number)[]): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => reservedKeyPaths(item, [...path, i]));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, item]) => (key === '__proto__' ? [[...path, key]] : reservedKeyPaths(item, [...path, key])));
}

/** Validates `value` against `schema`; each problem names its path, e.g. `ips[2].address: not an IP address`. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, source: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ConfigError(
    source,
    result.error.issues.flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`)
        : [`${formatPath(issue.path)}: ${issue.message}`],
    ),
  );
}
