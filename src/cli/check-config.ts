import type { CommandContext, CommandResult } from './main.ts';
import { ConfigError, describeConfigError, resolveCliConfig } from './load-cli-config.ts';

/**
 * `rookery check-config`: resolves the configuration exactly as `rookery run` does (key, TLS and
 * data files read and checked, nothing started or written), then exits.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  try {
    const { path } = resolveCliConfig(values, context.env);
    process.stdout.write(`configuration OK: ${path ?? '(built-in defaults)'}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
}
