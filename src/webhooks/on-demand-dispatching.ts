import type { Logger } from '../observability/logger.ts';
import type { WebhookThread } from './dispatcher-thread.ts';

/** How often a dispatcher not yet started looks for an endpoint (one another node registered). */
const LOOK_EVERY_MS = 30_000;

/**
 * The webhook dispatcher, started once there is an endpoint to send to: its thread holds about
 * 30 MB, which a daemon that nobody registered an endpoint with need not hold. It starts at once
 * when the store has an endpoint at start; otherwise at the first wake (the API registered,
 * enabled or replayed one), or when a look every 30 seconds finds one (registered through another
 * node sharing the database; events are written only for endpoints, so none waits longer). Once
 * started it stays. A start that fails at startup fails the daemon's start, as before; a later
 * one is logged and tried again at the next look or wake. A stop, even one during the start, ends
 * it all.
 */
export function dispatchOnDemand(deps: {
  dispatching: WebhookThread;
  /** Whether any endpoint is registered, enabled or not. */
  hasEndpoint: () => Promise<boolean>;
  logger: Logger;
  lookEveryMs?: number;
}): WebhookThread {
  const { dispatching, hasEndpoint } = deps;
  const log = deps.logger.child({ component: 'webhooks' });
  let started: Promise<void> | null = null;
  let stopped = false;
  let look: NodeJS.Timeout | undefined;

  const startNow = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    started ??= dispatching.start().then(
      () => clearInterval(look),
      (err: unknown) => {
        started = null;
        throw err;
      },
    );
    return started;
  };
  const startLater = () => {
    if (stopped || started) return;
    startNow().catch((err: unknown) => log.error({ event: 'webhooks.start.failed', err }, 'the webhook dispatcher could not start; trying again later'));
  };

  return {
    async start() {
      // A store that cannot answer now is asked again at the next look.
      const found = await hasEndpoint().catch((err: unknown) => {
        log.warn({ event: 'webhooks.endpoints.unknown', err }, 'could not tell whether a webhook endpoint exists; looking again later');
        return false;
      });
      if (stopped) return;
      // Started already when a wake came first (an endpoint registered meanwhile).
      if (found || started) return startNow();
      look = setInterval(() => {
        hasEndpoint().then(
          (found) => found && startLater(),
          () => {},
        );
      }, deps.lookEveryMs ?? LOOK_EVERY_MS);
      look.unref();
    },
    wake() {
      // A dispatcher that is starting looks at its outbox once it runs.
      if (started) void started.then(() => dispatching.wake(), () => {});
      else startLater();
    },
    async stop() {
      stopped = true;
      clearInterval(look);
      if (started) await started.then(() => dispatching.stop(), () => {});
    },
  };
}
