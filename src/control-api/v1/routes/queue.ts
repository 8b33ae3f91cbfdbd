import type { FastifyInstance } from 'fastify';
import { RECIPIENT_STATES, type Store } from '../../../storage/store.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';

export interface QueueRouteDeps {
  store: Pick<Store, 'countByState'>;
}

const QUEUE = {
  type: 'object',
  additionalProperties: false,
  required: ['counts'],
  properties: {
    counts: {
      type: 'object',
      description: 'Recipients by state, over the whole queue (finished ones until storage.retention purges them).',
      additionalProperties: false,
      required: [...RECIPIENT_STATES],
      properties: Object.fromEntries(RECIPIENT_STATES.map((state) => [state, { type: 'integer', minimum: 0 }])),
    },
  },
} as const;

/** GET /v1/queue: recipients by state, what an operator looks at first when mail is late. */
export function registerQueueRoute(app: FastifyInstance, deps: QueueRouteDeps): void {
  app.get('/v1/queue', {
    schema: {
      ...v1Route({ summary: 'Queue counts by state', roles: rolesFor('GET', '/v1/queue') ?? [], tags: ['queue'] }),
      querystring: NO_QUERY,
      response: { 200: jsonResponse('Recipient counts by state.', QUEUE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async () => ({ counts: await deps.store.countByState() }),
  });
}
