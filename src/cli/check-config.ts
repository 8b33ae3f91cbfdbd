import { apiExposureWarning } from '../control-api/exposure.ts';
import type { CommandContext, CommandResult } from './main.ts';
import { ConfigError, describeConfigError, resolveCliConfig } from './load-cli-config.ts';

/**
 * `rookery check-config`: resolves the configuration exactly as `rookery run` does (key, TLS and
 * data files read and checked, nothing started or written), then exits. A risk the daemon would
 * warn of at start is printed on stderr too, without failing the check.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  try {
    const { resolved, path } = resolveCliConfig(values, context.env);
    const warning = apiExposureWarning(resolved.config.api);
    if (warning) process.stderr.write(`warning: ${warning.path}: ${warning.message}\n`);
    process.stdout.write(`configuration OK: ${path ?? '(built-in defaults)'}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
}
