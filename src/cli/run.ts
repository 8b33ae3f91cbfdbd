import { OPERATOR_ERRORS, type OperatorErrorCode } from '../errors.ts';
import { startDaemon } from '../main.ts';
import { createLogger } from '../observability/logger.ts';
import type { CommandContext, CommandResult } from './main.ts';
import { ConfigError, describeConfigError, resolveCliConfig } from './load-cli-config.ts';
import { handleShutdownSignals } from './shutdown-signals.ts';

/**
 * `rookery run`: resolves the configuration as `rookery check-config` does (refusing to start on
 * any problem), starts the daemon, hands SIGTERM / SIGINT to its graceful stop and SIGHUP to its
 * reload. Logs go to stdout as JSON lines.
 */
export async function execute(values: Record<string, unknown>, context: CommandContext): Promise<CommandResult> {
  let loaded;
  try {
    loaded = resolveCliConfig(values, context.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(describeConfigError(err));
    return 1;
  }
  const { resolved, path } = loaded;
  const { config } = resolved;
  const logger = createLogger(config.log.level);
  const log = logger.child({ component: 'cli' });
  const exit = (code: number) => process.exit(code);

  // The queue is durable, so after a bug nothing is lost by exiting: the service manager
  // restarts the daemon, which returns this node's leased rows to the queue.
  process.on('uncaughtException', (err) => {
    log.fatal({ event: 'process.exception.uncaught', err }, 'uncaught exception, exiting');
    exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    log.fatal({ event: 'process.rejection.unhandled', err: reason }, 'unhandled promise rejection, exiting');
    exit(1);
  });

  log.info({ event: 'config.loaded', path: path ?? '(built-in defaults)' }, 'configuration loaded');
  // Handlers go in before start-up so a signal during start-up is not the default instant kill.
  // A reload reads the same file (or the defaults) through the same resolution as this start.
  const daemon = startDaemon({ resolved, logger, reread: () => resolveCliConfig(values, context.env).resolved });
  handleShutdownSignals({ daemon, logger: log, exit });
  // SIGHUP reloads the configuration (systemd: ExecReload), once the daemon is up; the daemon
  // logs one line saying what changed, or every problem found while the running one stays.
  process.on('SIGHUP', () => {
    daemon.then((d) => d.reload('signal')).catch((err: unknown) => log.error({ event: 'reload.failed', err }, 'reload failed'));
  });
  try {
    await daemon;
  } catch (err) {
    const code: OperatorErrorCode = 'START_FAILED';
    log.fatal({ event: 'daemon.start.failed', code, err }, OPERATOR_ERRORS[code].message);
    // Exit outright: a half-started component may still hold a timer or socket open.
    exit(1);
  }
  return undefined;
}
