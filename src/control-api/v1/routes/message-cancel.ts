import { allowLongWork } from '../long-request.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { QueueOperations } from '../../../engine/queue-operations.ts';
import type { Store } from '../../../storage/store.ts';
import { auditRequest } from '../audit-trail.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, problemResponses, v1Route } from '../schemas.ts';
import { ID_PARAMS, messageNotFound, visibleMessage } from './messages.ts';
import { CANCELLED_PROPERTIES } from './queue-operations.ts';

export interface MessageCancelRouteDeps {
  store: Pick<Store, 'getMessageInfo'>;
  operations: Pick<QueueOperations, 'cancel'>;
}

const CANCEL_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    reason: { type: 'string', minLength: 1, maxLength: 500, description: 'Why: recorded with each recipient ("cancelled by an operator: <reason>"), and told to the sender in the DSN.' },
    dsn: { type: 'boolean', default: false, description: 'Send the sender a DSN for the cancelled recipients.' },
  },
} as const;

const CANCEL_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'cancelled', 'inDelivery', 'dsns'],
  properties: { id: { type: 'string' }, ...CANCELLED_PROPERTIES },
} as const;

/**
 * DELETE /v1/messages/{id}: cancels what is left of one message, as POST /v1/queue/bounce does
 * for a scope: its queued recipients are bounced as cancelled by an operator (with a DSN when
 * asked), those in delivery are left to finish. The message stays readable (GET) until
 * storage.retention purges it. A message with nothing left to cancel answers 0s, not an error.
 * A token of a tenant cancels its own tenant's messages; another's is unknown to it, as for GET.
 */
export function registerMessageCancelRoute(app: FastifyInstance, deps: MessageCancelRouteDeps): void {
  app.delete('/v1/messages/:id', {
    schema: {
      ...v1Route({ summary: 'Cancel what is left of a message', roles: rolesFor('DELETE', '/v1/messages/:id') ?? [], tags: ['messages'] }),
      params: ID_PARAMS,
      querystring: CANCEL_QUERY,
      response: { 200: jsonResponse('What was cancelled, and what was left to finish.', CANCEL_ANSWER), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: FastifyRequest<{ Params: { id: string }; Querystring: { reason?: string; dsn: boolean } }>, reply: FastifyReply) => {
      const { id } = request.params;
      auditRequest(request, { target: id });
      if (!visibleMessage(await deps.store.getMessageInfo(id), request.principal!)) return messageNotFound(request, reply);
      const { reason, dsn } = request.query;
      allowLongWork(request);
      const result = await deps.operations.cancel({ kind: 'message', messageId: id }, { reason, dsn, by: request.principal!.name });
      auditRequest(request, { target: id, change: { after: result } });
      return { id, ...result };
    },
  });
}
