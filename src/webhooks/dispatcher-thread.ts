import { Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.ts';
import type { WebhookMetrics, WebhookPost } from './webhook-metrics.ts';

/**
 * The webhook dispatcher on a thread of its own (dispatcher-worker.ts), with its own connection
 * to the store: claiming, rendering, signing, POSTing and recording every event there, so none
 * of that work is done on the event loop that takes and delivers mail. The daemon's thread only
 * writes the events, in the transactions of their changes, and wakes the dispatcher when the API
 * makes deliveries due. A thread that dies is started again (its claims are given back when its
 * dispatcher starts, under the same owner), after a pause that doubles up to a minute.
 */

export interface WebhookThreadSettings {
  /** The store the daemon opened from its configuration (this thread opens its own connection to it). */
  storage: { driver: 'sqlite'; path: string } | { driver: 'postgres'; url: string };
  owner: string;
  concurrency: number;
  timeoutMs: number;
  allowPrivateNetworks: boolean;
  logLevel: string;
}

/** What the thread posts to the daemon. */
export type ThreadMessage =
  | { kind: 'started' }
  | { kind: 'start-failed'; error: string }
  | { kind: 'posts'; posts: WebhookPost[] }
  | { kind: 'stopped' };

export interface WebhookThread {
  start(): Promise<void>;
  /** Asks for an outbox check now (a replay, an endpoint enabled). */
  wake(): void;
  /** Ends the dispatcher: deliveries not sent are given back, those in flight recorded. */
  stop(): Promise<void>;
}

const WORKER_FILE = new URL('./dispatcher-worker.ts', import.meta.url);
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 60_000;
/** Past the POSTs' own timeout, how long a stopping thread may take before it is ended. */
const STOP_GRACE_MS = 10_000;

export function createWebhookThread(options: { settings: WebhookThreadSettings; metrics: WebhookMetrics; logger: Logger; workerFile?: URL }): WebhookThread {
  const log = options.logger.child({ component: 'webhooks' });
  let worker: Worker | null = null;
  let running = false;
  let restartTimer: NodeJS.Timeout | null = null;
  let restartDelay = RESTART_MIN_MS;

  /** Starts a thread; resolves once its dispatcher runs, rejects when it could not start. */
  const spawn = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const current = new Worker(options.workerFile ?? WORKER_FILE, { workerData: options.settings });
      worker = current;
      let started = false;
      current.on('message', (message: ThreadMessage) => {
        if (message.kind === 'posts') {
          for (const post of message.posts) options.metrics.posted(post);
        } else if (message.kind === 'started') {
          started = true;
          restartDelay = RESTART_MIN_MS;
          resolve();
        } else if (message.kind === 'start-failed') {
          reject(new Error(`webhook dispatcher thread could not start: ${message.error}`));
          void current.terminate();
        }
      });
      current.on('error', (err) => {
        if (!started) reject(err);
        else log.error({ event: 'webhooks.thread.failed', err }, 'the webhook dispatcher thread failed');
      });
      current.on('exit', (code) => {
        if (worker === current) worker = null;
        if (!started) return reject(new Error(`webhook dispatcher thread exited with code ${code} before it started`));
        if (running) restartLater(`exited with code ${code}`);
      });
    });

  const restartLater = (why: string) => {
    const delay = restartDelay;
    restartDelay = Math.min(RESTART_MAX_MS, restartDelay * 2);
    log.error({ event: 'webhooks.thread.restart', why, inMs: delay }, 'the webhook dispatcher thread stopped; starting it again (its claimed deliveries are given back)');
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (!running) return;
      spawn().catch((err: unknown) => {
        if (running) restartLater((err as Error).message);
      });
    }, delay);
    restartTimer.unref();
  };

  return {
    async start() {
      if (running) return;
      running = true;
      await spawn().catch((err: unknown) => {
        running = false;
        throw err;
      });
    },

    wake() {
      worker?.postMessage('wake');
    },

    async stop() {
      running = false;
      if (restartTimer) clearTimeout(restartTimer);
      restartTimer = null;
      const current = worker;
      if (!current) return;
      await new Promise<void>((resolve) => {
        const limit = setTimeout(() => {
          log.error({ event: 'webhooks.thread.stop.timeout' }, 'the webhook dispatcher thread did not stop in time; ended (its claimed deliveries are sent again after their leases)');
          void current.terminate();
        }, 2 * options.settings.timeoutMs + STOP_GRACE_MS);
        current.on('message', (message: ThreadMessage) => {
          if (message.kind === 'stopped') void current.terminate();
        });
        current.once('exit', () => {
          clearTimeout(limit);
          resolve();
        });
        current.postMessage('stop');
      });
    },
  };
}
