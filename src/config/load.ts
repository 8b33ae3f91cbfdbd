import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { configSchema, type Config } from './schema.ts';

/** Raised for any problem with the configuration; `problems` each name the exact path. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid configuration\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Formats a path as it would be written in YAML-ish dotted form: `ips[2].address`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

/**
 * Validates a raw config object. Secrets that the environment overrides are applied before
 * validation, so a bad DATABASE_URL is reported like a bad file value.
 */
export function parseConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  const input = (raw ?? {}) as Record<string, unknown>;
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(source, ['(root): expected a mapping']);
  const withEnv: Record<string, unknown> = { ...input };
  if (env.DATABASE_URL) withEnv.storage = { ...(input.storage as object | undefined), url: env.DATABASE_URL };
  if (env.REDIS_URL) withEnv.redis = { ...(input.redis as object | undefined), url: env.REDIS_URL };

  const result = configSchema.safeParse(withEnv);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((issue) => {
        if (issue.code === 'unrecognized_keys') {
          return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`).join('\n  ');
        }
        return `${formatPath(issue.path)}: ${issue.message}`;
      }),
    );
  }
  const config = result.data;
  const problems: string[] = [];
  if (config.storage.driver === 'postgres' && !config.storage.url) {
    problems.push('storage.url: required when storage.driver is postgres (or set DATABASE_URL)');
  }
  const seen = new Set<string>();
  config.ips.forEach((ip, i) => {
    if (seen.has(ip.address)) problems.push(`ips[${i}].address: duplicate address ${ip.address}`);
    seen.add(ip.address);
  });
  if (problems.length) throw new ConfigError(source, problems);
  return deepFreeze(config);
}

/** Reads and validates a YAML config file. YAML syntax errors carry their line and column. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  // prettyErrors appends a code frame after "at line L, column C:"; keep the first line, without the colon.
  if (doc.errors.length) throw new ConfigError(path, doc.errors.map((e) => e.message.split('\n')[0]!.replace(/:$/, '')));
  return parseConfig(doc.toJS(), path, env);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
