import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiPrincipal } from '../../../access/api-token.ts';
import type { PausedScopes } from '../../../storage/queue-control.ts';
import { RECIPIENT_STATES, type MessageInfo, type RecipientState, type Store } from '../../../storage/store.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { decodeMessageCursor, encodeMessageCursor } from '../cursor.ts';
import { dsnSearchWindow, messageDetailView, messageSummaryView } from '../message-view.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, PAGE_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { MESSAGE_DETAIL, MESSAGE_PAGE } from './message-schemas.ts';
import { readPageQuery } from '../page-query.ts';

export interface MessagesRouteDeps {
  store: Pick<Store, 'getMessageInfo' | 'listMessages' | 'listRecipients' | 'listEvents' | 'findDsns' | 'listFeedback'>;
  /** The domains, pools and tenants paused now (QueuePauses.claimFilter): their queued recipients show as paused. */
  paused?: () => PausedScopes;
}

const ADDRESS = { type: 'string', minLength: 1, maxLength: 320 } as const;

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: [...RECIPIENT_STATES], description: 'Messages with a recipient in this state.' },
    sender: { ...ADDRESS, description: 'Envelope sender (ASCII case ignored).' },
    recipient: { ...ADDRESS, description: 'A recipient address (ASCII case ignored).' },
    domain: { type: 'string', minLength: 1, maxLength: 255, description: 'A recipient domain.' },
    pool: { type: 'string', minLength: 1, maxLength: 100, description: 'The egress pool.' },
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "The tenant (a tenant's token reads its own messages only)." },
    tag: { type: 'string', minLength: 1, maxLength: 128, description: 'Messages sent with this tag (POST /v1/messages `tags`; case counts).' },
    since: { type: 'string', format: 'date-time', description: 'Created at or after (RFC 3339).' },
    until: { type: 'string', format: 'date-time', description: 'Created before (RFC 3339).' },
    ...PAGE_QUERY,
  },
} as const;

interface ListQuery {
  state?: RecipientState;
  sender?: string;
  recipient?: string;
  domain?: string;
  pool?: string;
  tenant?: string;
  tag?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit: number;
}

export const ID_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200, description: 'The queue id (the 250 reply to DATA carries it).' } },
} as const;

/**
 * GET /v1/messages (newest first, filtered, by cursor) and GET /v1/messages/{id} (one message,
 * its recipients and their attempts). Reads only; never the body. A token of a tenant reads that
 * tenant's messages only; others may filter by tenant.
 */
export function registerMessagesRoutes(app: FastifyInstance, deps: MessagesRouteDeps): void {
  app.get('/v1/messages', {
    schema: {
      ...v1Route({ summary: 'List messages, newest first', roles: rolesFor('GET', '/v1/messages') ?? [], tags: ['messages'] }),
      querystring: LIST_QUERY,
      response: { 200: jsonResponse('A page of messages; nextCursor is null on the last page.', MESSAGE_PAGE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Querystring: ListQuery }>, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, decodeMessageCursor);
      if ('path' in page) return sendInvalid(request, reply, page.path, page.message);
      const own = request.principal!.tenant;
      if (own !== null && q.tenant !== undefined && q.tenant !== own) {
        return sendProblem(reply, problem('FORBIDDEN', `A token of tenant "${own}" reads that tenant's messages only`, { instance: pathOf(request) }));
      }
      // One more than asked says whether another page follows, without an empty last page.
      const found = await deps.store.listMessages({
        state: q.state ?? null,
        sender: q.sender ?? null,
        recipient: q.recipient ?? null,
        domain: q.domain ?? null,
        pool: q.pool ?? null,
        tag: q.tag ?? null,
        since: page.since,
        until: page.until,
        tenant: own ?? q.tenant ?? null,
        after: page.after,
        limit: q.limit + 1,
      });
      const items = found.slice(0, q.limit);
      const last = items.at(-1);
      const nextCursor = found.length > q.limit && last ? encodeMessageCursor({ createdAt: last.createdAt, id: last.id }) : null;
      return { items: items.map(messageSummaryView), nextCursor };
    },
  });

  app.get('/v1/messages/:id', {
    schema: {
      ...v1Route({ summary: 'One message: envelope, recipients, attempts, bounces and complaints after delivery', roles: rolesFor('GET', '/v1/messages/:id') ?? [], tags: ['messages'] }),
      params: ID_PARAMS,
      response: { 200: jsonResponse('The message without its body.', MESSAGE_DETAIL), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      const { id } = request.params;
      const message = visibleMessage(await deps.store.getMessageInfo(id), request.principal!);
      if (!message) return messageNotFound(request, reply);
      const [recipients, events, feedback] = await Promise.all([deps.store.listRecipients(id), deps.store.listEvents(id), deps.store.listFeedback(id)]);
      const window = dsnSearchWindow(message, recipients, events);
      const dsns = window ? await deps.store.findDsns(id, window.from, window.to) : [];
      return messageDetailView(message, recipients, events, dsns, feedback, deps.paused?.());
    },
  });
}

/**
 * The message as the caller may know it: a token of a tenant knows its own tenant's messages
 * only. Another tenant's is answered as unknown (404): its existence is not the caller's to learn.
 */
export function visibleMessage(found: MessageInfo | null, principal: ApiPrincipal): MessageInfo | null {
  return found && (principal.tenant === null || found.tenant === principal.tenant) ? found : null;
}

/** The 404 for a queue id the store does not hold (never accepted, or purged). */
export function messageNotFound(request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, problem('MESSAGE_NOT_FOUND', `No message with queue id ${request.params.id}`, { instance: pathOf(request) }));
}
