import { ConfigError } from '../config/config-error.ts';
import { loadConfigFile, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { resolveConfig, resolveConfigFile, type ResolvedConfig } from '../resolved-config.ts';

/** The name of the configuration when no file is given. */
const DEFAULTS = 'built-in defaults';

/** --config, else $ROOKERY_CONFIG; null when neither is given (built-in defaults, no file at all). */
function configPathOf(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string | null {
  return (values.config as string | undefined) ?? (env.ROOKERY_CONFIG || null);
}

/**
 * The configuration `rookery run` and `rookery check-config` use, resolved: every file it refers
 * to read and checked. Environment overrides apply in every case. Throws ConfigError listing
 * every problem.
 */
export function resolveCliConfig(values: Record<string, unknown>, env: NodeJS.ProcessEnv): { resolved: ResolvedConfig; path: string | null } {
  const path = configPathOf(values, env);
  const resolved = path === null ? resolveConfig({}, { source: DEFAULTS, env }) : resolveConfigFile(path, { env });
  return { resolved, path };
}

/**
 * The validated configuration alone, for commands that only look things up in it (`domains
 * check`, `dkim generate`): the files it names may be what the command is about to check or
 * create. Throws ConfigError listing every problem.
 */
export function loadCliConfig(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Config {
  const path = configPathOf(values, env);
  return path === null ? parseConfig({}, DEFAULTS, env) : loadConfigFile(path, env);
}

/** The text printed for a configuration that cannot be used: a header, then one problem a line. */
export function describeConfigError(err: ConfigError): string {
  return `invalid configuration: ${err.source}\n${err.problems.map((problem) => `  ${problem}\n`).join('')}`;
}

export { ConfigError };
