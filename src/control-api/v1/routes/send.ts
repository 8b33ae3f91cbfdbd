import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../../clock.ts';
import type { PreparedMessage, Queue } from '../../../engine/queue.ts';
import type { StorageSpace } from '../../../engine/storage-space.ts';
import { RookeryError } from '../../../errors.ts';
import type { EnqueueOnceResult, IdempotencyRecord } from '../../../storage/store.ts';
import { mediaTypeOf, pathOf, refuseWhileStopping, retryAfterSeconds, sendInvalid, sendProblem, setRetryAfter, validationErrors } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { composeJsonMessage, type JsonMessage } from '../compose-message.ts';
import { answerFromRecord, idempotencyKeyOf, type IdempotencyKey } from '../idempotency.ts';
import { rawDraft, type SendLimits } from '../message-draft.ts';
import { rolesFor } from '../route-roles.ts';
import { jsonResponse, v1Route } from '../schemas.ts';
import { sendBudget } from '../send-budget.ts';
import { acceptedView, intake, logAccepted, type Intake } from '../send-intake.ts';
import { ACCEPTED, BATCH_BODY, BATCH_RESULT, IDEMPOTENCY_HEADERS, IDEMPOTENCY_KEY_PATTERN, RAW_QUERY, SEND_MESSAGE, sendProblems } from './send-schemas.ts';

export interface SendRouteDeps {
  queue: Pick<Queue, 'prepare' | 'commit' | 'findIdempotent'>;
  /** smtp.maxMessageBytes and smtp.maxRecipients: HTTP takes what SMTP takes. */
  limits: SendLimits;
  clock?: Clock;
  /** True once the daemon stops: new mail is refused (503), as SMTP answers 421. */
  isShuttingDown?: () => boolean;
  /** The disk space beside the queue: new mail is refused unread (503) while it is low, as SMTP answers 452. Never low when not given. */
  space?: Pick<StorageSpace, 'low'>;
}

type RawQuery = { from?: string; to?: string[]; pool?: string; sendAt?: string; tag?: string[] };

/**
 * The largest request body, JSON or raw, single or batch: a message of smtp.maxMessageBytes
 * whose attachments grew by base64's 4/3, and 64 KiB for the JSON around them.
 */
