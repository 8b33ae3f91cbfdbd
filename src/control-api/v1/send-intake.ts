import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { PreparedMessage, Queue } from '../../engine/queue.ts';
import { RookeryError } from '../../errors.ts';
import { toProblem } from '../error-handler.ts';
import { problem, type Problem } from '../problem.ts';
import { rfc3339 } from './message-view.ts';
import { checkDraft, refusedAt, toSubmission, type Draft, type Refusal } from './message-draft.ts';

/**
 * One message of a send request, from its draft to a prepared message (checked, completed,
 * signed; not stored yet) or the problem that refuses it; and what the answer says of it. The
 * single route and each item of a batch go through the same steps.
 */

/** A message prepared, or its refusal (with when to come back, for a tenant's rate or quota). */
export type Intake = { prepared: PreparedMessage } | { problem: Problem; retryAfterMs?: number | null };

/** Where the request named the envelope sender and the pool: for the paths of their refusals. */
export interface IntakePlaces {
  from: string;
  pool: string;
}

/** Checks the draft against the token and hands it to the queue to prepare; a refusal of either becomes the item's problem. */
export async function intake(
  request: FastifyRequest,
  queue: Pick<Queue, 'prepare'>,
  draft: Draft | Refusal,
  places: IntakePlaces,
): Promise<Intake> {
  if ('code' in draft) return { problem: problemOf(draft) };
  const principal = request.principal!;
  const refusal = checkDraft(draft, principal, places.from);
  if (refusal) return { problem: problemOf(refusal) };
  try {
    return { prepared: await queue.prepare(toSubmission(draft, principal, request.ip)) };
  } catch (err) {
    if (!(err instanceof RookeryError)) throw err;
    const { detail } = toProblem(err);
    return { problem: problemOf(err.code === 'POOL_NOT_ALLOWED' ? refusedAt(err.code, places.pool, detail) : { code: err.code, detail }), retryAfterMs: err.retryAfterMs };
  }
}

export function problemOf(refusal: Refusal): Problem {
  return problem(refusal.code, refusal.detail, refusal.errors ? { errors: refusal.errors } : {});
}

/**
 * What the answer says of an accepted message: `id` is the queue id (the first copy's when it
 * was split per recipient), `ids` every queue id, and each recipient the id of the copy it is in.
 */
export function acceptedView(prepared: PreparedMessage) {
  const { messages, accepted } = prepared;
  const { dueAt, createdAt } = messages[0]!;
  return {
    id: accepted.id,
    ids: accepted.ids,
    messageId: accepted.messageIdHeader,
    pool: accepted.pool.pool,
    sendAt: dueAt > createdAt ? rfc3339(dueAt) : null,
    recipients: accepted.recipients,
  };
}

/** One line per message taken, as the SMTP door writes one; and a pool header that was not honoured. */
export function logAccepted(log: FastifyBaseLogger, prepared: PreparedMessage): void {
  const { messages, accepted } = prepared;
  const message = messages[0]!;
  log.info(
    {
      event: 'api.message.accepted',
      messageId: accepted.id,
      ...(accepted.ids.length > 1 ? { copies: accepted.ids } : {}),
      messageIdHeader: accepted.messageIdHeader,
      sender: message.sender,
      submitter: message.submitter,
      ...(message.tenant ? { tenant: message.tenant } : {}),
      recipients: messages.reduce((sum, m) => sum + m.recipients.length, 0),
      size: message.body.length,
      pool: accepted.pool.pool,
      ...(message.dueAt > message.createdAt ? { sendAt: rfc3339(message.dueAt) } : {}),
    },
    'message queued',
  );
  if (accepted.pool.refusedHeader !== null) {
    log.warn(
      { event: 'api.pool.refused', messageId: accepted.id, requested: accepted.pool.refusedHeader.slice(0, 100), submitter: message.submitter, pool: accepted.pool.pool },
      'X-Rookery-Pool names a pool this token may not use; ignored',
    );
  }
}
