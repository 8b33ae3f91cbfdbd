import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../clock.ts';
import { createLogger } from '../observability/logger.ts';
import { createSqliteStore } from '../storage/sqlite/sqlite-store.ts';
import type { Store } from '../storage/store.ts';
import { WebhookDispatcher } from './dispatcher.ts';
import type { ThreadMessage, WebhookThreadSettings } from './dispatcher-thread.ts';
import { createHttpPoster } from '../engine/http-poster.ts';
import { createWebhookSender } from './webhook-sender.ts';
import type { WebhookPost } from './webhook-metrics.ts';

/**
 * The webhook dispatcher's thread (dispatcher-thread.ts): its own connection to the queue's
 * store, its own kept-alive HTTP connections, the dispatcher of dispatcher.ts. What it counts of
 * each POST crosses to the daemon's metrics every TALLY_MS.
 */
const TALLY_MS = 250;
/** Connections of this thread to PostgreSQL: a claim, a batch of results and a renewal at once. */
const POSTGRES_CONNECTIONS = 3;

const settings = workerData as WebhookThreadSettings;
const port = parentPort!;
const send = (message: ThreadMessage) => port.postMessage(message);
const logger = createLogger(settings.logLevel);
const clock = systemClock;

async function openStore(): Promise<Store> {
  const { storage } = settings;
  // The daemon's own store checkpoints the WAL this connection writes to as well.
  if (storage.driver === 'sqlite') return createSqliteStore({ path: storage.path, clock, logger, checkpoints: false });
  // pg is loaded only for a PostgreSQL store: a thread on SQLite does without its memory.
  const { createPostgresStore } = await import('../storage/postgres/postgres-store.ts');
  return createPostgresStore({ url: storage.url, clock, logger, poolSize: POSTGRES_CONNECTIONS });
}

let tally: WebhookPost[] = [];
const flushTally = () => {
  if (tally.length === 0) return;
  send({ kind: 'posts', posts: tally });
  tally = [];
};

try {
  const store = await openStore();
  // The daemon applied every migration before it started this thread: this prepares statements.
  await store.migrate();
  const sender = createWebhookSender({ poster: createHttpPoster({ timeoutMs: settings.timeoutMs, allowPrivateNetworks: settings.allowPrivateNetworks }) });
  const dispatcher = new WebhookDispatcher({
    store,
    sender,
    clock,
    logger,
    metrics: { posted: (post) => tally.push(post) },
    owner: settings.owner,
    concurrency: settings.concurrency,
    timeoutMs: settings.timeoutMs,
  });
  await dispatcher.start();
  const tallyTimer = setInterval(flushTally, TALLY_MS);
  port.on('message', (message: 'wake' | 'stop') => {
    if (message === 'wake') return dispatcher.wake();
    void (async () => {
      clearInterval(tallyTimer);
      try {
        await dispatcher.stop();
        sender.close();
        flushTally();
        await store.close();
      } catch (err) {
        logger.error({ event: 'webhooks.thread.stop.failed', err }, 'the webhook dispatcher thread could not stop cleanly');
      } finally {
        send({ kind: 'stopped' });
      }
    })();
  });
  send({ kind: 'started' });
} catch (err) {
  send({ kind: 'start-failed', error: (err as Error).message });
}
