import type { CommandContext, CommandResult } from './main.ts';
import { ConfigError, describeConfigError, loadCliConfig } from './load-cli-config.ts';

/** `rookery check-config`: validates the configuration `rookery run` would use, then exits. */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  try {
    const { path } = loadCliConfig(values, context.env);
    process.stdout.write(`configuration OK: ${path ?? '(built-in defaults)'}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
}
