import { systemClock } from '../clock.ts';
import { createDkimKeyStore } from '../sender-domains/key-store.ts';
import { createLogger } from '../observability/logger.ts';
import type { CommandContext, CommandResult } from './main.ts';
import { ConfigError, describeConfigError, loadCliConfig } from './load-cli-config.ts';

/** `rookery check-config`: validates the configuration `rookery run` would use, then exits. */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  try {
    const { config, path } = loadCliConfig(values, context.env);
    // The DKIM key files are read as the daemon would read them at start (nothing is started).
    createDkimKeyStore({ config: config.dkim, resolver: { resolveTxt: async () => [] }, clock: systemClock, logger: createLogger('silent'), source: path ?? 'config' });
    process.stdout.write(`configuration OK: ${path ?? '(built-in defaults)'}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
}
