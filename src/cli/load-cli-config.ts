import { ConfigError } from '../config/config-error.ts';
import { loadConfigFile, parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

export interface LoadedConfig {
  config: Config;
  /** The file read, or null when built-in defaults are in use. */
  path: string | null;
}

/**
 * Resolves the configuration the way every command does: --config, else $ROOKERY_CONFIG, else
 * built-in defaults (no file at all). Environment overrides apply in every case.
 * Throws ConfigError listing every problem.
 */
export function loadCliConfig(values: Record<string, unknown>, env: NodeJS.ProcessEnv): LoadedConfig {
  const path = (values.config as string | undefined) ?? (env.ROOKERY_CONFIG || undefined);
  if (path === undefined) return { config: parseConfig({}, 'built-in defaults', env), path: null };
  return { config: loadConfigFile(path, env), path };
}

/** The text printed for a configuration that cannot be used: a header, then one problem a line. */
export function describeConfigError(err: ConfigError): string {
  return `invalid configuration: ${err.source}\n${err.problems.map((problem) => `  ${problem}\n`).join('')}`;
}

export { ConfigError };
