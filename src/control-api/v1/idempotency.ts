import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdempotencyRecord } from '../../storage/store.ts';
import { pathOf, sendProblem } from '../error-handler.ts';
import { problem } from '../problem.ts';

/**
 * Idempotency-Key on the send routes: what makes an HTTP client's retry after a timeout safe.
 * A key belongs to the token that sent it (its scope) and holds the first answer given under it
 * for 24 hours (src/engine/queue.ts, IDEMPOTENCY_WINDOW_MS). The request is compared by a hash of
 * its canonical form, so a retry that spells the same JSON with other spacing or key order is
 * the same request, and one that asks for anything else under the key is refused (422).
 *
 * Only a request that was answered 202 spends its key: its answer is stored in the transaction
 * that stores its messages, so a key never points at mail that was not stored, nor mail at a
 * key that was not. A refused request (4xx, or 503 before the commit) stores nothing, and the
 * client may send it again, mended, under the same key.
 */

export interface IdempotencyKey {
  scope: string;
  key: string;
  requestHash: string;
}

/** The request's key with its scope and hash, or null without an Idempotency-Key header. */
export function idempotencyKeyOf(request: FastifyRequest, parts: { query: unknown; body: unknown }): IdempotencyKey | null {
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string') return null;
  return { scope: request.principal!.name, key, requestHash: requestHash(`${request.method} ${request.routeOptions.url}`, request.headers['content-type'], parts) };
}

/**
 * sha256 over the route, the media type, the canonical query and the body: a Buffer (a raw
 * message) byte for byte, JSON in canonical form (object keys sorted, no spacing).
 */
export function requestHash(route: string, contentType: string | undefined, parts: { query: unknown; body: unknown }): string {
  const hash = createHash('sha256');
  hash.update(`${route}\n${(contentType ?? '').split(';')[0]!.trim().toLowerCase()}\n${canonicalJson(parts.query)}\n`);
  if (Buffer.isBuffer(parts.body)) hash.update(parts.body);
  else hash.update(canonicalJson(parts.body));
  return hash.digest('hex');
}

/**
 * JSON with every object's keys in sorted order. Written with a stack of its own, not by
 * recursion: the body is hashed before its items are checked, and JSON.parse takes nesting far
 * deeper than the call stack (a batch item of 60,000 brackets), which must get the answer it
 * gets without a key, not a 500.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // Popped from the end: text to write as it is, or a value to write.
  const todo: Array<{ text: string } | { value: unknown }> = [{ value }];
  while (todo.length > 0) {
    const step = todo.pop()!;
    if ('text' in step) {
      out.push(step.text);
      continue;
    }
    const v = step.value;
    if (v === null || typeof v !== 'object') {
      out.push(JSON.stringify(v) ?? 'null');
      continue;
    }
    // Pushed last part first, one at a time: a spread of a 70,000-item array would pass the argument limit.
    if (Array.isArray(v)) {
      todo.push({ text: ']' });
      for (let i = v.length - 1; i >= 0; i--) todo.push({ value: v[i] }, ...(i ? [{ text: ',' }] : []));
      todo.push({ text: '[' });
      continue;
    }
    const record = v as Record<string, unknown>;
    const keys = Object.keys(record).sort().filter((k) => record[k] !== undefined);
    todo.push({ text: '}' });
    for (let i = keys.length - 1; i >= 0; i--) todo.push({ value: record[keys[i]!] }, { text: `${i ? ',' : ''}${JSON.stringify(keys[i])}:` });
    todo.push({ text: '{' });
  }
  return out.join('');
}

/**
 * Answers a request whose key already holds a record: the first answer again, marked as a
 * replay, when it is the same request; 422 when it is another. `locationOf` gives the Location
 * the first answer had, from its stored body (the record keeps the body, not the headers).
 */
export function answerFromRecord(
  request: FastifyRequest,
  reply: FastifyReply,
  key: IdempotencyKey,
  record: IdempotencyRecord,
  locationOf?: (response: string) => string,
): FastifyReply {
  if (record.requestHash !== key.requestHash) {
    return sendProblem(
      reply,
      problem('IDEMPOTENCY_KEY_REUSED', `Idempotency-Key ${JSON.stringify(key.key)} was used with another request in the last 24 hours; use a new key for a new request`, {
        instance: pathOf(request),
      }),
    );
  }
  if (locationOf && record.status === 202) reply.header('location', locationOf(record.response));
  return reply.code(record.status).header('idempotent-replayed', 'true').type('application/json; charset=utf-8').send(record.response);
}
