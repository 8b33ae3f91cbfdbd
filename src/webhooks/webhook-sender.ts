import type { KeyObject } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import type { StoredWebhookEvent } from '../storage/webhook-outbox.ts';
import type { PostOutcome, HttpPoster } from '../engine/http-poster.ts';
import { webhookBatchBody, webhookBatchId, webhookBody } from './payload.ts';
import { signatureHeaders, signingKey } from './signature.ts';

/** One POST: where, with which secret, the deliveries it carries. */
export interface WebhookRequest {
  url: string;
  secret: string;
  /** Each by its delivery id (`msg_...`, the webhook-id of a delivery posted alone); one unless `batched`. */
  deliveries: ReadonlyArray<{ id: string; event: StoredWebhookEvent }>;
  /** The endpoint takes several events per request: the body is a JSON array, even of one. */
  batched: boolean;
}

/** Renders, signs and POSTs deliveries (here, or on the webhook thread: sender-thread.ts). */
export interface WebhookSender {
  send(request: WebhookRequest): Promise<PostOutcome>;
  /** Closes the kept-alive connections (and the thread). */
  close(): void;
}

/** Past this many secrets (rotated, or of deleted endpoints) the cache of keys starts over. */
const MAX_KEYS = 10_000;

/**
 * The body of one delivery or of a batch (payload.ts) and the Standard Webhooks headers
 * (signature.ts) of an attempt, POSTed. The timestamp is `clock`'s: the system's, which receivers hold against their own (five minutes
 * either way). Each secret's HMAC key is made once: decoding it each time cost more than the HMAC.
 */
export function createWebhookSender(options: { poster: HttpPoster; clock?: Clock }): WebhookSender {
  const clock = options.clock ?? systemClock;
  const keys = new Map<string, KeyObject>();
  return {
    async send({ url, secret, deliveries, batched }) {
      try {
        let key = keys.get(secret);
        if (!key) {
          if (keys.size >= MAX_KEYS) keys.clear();
          keys.set(secret, (key = signingKey(secret)));
        }
        const body = batched ? webhookBatchBody(deliveries) : webhookBody(deliveries[0]!.event);
        const id = batched ? webhookBatchId(deliveries.map((d) => d.id)) : deliveries[0]!.id;
        return await options.poster.post(url, { ...signatureHeaders(key, id, Math.floor(clock.now() / 1000), body) }, body);
      } catch (err) {
        return { status: null, error: (err as Error).message, ms: 0 };
      }
    },
    close: () => options.poster.close(),
  };
}
