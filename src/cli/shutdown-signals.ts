import type { Logger } from '../observability/logger.ts';

export interface Stoppable {
  stop(reason?: string): Promise<void>;
}

export interface ShutdownSignalOptions {
  /** The daemon, possibly still starting: a signal during start-up stops it once it is up. */
  daemon: Promise<Stoppable>;
  logger: Logger;
  exit: (code: number) => void;
  /** Where signals arrive; the process itself outside tests. */
  emitter?: NodeJS.EventEmitter;
  signals?: readonly NodeJS.Signals[];
}

/**
 * Graceful stop on the first SIGTERM / SIGINT: exit 0 once the daemon has stopped, 1 if stopping
 * failed. A second signal means the operator will not wait: exit 1 at once. Returns a function
 * that removes the handlers.
 */
export function handleShutdownSignals(options: ShutdownSignalOptions): () => void {
  const { daemon, logger, exit, emitter = process, signals = ['SIGTERM', 'SIGINT'] } = options;
  let received: NodeJS.Signals | null = null;

  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      logger.warn({ event: 'shutdown.forced', signal, first: received }, `second ${signal}: exiting without waiting`);
      exit(1);
      return;
    }
    received = signal;
    logger.info({ event: 'shutdown.signal', signal }, `${signal} received, stopping (send it again to exit at once)`);
    daemon
      .then((running) => running.stop(`signal ${signal}`))
      .then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ event: 'shutdown.failed', err }, 'graceful stop failed');
          exit(1);
        },
      );
  };

  for (const signal of signals) emitter.on(signal, onSignal);
  return () => {
    for (const signal of signals) emitter.off(signal, onSignal);
  };
}
