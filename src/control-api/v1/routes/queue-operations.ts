import { allowLongWork } from '../long-request.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenDirectory } from '../../../access/api-token.ts';
import type { TenantLookup } from '../../../access/tenants.ts';
import { systemClock, type Clock } from '../../../clock.ts';
import type { QueueOperations } from '../../../engine/queue-operations.ts';
import type { EgressPool } from '../../../ippool/egress-pool.ts';
import { DEFAULT_POOL } from '../../../ippool/pool-assignment.ts';
import { describeQueueScope, sameScope, type QueuePauses } from '../../../engine/queue-pauses.ts';
import type { QueueScope } from '../../../storage/queue-control.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { expiryProperties, readExpiry, type ExpiryFields } from '../expiry.ts';
import { ownsScope, PAUSE_SCHEMA, pauseJson, pausedByTenant, readScope, SCOPE_SCHEMA, scopeJson, type ScopeJson } from '../queue-scope.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';

export interface QueueOperationsRouteDeps {
  pauses: Pick<QueuePauses, 'pause' | 'resume' | 'list'>;
  operations: Pick<QueueOperations, 'retry' | 'cancel'>;
  /** The configured tenants: a tenant scope names one of them. */
  tenants: TenantLookup;
  /** The API tokens in effect: which of them made a pause (a tenant's, or the platform's). */
  tokens: () => TokenDirectory;
  /** The egress pool: a pool scope names one of its pools (or a tenant's). */
  pools: Pick<EgressPool, 'pools'>;
  /** The time `for` counts from and `until` must lie after; the system clock by default. */
  clock?: Clock;
}

const REASON = { type: 'string', minLength: 1, maxLength: 500 } as const;

const PAUSE_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'reason'],
  properties: {
    scope: SCOPE_SCHEMA,
    reason: { ...REASON, description: 'Why, for the other operators (shown in GET /v1/queue/pauses).' },
    ...expiryProperties('pause'),
  },
  description: 'Without `until` or `for`, the pause lasts until resumed.',
} as const;

const SCOPE_BODY = { type: 'object', additionalProperties: false, required: ['scope'], properties: { scope: SCOPE_SCHEMA } } as const;

const BOUNCE_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'reason', 'dsn'],
  properties: {
    scope: SCOPE_SCHEMA,
    reason: { ...REASON, description: 'Recorded with each recipient ("cancelled by an operator: <reason>"), and told to the sender in the DSN.' },
    dsn: { type: 'boolean', description: 'Send each message\'s sender a DSN for its cancelled recipients (never to the null sender, nor with delivery.dsn.enabled off).' },
  },
} as const;

const PAUSE_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['pause', 'replaced'],
  properties: { pause: PAUSE_SCHEMA, replaced: { anyOf: [PAUSE_SCHEMA, { type: 'null' }], description: 'The pause of the same scope this one replaced.' } },
} as const;

const RESUME_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['ended'],
  properties: { ended: { anyOf: [PAUSE_SCHEMA, { type: 'null' }], description: 'The pause ended; null when none was in force.' } },
} as const;

const PAUSES_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['pauses'],
  properties: { pauses: { type: 'array', items: PAUSE_SCHEMA, description: 'The pauses in force, oldest first.' } },
} as const;

const RETRY_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'retried'],
  properties: { scope: SCOPE_SCHEMA, retried: { type: 'integer', minimum: 0, description: 'Queued recipients made due now.' } },
} as const;

/** What a cancellation answers (also DELETE /v1/messages/{id}). */
export const CANCELLED_PROPERTIES = {
  cancelled: { type: 'integer', minimum: 0, description: 'Queued recipients cancelled: bounced, never attempted again.' },
  inDelivery: { type: 'integer', minimum: 0, description: 'Recipients being delivered now, left to finish.' },
  dsns: { type: 'integer', minimum: 0, description: 'DSNs queued to the senders.' },
} as const;

const BOUNCE_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'cancelled', 'inDelivery', 'dsns'],
  properties: { scope: SCOPE_SCHEMA, ...CANCELLED_PROPERTIES },
} as const;

type PauseBody = ExpiryFields & { scope: ScopeJson; reason: string };

