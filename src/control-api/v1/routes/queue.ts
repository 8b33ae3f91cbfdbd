import type { FastifyInstance, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../../../clock.ts';
import { RECIPIENT_STATES, type BacklogGrouping, type Store } from '../../../storage/store.ts';
import { rfc3339 } from '../message-view.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, problemResponses, v1Route } from '../schemas.ts';

export interface QueueRouteDeps {
  store: Pick<Store, 'countByState' | 'deferredBacklog'>;
  clock?: Clock;
}

const OLDEST = {
  oldestCreatedAt: { type: ['string', 'null'], format: 'date-time', description: 'When the oldest message of the group was accepted.' },
  oldestAgeSeconds: { type: ['integer', 'null'], minimum: 0, description: 'How long ago that was.' },
} as const;

const GROUPING = {
  type: 'object',
  additionalProperties: false,
  required: ['groups', 'rest'],
  properties: {
    groups: {
      type: 'array',
      description: 'The largest groups, by count.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'count', 'oldestCreatedAt', 'oldestAgeSeconds'],
        properties: { key: { type: ['string', 'null'], description: 'null: none (no egress IP: never connected).' }, count: { type: 'integer', minimum: 1 }, ...OLDEST },
      },
    },
    rest: {
      type: 'object',
      additionalProperties: false,
      required: ['groups', 'count'],
      description: 'The groups left out, and their recipients together.',
      properties: { groups: { type: 'integer', minimum: 0 }, count: { type: 'integer', minimum: 0 } },
    },
  },
} as const;

const QUEUE = {
  type: 'object',
  additionalProperties: false,
  required: ['counts', 'deferred'],
  properties: {
    counts: {
      type: 'object',
      description: 'Recipients by state, over the whole queue (finished ones until storage.retention purges them).',
      additionalProperties: false,
      required: [...RECIPIENT_STATES],
      properties: Object.fromEntries(RECIPIENT_STATES.map((state) => [state, { type: 'integer', minimum: 0 }])),
    },
    deferred: {
      type: 'object',
      description: 'Queued recipients waiting for a retry (deferred or throttled at least once; new mail not tried yet is not counted).',
      additionalProperties: false,
      required: ['count', 'oldestCreatedAt', 'oldestAgeSeconds', 'byDomain', 'byPool', 'byEgressIp'],
      properties: {
        count: { type: 'integer', minimum: 0 },
        ...OLDEST,
        byDomain: { ...GROUPING, description: 'By recipient domain.' },
        byPool: { ...GROUPING, description: 'By egress pool.' },
        byEgressIp: { ...GROUPING, description: 'By the egress IP of the last attempt.' },
      },
    },
  },
} as const;

const QUEUE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { top: { type: 'integer', minimum: 1, maximum: 1000, default: 50, description: 'Groups shown per grouping.' } },
} as const;

/**
 * GET /v1/queue: recipients by state, and the deferred backlog grouped by destination domain,
 * pool and egress IP with the age of each group's oldest message: what an operator looks at
 * first when mail is late. Totals over every tenant: for tokens of no tenant (route-roles.ts).
 */
export function registerQueueRoute(app: FastifyInstance, deps: QueueRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  app.get('/v1/queue', {
    schema: {
      ...v1Route({ summary: 'Queue counts and the deferred backlog', roles: rolesFor('GET', '/v1/queue') ?? [], tags: ['queue'] }),
      querystring: QUEUE_QUERY,
      response: { 200: jsonResponse('Recipient counts by state and the deferred backlog.', QUEUE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Querystring: { top: number } }>) => {
      const [counts, backlog] = await Promise.all([deps.store.countByState(), deps.store.deferredBacklog(request.query.top)]);
      const now = clock.now();
      const oldest = (createdAt: number | null) => ({
        oldestCreatedAt: createdAt === null ? null : rfc3339(createdAt),
        oldestAgeSeconds: createdAt === null ? null : Math.max(0, Math.floor((now - createdAt) / 1000)),
      });
      const grouping = (g: BacklogGrouping) => {
        const shown = g.top.reduce((sum, group) => sum + group.count, 0);
        return {
          groups: g.top.map((group) => ({ key: group.key, count: group.count, ...oldest(group.oldestCreatedAt) })),
          rest: { groups: g.groups - g.top.length, count: backlog.count - shown },
        };
      };
      return {
        counts,
        deferred: {
          count: backlog.count,
          ...oldest(backlog.oldestCreatedAt),
          byDomain: grouping(backlog.byDomain),
          byPool: grouping(backlog.byPool),
          byEgressIp: grouping(backlog.byEgressIp),
        },
      };
    },
  });
}
