import { ConfigError } from './config-error.ts';
import { deepFreeze } from './deep-freeze.ts';
import { listenerProblems } from './listeners.ts';
import { configSchema, isPostgresAddress, type Config } from './schema.ts';
import { unsubscribeProblems } from './unsubscribe-schema.ts';
import { parseWith, readYamlFile } from './yaml-config.ts';

/**
 * Validates a raw config object: the schema, and what can be checked on the values alone.
 * Secrets that the environment overrides are applied before validation, so a bad DATABASE_URL
 * is reported like a bad file value. What needs the data files of config/ or other files (key
 * files, password hashes) is checked by the resolution (src/resolved-config.ts).
 */
export function parseConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = process.env): Config {
  const input = (raw ?? {}) as Record<string, unknown>;
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(source, ['(root): expected a mapping']);
  const withEnv: Record<string, unknown> = { ...input };
  if (env.DATABASE_URL) withEnv.storage = { ...(input.storage as object | undefined), url: env.DATABASE_URL };
  if (env.REDIS_URL) withEnv.redis = { ...(input.redis as object | undefined), url: env.REDIS_URL };
  if (env.ROOKERY_VERP_SECRET) withEnv.returnPath = { ...(input.returnPath as object | undefined), secret: env.ROOKERY_VERP_SECRET };
  if (env.ROOKERY_UNSUBSCRIBE_SECRET) withEnv.unsubscribe = { ...(input.unsubscribe as object | undefined), secret: env.ROOKERY_UNSUBSCRIBE_SECRET };

  const config = parseWith(configSchema, withEnv, source);
  const problems: string[] = [];
  const { driver, url } = config.storage;
  if (driver === 'postgres' && !url) {
    problems.push('storage.url: required when storage.driver is postgres (or set DATABASE_URL)');
  } else if (driver === 'postgres' && url && !isPostgresAddress(url)) {
    // Only PostgreSQL uses the URL: an unrelated DATABASE_URL does not stop a SQLite node.
    problems.push('storage.url: not a postgres:// URL (postgres://user:password@host:5432/database)');
  }
  // Addresses are canonical by now, so "::7" and "0:0::7" are found to be the same one.
  const seen = new Map<string, number>();
  config.ips.forEach((ip, i) => {
    const earlier = seen.get(ip.address);
    if (earlier !== undefined) problems.push(`ips[${i}].address: duplicate address ${ip.address} (also ips[${earlier}].address)`);
    else seen.set(ip.address, i);
  });
  problems.push(...poolProblems(config), ...listenerProblems(config), ...unsubscribeProblems(config));
  if (problems.length) throw new ConfigError(source, problems);
  return deepFreeze(config);
}

/** Reads and validates a YAML config file. YAML syntax errors carry their line and column. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readYamlFile(path), path, env);
}

/**
 * Pools that mail could be assigned to but no IP belongs to. With no IPs at all everything sends
 * from the OS default address, so any pool name is fine.
 */
function poolProblems(config: Config): string[] {
  if (config.ips.length === 0) return [];
  const pools = new Set(config.ips.map((ip) => ip.pool));
  const unknown = (name: string) => `no IP in ips belongs to pool ${JSON.stringify(name)}`;
  const problems: string[] = [];
  for (const name of Object.keys(config.pools)) if (!pools.has(name)) problems.push(`pools.${name}: ${unknown(name)}`);
  const clients = [...config.smtp.users.map((user, i) => ({ user, path: `smtp.users[${i}]` })), ...config.api.tokens.map((user, i) => ({ user, path: `api.tokens[${i}]` }))];
  for (const { user, path } of clients) {
    if (user.pool && !pools.has(user.pool)) problems.push(`${path}.pool: ${unknown(user.pool)}`);
    user.pools?.forEach((name, j) => {
      if (!pools.has(name)) problems.push(`${path}.pools[${j}]: ${unknown(name)}`);
    });
  }
  const reports = config.delivery.tlsReports;
  // "default" missing is said once, below.
  if (reports.enabled && reports.pool !== 'default' && !pools.has(reports.pool)) problems.push(`delivery.tlsReports.pool: ${unknown(reports.pool)}`);
  // Mail with no user pool and no sender match goes to "default".
  if (!pools.has('default')) problems.push(`ips: no IP belongs to pool "default", which mail without a pool of its own uses`);
  return problems;
}
