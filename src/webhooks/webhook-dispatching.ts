import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../storage/store.ts';
import { WebhookDispatcher } from './dispatcher.ts';
import { createWebhookThread, type WebhookThread } from './dispatcher-thread.ts';
import { createHttpPoster } from '../engine/http-poster.ts';
import { createWebhookSender } from './webhook-sender.ts';
import type { WebhookMetrics } from './webhook-metrics.ts';

/**
 * The daemon's webhook dispatcher: on a thread of its own with its own connection to the store
 * the daemon opened from its configuration (dispatcher-thread.ts), or, when the daemon was handed
 * a store object (which no other thread can reach), on this thread with that store.
 */
export function createWebhookDispatching(deps: {
  config: Pick<Config, 'storage' | 'webhooks'>;
  /** The store handed to the daemon; undefined when it opened config.storage itself. */
  handedStore: Store | undefined;
  clock: Clock;
  logger: Logger;
  metrics: WebhookMetrics;
  owner: string;
}): WebhookThread {
  const { config, owner, logger, metrics } = deps;
  const { concurrency, timeout: timeoutMs, allowPrivateNetworks } = config.webhooks;
  if (!deps.handedStore) {
    const storage = config.storage.driver === 'sqlite' ? { driver: 'sqlite' as const, path: config.storage.path } : { driver: 'postgres' as const, url: config.storage.url! };
    return createWebhookThread({ settings: { storage, owner, concurrency, timeoutMs, allowPrivateNetworks, logLevel: logger.level }, metrics, logger });
  }
  const sender = createWebhookSender({ poster: createHttpPoster({ timeoutMs, allowPrivateNetworks }) });
  const dispatcher = new WebhookDispatcher({ store: deps.handedStore, sender, clock: deps.clock, logger, metrics, owner, concurrency, timeoutMs });
  return {
    start: () => dispatcher.start(),
    wake: () => dispatcher.wake(),
    async stop() {
      await dispatcher.stop();
      sender.close();
    },
  };
}
