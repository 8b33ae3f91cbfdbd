import type { FastifyRequest } from 'fastify';
import type { BufferBudget } from '../../engine/buffer-budget.ts';
import { RookeryError } from '../../errors.ts';

/** How soon a client refused for memory is told to come back: requests in progress finish in seconds. */
const RETRY_AFTER_MS = 5_000;

const HELD = Symbol('bytes held for this send request');

/**
 * The memory of the send routes, counted against the budget of smtp.maxBufferedBytes that SMTP
 * counts its messages against too (one budget for both doors): each request holds, from before its body is read until its answer is
 * sent, its body and what composing can make of it (quoted-printable writes a byte as up to
 * three), at most the body and smtp.maxMessageBytes for a single message, which
 * compose-message.ts stops composing past. A request that would pass the budget is refused
 * unread with 503 BUFFERS_FULL and Retry-After, so many large requests at once cannot push the
 * daemon past the memory the operator gave it.
 */
export function sendBudget(options: { buffers: BufferBudget; maxMessageBytes: number; bodyLimit: number }) {
  const budget = options.buffers;
  const heldBy = (request: FastifyRequest) => request as FastifyRequest & { [HELD]?: number };

  /** The bytes a request may come to hold: `single` for POST /v1/messages, a batch otherwise. */
  function charge(request: FastifyRequest, single: boolean): number {
    const announced = Number(request.headers['content-length']);
    // A chunked body announces nothing; it may still come to the body limit.
    const body = Number.isFinite(announced) && announced >= 0 ? Math.min(announced, options.bodyLimit) : options.bodyLimit;
    return body + Math.min(3 * body, single ? options.maxMessageBytes : Number.POSITIVE_INFINITY);
  }

  return {
    /** A preParsing hook taking the request's share, or refusing it. */
    hold(single: boolean) {
      return async (request: FastifyRequest): Promise<void> => {
        const bytes = charge(request, single);
        if (!budget.take(bytes)) {
          throw new RookeryError('BUFFERS_FULL', 'Too many large send requests in progress; send again shortly', { retryAfterMs: RETRY_AFTER_MS });
        }
        heldBy(request)[HELD] = bytes;
      };
    },
    /** An onResponse and onRequestAbort hook giving the share back, once. */
    async release(request: FastifyRequest): Promise<void> {
      const held = heldBy(request)[HELD];
      if (held === undefined) return;
      heldBy(request)[HELD] = undefined;
      budget.release(held);
    },
  };
}