/**
 * The operator's hold on the queue: POST /v1/queue/pause and /resume of a destination domain, an
 * egress pool, a tenant or an egress IP (src/engine/queue-pauses.ts: kept in the store, applied
 * by every node within seconds and at once by this one), GET /v1/queue/pauses, POST
 * /v1/queue/retry (due now) and /bounce (cancel what is queued), both in chunks
 * (src/engine/queue-operations.ts). Each change is audited with its scope as the target, and the
 * state before and after. A token of a tenant acts on, and sees the pauses of, its own tenant only.
 */
export function registerQueueOperationsRoutes(app: FastifyInstance, deps: QueueOperationsRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  const scopeOf = scopeReader(deps);
  const mayChangePause = pauseGuard(deps);
  const route = (method: 'GET' | 'POST', url: string, summary: string, answer: object, description: string) => ({
    ...v1Route({ summary, roles: rolesFor(method, url) ?? [], tags: ['queue'] }),
    querystring: NO_QUERY,
    response: { 200: jsonResponse(description, answer), ...problemResponses(...AUTH_PROBLEMS) },
  });

  app.post<{ Body: PauseBody }>('/v1/queue/pause', {
    schema: { ...route('POST', '/v1/queue/pause', 'Pause the mail of a domain, pool, tenant or egress IP', PAUSE_ANSWER, 'The pause in force, and the one it replaced.'), body: PAUSE_BODY },
    handler: async (request, reply) => {
      const scope = await scopeOf(request, reply);
      if (!scope || !(await mayChangePause(request, reply, scope))) return reply;
      const now = clock.now();
      const until = readExpiry(request.body, now, true);
      if ('error' in until) return sendInvalid(request, reply, until.error.path, until.error.message);
      const pause = { scope, reason: request.body.reason, by: request.principal!.name, createdAt: now, until: until.ms };
      const replaced = await deps.pauses.pause(pause);
      const answer = { pause: pauseJson(pause), replaced: replaced && pauseJson(replaced) };
      auditRequest(request, { target: describeQueueScope(scope), change: { before: answer.replaced, after: answer.pause } });
      return answer;
    },
  });

  app.post<{ Body: { scope: ScopeJson } }>('/v1/queue/resume', {
    schema: { ...route('POST', '/v1/queue/resume', 'End the pause of a domain, pool, tenant or egress IP', RESUME_ANSWER, 'The pause ended, if one was in force.'), body: SCOPE_BODY },
    handler: async (request, reply) => {
      const scope = await scopeOf(request, reply, { endsPause: true });
      if (!scope || !(await mayChangePause(request, reply, scope))) return reply;
      const ended = await deps.pauses.resume(scope, request.principal!.name);
      const answer = { ended: ended && pauseJson(ended) };
      auditRequest(request, { target: describeQueueScope(scope), change: { before: answer.ended, after: null } });
      return answer;
    },
  });

  app.get('/v1/queue/pauses', {
    schema: route('GET', '/v1/queue/pauses', 'The pauses in force', PAUSES_ANSWER, "Every pause in force on any node (a tenant's token: its tenant's), oldest first."),
    handler: async (request) => {
      const viewer = { principal: request.principal!, tokens: deps.tokens() };
      return { pauses: (await deps.pauses.list()).filter((p) => ownsScope(viewer.principal, p.scope)).map((p) => pauseJson(p, viewer)) };
    },
  });

  app.post<{ Body: { scope: ScopeJson } }>('/v1/queue/retry', {
    schema: { ...route('POST', '/v1/queue/retry', 'Make the queued mail of a domain, pool, tenant or egress IP due now', RETRY_ANSWER, 'How many queued recipients were made due now.'), body: SCOPE_BODY },
    handler: async (request, reply) => {
      const scope = await scopeOf(request, reply);
      if (!scope) return reply;
      allowLongWork(request);
      const retried = await deps.operations.retry(scope, request.principal!.name);
      auditRequest(request, { target: describeQueueScope(scope), change: { after: { retried } } });
      return { scope: scopeJson(scope), retried };
    },
  });

  app.post<{ Body: { scope: ScopeJson; reason: string; dsn: boolean } }>('/v1/queue/bounce', {
    schema: { ...route('POST', '/v1/queue/bounce', 'Cancel the queued mail of a domain, pool, tenant or egress IP', BOUNCE_ANSWER, 'What was cancelled, and what was left to finish.'), body: BOUNCE_BODY },
    handler: async (request, reply) => {
      const scope = await scopeOf(request, reply);
      if (!scope) return reply;
      const { reason, dsn } = request.body;
      allowLongWork(request);
      const result = await deps.operations.cancel(scope, { reason, dsn, by: request.principal!.name });
      auditRequest(request, { target: describeQueueScope(scope), change: { after: result } });
      return { scope: scopeJson(scope), ...result };
    },
  });
}

