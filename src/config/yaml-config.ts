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
  return doc.toJS();
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
