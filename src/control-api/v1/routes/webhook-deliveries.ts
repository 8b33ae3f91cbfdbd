import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock } from '../../../clock.ts';
import { WEBHOOK_DELIVERY_STATES, type WebhookDeliveryState } from '../../../storage/webhook-outbox.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { decodeDeliveryCursor, encodeDeliveryCursor } from '../cursor.ts';
import { readPageQuery } from '../page-query.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, PAGE_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { DELIVERY, DELIVERY_PAGE, DELIVERY_PARAMS, deliveryView, ID_PARAMS, visibleWebhook } from './webhook-schemas.ts';
import { webhookNotFound, type WebhookRouteDeps } from './webhooks.ts';

/** Deliveries one range replay sends again at most: one bounded write; narrow the range for more. */
export const REPLAY_LIMIT = 10_000;

const STATE = { type: 'string', enum: [...WEBHOOK_DELIVERY_STATES] } as const;

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { ...STATE, description: 'Deliveries in this state.' },
    ...PAGE_QUERY,
  },
} as const;

const REPLAY_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['since'],
  properties: {
    since: { type: 'string', format: 'date-time', description: 'Deliveries created at or after (RFC 3339).' },
    until: { type: 'string', format: 'date-time', description: 'Created before (RFC 3339); absent: up to now.' },
    state: { ...STATE, description: 'Only deliveries in this state (e.g. failed); absent: every state but in flight.' },
  },
} as const;

const REPLAY_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['replayed', 'limited'],
  properties: {
    replayed: { type: 'integer', description: 'Deliveries due again now, each tried for 3 days from now.' },
    limited: { type: 'boolean', description: `True when the range held ${REPLAY_LIMIT} or more: the oldest ${REPLAY_LIMIT} were replayed; replay the rest in narrower ranges.` },
  },
} as const;

type DeliveryRequest = FastifyRequest<{ Params: { id: string; deliveryId: string } }>;

/**
 * An endpoint's delivery history (GET /v1/webhooks/{id}/deliveries, newest first, by state and
 * cursor) and replays: one delivery, or a range of them by creation time (and state), made due
 * now and retried for the window from now, with their webhook-id unchanged (a receiver that
 * keeps the ids it processed can tell a replay from news). A delivery in flight is left to it.
 */
export function registerWebhookDeliveryRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  const schema = (method: string, url: string, summary: string) => v1Route({ summary, roles: rolesFor(method, url) ?? [], tags: ['webhooks'] });
  const visible = async (request: FastifyRequest<{ Params: { id: string } }>) => visibleWebhook(await deps.store.getWebhook(request.params.id), request.principal!);

  app.get('/v1/webhooks/:id/deliveries', {
    schema: {
      ...schema('GET', '/v1/webhooks/:id/deliveries', "A webhook endpoint's deliveries, newest first"),
      params: ID_PARAMS,
      querystring: LIST_QUERY,
      response: { 200: jsonResponse('A page of deliveries; nextCursor is null on the last page.', DELIVERY_PAGE), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: FastifyRequest<{ Params: { id: string }; Querystring: { state?: WebhookDeliveryState; cursor?: string; limit: number } }>, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, decodeDeliveryCursor);
      if ('path' in page) return sendInvalid(request, reply, page.path, page.message);
      const endpoint = await visible(request);
      if (!endpoint) return webhookNotFound(request, reply);
      const found = await deps.store.listWebhookDeliveries(endpoint.id, { state: q.state ?? null, after: page.after, limit: q.limit + 1 });
      const items = found.slice(0, q.limit);
      const last = items.at(-1);
      const nextCursor = found.length > q.limit && last ? encodeDeliveryCursor({ createdAt: last.createdAt, id: last.id }) : null;
      return { items: items.map(deliveryView), nextCursor };
    },
  });

  app.post('/v1/webhooks/:id/deliveries/:deliveryId/replay', {
    schema: {
      ...schema('POST', '/v1/webhooks/:id/deliveries/:deliveryId/replay', 'Send one delivery again'),
      params: DELIVERY_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The delivery, due now (left as it is while in flight).', DELIVERY), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: DeliveryRequest, reply: FastifyReply) => {
      const { id, deliveryId } = request.params;
      auditRequest(request, { target: `${id}/${deliveryId}` });
      const endpoint = await visible(request);
      if (!endpoint) return webhookNotFound(request, reply);
      const replayed = await deps.store.replayWebhookDelivery(endpoint.id, deliveryId, clock.now());
      if (!replayed) return sendProblem(reply, problem('WEBHOOK_DELIVERY_NOT_FOUND', `No delivery ${deliveryId} of webhook endpoint ${id}`, { instance: pathOf(request) }));
      deps.onDue?.();
      auditRequest(request, { target: `${id}/${deliveryId}`, change: { after: { state: replayed.state } } });
      return deliveryView(replayed);
    },
  });

  app.post('/v1/webhooks/:id/replay', {
    schema: {
      ...schema('POST', '/v1/webhooks/:id/replay', 'Send a range of deliveries again'),
      params: ID_PARAMS,
      querystring: NO_QUERY,
      body: REPLAY_BODY,
      response: { 200: jsonResponse('How many were made due.', REPLAY_ANSWER), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: FastifyRequest<{ Params: { id: string }; Body: { since: string; until?: string; state?: WebhookDeliveryState } }>, reply: FastifyReply) => {
      auditRequest(request, { target: request.params.id });
      const body = request.body;
      const since = Date.parse(body.since);
      const until = body.until === undefined ? null : Date.parse(body.until);
      if (Number.isNaN(since)) return sendInvalid(request, reply, 'body.since', `not a time this API can read: ${JSON.stringify(body.since)}`);
      if (Number.isNaN(until)) return sendInvalid(request, reply, 'body.until', `not a time this API can read: ${JSON.stringify(body.until)}`);
      const endpoint = await visible(request);
      if (!endpoint) return webhookNotFound(request, reply);
      const replayed = await deps.store.replayWebhookDeliveries(endpoint.id, { since, until, state: body.state ?? null }, clock.now(), REPLAY_LIMIT);
      if (replayed > 0) deps.onDue?.();
      const answer = { replayed, limited: replayed === REPLAY_LIMIT };
      auditRequest(request, { target: endpoint.id, change: { after: { ...body, ...answer } } });
      return answer;
    },
  });
}