export function requestBodyLimit(maxMessageBytes: number): number {
  return Math.ceil((maxMessageBytes * 4) / 3) + 64 * 1024;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Where an accepted message is read: the Location of a 202. */
const messageLocation = (id: string): string => `/v1/messages/${id}`;

/** The Location of a stored single-route answer (its body is acceptedView's). */
const locationOfAccepted = (response: string): string => messageLocation((JSON.parse(response) as { id: string }).id);

const VALID_KEY = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/** How soon a client refused for disk space tries again: space comes back when an operator frees it or the purge runs. */
const STORAGE_LOW_RETRY_MS = 60_000;

/**
 * POST /v1/messages (JSON composed by MailComposer, or a message/rfc822 body with its envelope
 * in the query) and POST /v1/messages/batch (up to 1,000 JSON messages, one commit, a result per
 * message). Each message passes the checks SMTP makes and the queue's one accept path; the 202
 * comes only after the commit. With an Idempotency-Key the answer is stored in that commit and
 * given again to the same request (idempotency.ts). Two requests racing with one key, on one
 * node or two sharing PostgreSQL, both prepare their messages; the database's key decides which
 * commit stores, and the other answers the winner's response as a replay (its own messages are
 * dropped unstored), so a client never sees a 409 and never gets two copies sent.
 */
export function registerSendRoutes(app: FastifyInstance, deps: SendRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  const bodyLimit = requestBodyLimit(deps.limits.maxMessageBytes);
  const memory = sendBudget({ ...deps.limits, bodyLimit });
  const refuseWhileLow = () => {
    if (deps.space?.low) throw new RookeryError('STORAGE_LOW', 'Little disk space is left beside this node\'s queue; send to another node or again later', { retryAfterMs: STORAGE_LOW_RETRY_MS });
  };
  // Before the body is read, except for a request whose Idempotency-Key holds an answer: that
  // one stores nothing, and is answered from its record as at any other time (the handler
  // checks again when the record is gone by then).
  const room = async (request: FastifyRequest) => {
    if (!deps.space?.low) return;
    const key = request.headers['idempotency-key'];
    // A key the schema would refuse cannot hold an answer: no lookup for it.
    if (typeof key === 'string' && VALID_KEY.test(key) && request.principal && (await findEarlier(request, deps, { scope: request.principal.name, key }))) return;
    refuseWhileLow();
  };
  app.addContentTypeParser('message/rfc822', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post('/v1/messages', {
    bodyLimit,
    preParsing: [room, memory.hold(true)],
    onResponse: async (request) => memory.release(request),
    onRequestAbort: async (request) => memory.release(request),
    schema: {
      ...v1Route({ summary: 'Send a message', roles: rolesFor('POST', '/v1/messages') ?? [], tags: ['messages'] }),
      headers: IDEMPOTENCY_HEADERS,
      querystring: RAW_QUERY,
      body: {
        content: {
          'application/json': { schema: SEND_MESSAGE },
          // Any bytes: the message is read by the checks of message-draft.ts, not by a schema.
          'message/rfc822': { schema: { description: 'A whole message (RFC 5322), LF or CRLF line endings; its envelope in the query: from, to (repeated).' } },
        },
      },
      response: { 202: jsonResponse('Stored; delivery follows. Location: the message at /v1/messages/{id}.', ACCEPTED), ...sendProblems() },
    },
    handler: async (request: FastifyRequest<{ Querystring: RawQuery; Body: JsonMessage | Buffer }>, reply: FastifyReply) => {
      if (deps.isShuttingDown?.()) return refuseWhileStopping(request, reply);
      const { body, query } = request;
      const raw = Buffer.isBuffer(body);
      // Fastify's own parser gives text/plain as a string, which the schemas (keyed by type) never see.
      if (!raw && (typeof body !== 'object' || body === null)) return refuseMediaType(request, reply);
      const stray = raw ? undefined : Object.keys(query)[0];
      if (stray !== undefined) return sendInvalid(request, reply, `querystring.${stray}`, 'only with a message/rfc822 body (JSON gives it in the body)');
      const key = idempotencyKeyOf(request, { query, body });
      const earlier = key && (await findEarlier(request, deps, key));
      if (key && earlier) return answerFromRecord(request, reply, key, earlier, locationOfAccepted);
      refuseWhileLow();

      const now = clock.now();
      const item = raw
        ? await intake(request, deps.queue, rawDraft(query, body, deps.limits, now), { from: 'querystring.from', pool: 'querystring.pool' })
        : await intake(request, deps.queue, await composeJsonMessage(body, 'body', deps.limits, now), { from: 'body.from', pool: 'body.pool' });
      if ('problem' in item) {
        setRetryAfter(reply, item.retryAfterMs);
        return sendProblem(reply, { ...item.problem, instance: pathOf(request) });
      }
      const view = acceptedView(item.prepared);
      const committed = await commit(request, deps, [item.prepared], key, JSON.stringify(view));
      if (!committed.stored) return answerFromRecord(request, reply, key!, committed.existing, locationOfAccepted);
      logAccepted(request.log, item.prepared);
      auditRequest(request, { target: view.id });
      return reply.code(202).header('location', messageLocation(view.id)).type(JSON_TYPE).send(JSON.stringify(view));
    },
  });

  app.post('/v1/messages/batch', {
    bodyLimit,
    preParsing: [room, memory.hold(false)],
    onResponse: async (request) => memory.release(request),
    onRequestAbort: async (request) => memory.release(request),
    // Before the schema, which would call text or a raw message a malformed batch (400): a batch is JSON only.
    preValidation: async (request, reply) => {
      if (mediaTypeOf(request) !== 'application/json') return refuseMediaType(request, reply, 'send application/json');
    },
    schema: {
      ...v1Route({ summary: 'Send up to 1,000 messages in one request', roles: rolesFor('POST', '/v1/messages/batch') ?? [], tags: ['messages'] }),
      headers: IDEMPOTENCY_HEADERS,
      querystring: { type: 'object', additionalProperties: false, properties: {} },
      body: BATCH_BODY,
      response: { 202: jsonResponse('The accepted messages are stored (one commit); `results` has one entry per message.', BATCH_RESULT), ...sendProblems() },
    },
    handler: async (request: FastifyRequest<{ Body: { messages: unknown[] } }>, reply: FastifyReply) => {
      if (deps.isShuttingDown?.()) return refuseWhileStopping(request, reply);
      const key = idempotencyKeyOf(request, { query: request.query, body: request.body });
      const earlier = key && (await findEarlier(request, deps, key));
      if (key && earlier) return answerFromRecord(request, reply, key, earlier);
      refuseWhileLow();

      const now = clock.now();
      const validate = request.compileValidationSchema(SEND_MESSAGE, 'body');
      // Side by side: composing waits on streams and signing on worker threads.
      const items = await Promise.all(
        request.body.messages.map(async (message, index): Promise<Intake> => {
          const at = `body.messages[${index}]`;
          if (!validate(message)) {
            const errors = validationErrors({ validation: (validate.errors ?? []) as FastifyError['validation'], validationContext: at as FastifyError['validationContext'] });
            return { problem: problem('INVALID_REQUEST', errors.map((e) => `${e.path}: ${e.message}`).join('; '), { errors }) };
          }
          return intake(request, deps.queue, await composeJsonMessage(message as JsonMessage, at, deps.limits, now), { from: `${at}.from`, pool: `${at}.pool` });
        }),
      );
      const prepared = items.flatMap((item) => ('prepared' in item ? [item.prepared] : []));
      const results = items.map((item, index) =>
        'prepared' in item
          ? { index, status: 'accepted' as const, ...acceptedView(item.prepared) }
          : { index, status: 'failed' as const, error: item.problem, ...(item.retryAfterMs ? { retryAfter: retryAfterSeconds(item.retryAfterMs) } : {}) },
      );
      const text = JSON.stringify({ accepted: prepared.length, failed: items.length - prepared.length, results });
      // A batch of which nothing was accepted stored nothing: like a refused request, it spends no key.
      const committed = await commit(request, deps, prepared, prepared.length > 0 ? key : null, text);
      if (!committed.stored) return answerFromRecord(request, reply, key!, committed.existing);
      for (const p of prepared) logAccepted(request.log, p);
      const ids = prepared.map((p) => p.accepted.id);
      auditRequest(request, { target: ids.length === 0 ? 'no message accepted' : `${ids[0]}..${ids.at(-1)} (${ids.length} of ${items.length} messages)` });
      return reply.code(202).type(JSON_TYPE).send(text);
    },
  });
}

/**
 * The record the key holds. A store that cannot read it durably (SQLite after a failed sync:
 * the first request was answered 503) answers 503 too: a replayed 202 would promise mail the
 * disk may not hold.
 */
async function findEarlier(request: FastifyRequest, deps: SendRouteDeps, key: Pick<IdempotencyKey, 'scope' | 'key'>): Promise<IdempotencyRecord | null> {
  try {
    return await deps.queue.findIdempotent(key.scope, key.key);
  } catch (err) {
    request.log.error({ event: 'api.idempotency.failed', err: (err as Error).message }, 'the Idempotency-Key record could not be read durably');
    throw new RookeryError('STORAGE_FAILED');
  }
}

/**
 * The one commit of a request: its messages, and its key with the answer `response` when it has
 * one. A store that fails is a 503 (STORAGE_FAILED): nothing was stored, or (the disk did not
 * confirm it) it may have been, and a retry under the same key is then answered from the record.
 */
async function commit(request: FastifyRequest, deps: SendRouteDeps, prepared: PreparedMessage[], key: IdempotencyKey | null, response: string): Promise<EnqueueOnceResult> {
  try {
    return await deps.queue.commit(prepared, key ? { ...key, status: 202, response } : undefined);
  } catch (err) {
    const uncertain = (err as Error).name === 'UncertainDurabilityError';
    request.log.error(
      { event: 'api.commit.failed', err: (err as Error).message, messages: prepared.length, ...(uncertain ? { maybeStored: true } : {}) },
      uncertain ? 'messages stored but not confirmed on disk; answered as not queued' : 'messages could not be queued',
    );
    throw new RookeryError('STORAGE_FAILED');
  }
}

function refuseMediaType(request: FastifyRequest, reply: FastifyReply, what = 'send application/json or message/rfc822'): FastifyReply {
  return sendProblem(reply, problem('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${JSON.stringify(mediaTypeOf(request))}: ${what}`, { instance: pathOf(request) }));
}

