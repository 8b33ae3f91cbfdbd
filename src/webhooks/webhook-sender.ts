import type { KeyObject } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import type { PostOutcome, HttpPoster } from '../engine/http-poster.ts';
import { signatureHeaders, signingKey } from './signature.ts';

/** One POST: where, with which secret, as which webhook-id, with what body (payload.ts). */
export interface WebhookRequest {
  url: string;
  secret: string;
  /** The delivery's id, or a batch's (webhookBatchId). */
  id: string;
  body: string;
}

/** Signs and POSTs requests. */
export interface WebhookSender {
  send(request: WebhookRequest): Promise<PostOutcome>;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** Past this many secrets (rotated, or of deleted endpoints) the cache of keys starts over. */
const MAX_KEYS = 10_000;

/**
 * A request with the Standard Webhooks headers (signature.ts) of an attempt, POSTed. The
 * timestamp is `clock`'s: the system's, which receivers hold against their own (five minutes
 * either way). Each secret's HMAC key is made once: decoding it each time cost more than the HMAC.
 */
export function createWebhookSender(options: { poster: HttpPoster; clock?: Clock }): WebhookSender {
  const clock = options.clock ?? systemClock;
  const keys = new Map<string, KeyObject>();
  return {
    async send({ url, secret, id, body }) {
      try {
        let key = keys.get(secret);
        if (!key) {
          if (keys.size >= MAX_KEYS) keys.clear();
          keys.set(secret, (key = signingKey(secret)));
        }
        return await options.poster.post(url, { ...signatureHeaders(key, id, Math.floor(clock.now() / 1000), body) }, body);
      } catch (err) {
        return { status: null, error: (err as Error).message, ms: 0 };
      }
    },
    close: () => options.poster.close(),
  };
}