/**
 * Reads a request's scope: the scope, or null once its refusal is sent. A scope the caller does
 * not own is 403 before anything else is said of it (a tenant's token learns nothing of other
 * tenants); a tenant the configuration does not have is 400, except to end a pause still in force
 * (a tenant removed from the configuration with its mail paused must not stay held for good).
 */
function scopeReader(deps: Pick<QueueOperationsRouteDeps, 'pauses' | 'tenants' | 'pools'>) {
  return async (request: FastifyRequest<{ Body: { scope: ScopeJson } }>, reply: FastifyReply, options: { endsPause?: boolean } = {}): Promise<QueueScope | null> => {
    const scope = readScope(request.body.scope);
    if ('path' in scope) {
      sendInvalid(request, reply, scope.path, scope.message);
      return null;
    }
    auditRequest(request, { target: describeQueueScope(scope) });
    const principal = request.principal!;
    if (!ownsScope(principal, scope)) {
      const detail = `A token of tenant "${principal.tenant}" acts on that tenant's mail only: {"scope":{"tenant":"${principal.tenant}"}}`;
      sendProblem(reply, problem('FORBIDDEN', detail, { instance: pathOf(request) }));
      return null;
    }
    const unknown = unknownScope(deps, scope);
    if (unknown) {
      if (options.endsPause && (await deps.pauses.list()).some((p) => sameScope(p.scope, scope))) return scope;
      sendInvalid(request, reply, unknown.path, unknown.message);
      return null;
    }
    return scope;
  };
}

/** Why a tenant or pool scope names nothing the configuration has (mail of it could not exist), or null. */
function unknownScope(deps: Pick<QueueOperationsRouteDeps, 'tenants' | 'pools'>, scope: QueueScope): { path: string; message: string } | null {
  if (scope.kind === 'tenant' && !deps.tenants.get(scope.tenant)) {
    return { path: 'body.scope.tenant', message: `no tenant named ${JSON.stringify(scope.tenant)} in the configuration` };
  }
  if (scope.kind === 'pool') {
    const tenantPools = deps.tenants.names().flatMap((name) => deps.tenants.get(name)?.pools ?? []);
    const known = [...new Set([DEFAULT_POOL, ...deps.pools.pools(), ...tenantPools])];
    if (!known.includes(scope.pool)) return { path: 'body.scope.pool', message: `no pool named ${JSON.stringify(scope.pool)}; the pools: ${known.join(', ')}` };
  }
  return null;
}

/**
 * Whether the caller may replace or end the pause of `scope`, or false once the refusal is sent:
 * a pause the platform's staff (a token of no tenant) put on a tenant is theirs to lift, not the
 * tenant's. Read from the store as the caller asks; a pause made between the check and the
 * change is not seen, as with any two operators acting at once.
 */
function pauseGuard(deps: Pick<QueueOperationsRouteDeps, 'pauses' | 'tokens'>) {
  return async (request: FastifyRequest, reply: FastifyReply, scope: QueueScope): Promise<boolean> => {
    const tenant = request.principal!.tenant;
    if (tenant === null) return true;
    const current = (await deps.pauses.list()).find((p) => sameScope(p.scope, scope));
    if (!current || pausedByTenant(current, deps.tokens(), tenant)) return true;
    const detail = `The pause of ${describeQueueScope(scope)} was made by a token of no tenant (the platform's): only such a token may replace or end it`;
    sendProblem(reply, problem('FORBIDDEN', detail, { instance: pathOf(request) }));
    return false;
  };
}
