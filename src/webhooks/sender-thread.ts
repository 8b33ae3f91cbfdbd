import { Worker } from 'node:worker_threads';
import type { Logger } from '../observability/logger.ts';
import type { PostOutcome, WebhookPosterOptions } from './http-poster.ts';
import type { DeliveryRequest, WebhookSender } from './webhook-sender.ts';

/**
 * The webhook POSTs on a thread of their own (sender-worker.ts renders, signs and POSTs there),
 * so the work of every event (its body, signature, request, answer and connection) is not done
 * on the event loop that takes and delivers mail. Requests cross in batches each way, as JSON
 * text (one string copies faster than the structured clone of many objects). A thread that dies
 * answers its POSTs in flight as failed (they are retried, as any failure: at least once) and is
 * replaced at the next batch.
 */

export interface PostRequest extends DeliveryRequest {
  n: number;
}

export interface PostReply {
  n: number;
  outcome: PostOutcome;
}

/** What the thread posts once its code is loaded. */
export const POSTER_READY = 'ready';

const WORKER_FILE = new URL('./sender-worker.ts', import.meta.url);
/**
 * Requests gather for this long (or until CROSSING_BATCH of them) before they cross, and so do
 * the answers: each message wakes the other thread, which on a busy machine costs more than the
 * requests it holds.
 */
export const CROSSING_DELAY_MS = 1;
export const CROSSING_BATCH = 100;
/** Past the POST's own timeout, how long a thread may leave one unanswered before it is ended. */
const GRACE_MS = 5_000;

interface Thread {
  worker: Worker;
  /** The POSTs sent to this thread and not answered yet, by number. */
  pending: Map<number, (outcome: PostOutcome) => void>;
  ready: Promise<void>;
  /** Ends the thread as failed: its POSTs in flight fail, the next batch gets a new thread. */
  lose: (why: string) => void;
}

/** A POST waiting to cross, and how to answer it. */
interface Queued {
  request: PostRequest;
  settle: (outcome: PostOutcome) => void;
  /** The thread it was sent to, once sent. */
  sentTo?: Thread;
}

export function createThreadedWebhookSender(options: Omit<WebhookPosterOptions, 'lookup'> & { logger: Logger }): WebhookSender & { start(): Promise<void> } {
  const log = options.logger.child({ component: 'webhooks' });
  let thread: Thread | null = null;
  let outbox: Queued[] = [];
  let sending = false;
  let next = 1;
  let closed = false;

  const spawn = (): Thread => {
    const worker = new Worker(WORKER_FILE, { workerData: { timeoutMs: options.timeoutMs, allowPrivateNetworks: options.allowPrivateNetworks, maxResponseBytes: options.maxResponseBytes } });
    worker.unref();
    let loaded!: () => void;
    let failed!: (err: Error) => void;
    const current: Thread = { worker, pending: new Map(), ready: new Promise((resolve, reject) => ((loaded = resolve), (failed = reject))), lose: (why) => lost(why) };
    current.ready.catch(() => {});
    worker.on('message', (message: string) => {
      if (message === POSTER_READY) return loaded();
      for (const { n, outcome } of JSON.parse(message) as PostReply[]) {
        current.pending.get(n)?.(outcome);
        current.pending.delete(n);
      }
      if (current.pending.size === 0) worker.unref();
    });
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      failed(new Error(`webhook thread could not start: ${why}`));
      if (thread === current) thread = null;
      if (!closed) log.error({ event: 'webhooks.thread.failed', inFlight: current.pending.size, error: why }, 'the webhook thread stopped; its POSTs in flight are retried');
      for (const settle of current.pending.values()) settle({ status: null, error: `webhook thread stopped: ${why}`, ms: 0 });
      current.pending.clear();
      void worker.terminate();
    };
    worker.on('error', (err) => lost(err.message));
    worker.on('messageerror', (err) => lost(`a message could not be read: ${err.message}`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    return current;
  };

  const flush = () => {
    sending = false;
    const batch = outbox;
    outbox = [];
    if (batch.length === 0) return;
    thread ??= spawn();
    // Answered by the thread they are sent to (or failed with it).
    for (const queued of batch) {
      thread.pending.set(queued.request.n, queued.settle);
      queued.sentTo = thread;
    }
    // Referenced while POSTs are in flight, so a stop waits for their answers.
    thread.worker.ref();
    thread.worker.postMessage(JSON.stringify(batch.map((q) => q.request)));
  };

  return {
    async start() {
      thread ??= spawn();
      await thread.ready;
    },

    send(request) {
      if (closed) return Promise.resolve({ status: null, error: 'the webhook thread is closed', ms: 0 });
      const n = next++;
      return new Promise<PostOutcome>((resolve) => {
        let done = false;
        const settle = (outcome: PostOutcome) => {
          if (done) return;
          done = true;
          clearTimeout(stuck);
          resolve(outcome);
        };
        const queued: Queued = { request: { ...request, n }, settle };
        // A POST ends within two timeouts on the thread (a reset on a reused socket is tried once
        // more on a fresh one, http-poster.ts); a thread that does not answer by then is stuck.
        const limit = 2 * options.timeoutMs + GRACE_MS;
        const stuck = setTimeout(() => {
          const why = `the webhook thread left a POST unanswered for ${limit} ms`;
          if (queued.sentTo) queued.sentTo.lose(why);
          settle({ status: null, error: why, ms: 0 });
        }, limit);
        stuck.unref();
        outbox.push(queued);
        if (outbox.length >= CROSSING_BATCH) flush();
        else if (!sending) {
          sending = true;
          setTimeout(flush, CROSSING_DELAY_MS);
        }
      });
    },

    close() {
      closed = true;
      const current = thread;
      thread = null;
      if (current) void current.worker.terminate();
    },
  };
}
