import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiPrincipal } from '../../../access/api-token.ts';
import type { TenantLookup } from '../../../access/tenants.ts';
import { systemClock, type Clock } from '../../../clock.ts';
import type { Store } from '../../../storage/store.ts';
import type { WebhookChange, WebhookEventType } from '../../../storage/webhook-outbox.ts';
import { urlProblem } from '../../../webhooks/address-policy.ts';
import { newWebhookId, newWebhookSecret } from '../../../webhooks/signature.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { decodeWebhookCursor, encodeWebhookCursor } from '../cursor.ts';
import { readPageQuery } from '../page-query.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, PAGE_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { DESCRIPTION, EVENT_TYPES, ID_PARAMS, MAX_EVENTS, visibleWebhook, WEBHOOK, WEBHOOK_PAGE, WEBHOOK_URL, WEBHOOK_WITH_SECRET, webhookView } from './webhook-schemas.ts';

export interface WebhookRouteDeps {
  store: Pick<Store, 'createWebhook' | 'getWebhook' | 'listWebhooks' | 'updateWebhook' | 'deleteWebhook' | 'listWebhookDeliveries' | 'replayWebhookDelivery' | 'replayWebhookDeliveries'>;
  /** The configured tenants: an admin may register an endpoint for one of them. */
  tenants: TenantLookup;
  clock?: Clock;
  /** webhooks.allowPrivateNetworks: whether a URL may name a private address. */
  allowPrivateNetworks: boolean;
  /** webhooks.maxEndpointsPerTenant. */
  maxEndpointsPerTenant: number;
  /** Called when deliveries became due (an endpoint enabled, a replay) or may (one registered): the dispatcher looks at once. */
  onDue?: () => void;
}

const CREATE_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'eventTypes'],
  properties: {
    url: WEBHOOK_URL,
    eventTypes: EVENT_TYPES,
    description: DESCRIPTION,
    maxEventsPerRequest: MAX_EVENTS,
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "A configured tenant, for a token of no tenant (absent: mail of no tenant); a tenant's token registers for its own." },
  },
} as const;

const PATCH_BODY = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    url: WEBHOOK_URL,
    eventTypes: EVENT_TYPES,
    description: { ...DESCRIPTION, type: ['string', 'null'] },
    maxEventsPerRequest: MAX_EVENTS,
    enabled: { type: 'boolean', description: 'true enables a disabled endpoint (its held deliveries are due at once); false disables it (they are held).' },
  },
} as const;

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "This tenant's endpoints (a tenant's token lists its own only)." },
    ...PAGE_QUERY,
  },
} as const;

const SECRET_ANSWER = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'secret'],
  properties: { id: { type: 'string' }, secret: { type: 'string', description: 'The new signing secret, shown this once; the old one stops signing at once.' } },
} as const;

interface CreateBody {
  url: string;
  eventTypes: WebhookEventType[];
  description?: string;
  maxEventsPerRequest?: number;
  tenant?: string;
}
type PatchBody = Partial<Pick<CreateBody, 'url' | 'eventTypes' | 'maxEventsPerRequest'>> & { description?: string | null; enabled?: boolean };
type IdRequest = FastifyRequest<{ Params: { id: string } }>;

/**
 * /v1/webhooks: a tenant's endpoints. POST registers one (its signing secret made here and
 * answered once), GET lists and shows them, PATCH changes the URL, the events, the note, the
 * events per request or whether it is enabled, DELETE removes it with its history, rotate-secret
 * replaces the secret.
 * A tenant's token acts on its tenant's endpoints only; a token of no tenant on any, and alone on
 * those of mail of no tenant. Every change is audited, never with the secret.
 */
export function registerWebhookRoutes(app: FastifyInstance, deps: WebhookRouteDeps): void {
  const clock = deps.clock ?? systemClock;
  const schema = (method: string, url: string, summary: string) => v1Route({ summary, roles: rolesFor(method, url) ?? [], tags: ['webhooks'] });

  /** The endpoint of the request's id as its caller may know it, or the 404 already sent. */
  const find = async (request: IdRequest, reply: FastifyReply) => {
    const found = visibleWebhook(await deps.store.getWebhook(request.params.id), request.principal!);
    if (!found) void webhookNotFound(request, reply);
    return found;
  };

  app.post('/v1/webhooks', {
    schema: {
      ...schema('POST', '/v1/webhooks', 'Register a webhook endpoint'),
      querystring: NO_QUERY,
      body: CREATE_BODY,
      response: { 201: jsonResponse('The endpoint, with its signing secret (shown this once).', WEBHOOK_WITH_SECRET), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Body: CreateBody }>, reply: FastifyReply) => {
      const body = request.body;
      const tenant = tenantOf(request.principal!, body.tenant, deps.tenants);
      if (typeof tenant === 'object' && tenant !== null) return tenant.forbidden ? forbidden(request, reply, tenant.message) : sendInvalid(request, reply, 'body.tenant', tenant.message);
      const why = urlProblem(body.url, deps.allowPrivateNetworks);
      if (why) return sendInvalid(request, reply, 'body.url', why);
      // Checked before the insert: two creations at once may pass it together, by one endpoint.
      const max = deps.maxEndpointsPerTenant;
      if ((await deps.store.listWebhooks(tenant, null, max)).length >= max) {
        const whose = tenant === null ? 'mail of no tenant' : `tenant "${tenant}"`;
        return sendProblem(reply, problem('WEBHOOK_LIMIT_REACHED', `${whose} has ${max} webhook endpoints (webhooks.maxEndpointsPerTenant)`, { instance: pathOf(request) }));
      }
      const endpoint = {
        id: newWebhookId(), tenant, url: body.url, eventTypes: body.eventTypes, description: body.description ?? null,
        maxEventsPerRequest: body.maxEventsPerRequest ?? 1, secret: newWebhookSecret(), createdAt: clock.now(),
      };
      await deps.store.createWebhook(endpoint);
      // Nothing is due yet, but a dispatcher that had no endpoint to send to starts now.
      deps.onDue?.();
      const stored = (await deps.store.getWebhook(endpoint.id))!;
      auditRequest(request, { target: endpoint.id, change: { after: webhookView(stored) } });
      return reply.code(201).send({ ...webhookView(stored), secret: endpoint.secret });
    },
  });

  app.get('/v1/webhooks', {
    schema: {
      ...schema('GET', '/v1/webhooks', 'List webhook endpoints'),
      querystring: LIST_QUERY,
      response: { 200: jsonResponse('A page of endpoints by id; nextCursor is null on the last page.', WEBHOOK_PAGE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Querystring: { tenant?: string; cursor?: string; limit: number } }>, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, decodeWebhookCursor);
      if ('path' in page) return sendInvalid(request, reply, page.path, page.message);
      const own = request.principal!.tenant;
      if (own !== null && q.tenant !== undefined && q.tenant !== own) return forbidden(request, reply, `A token of tenant "${own}" sees that tenant's endpoints only`);
      const found = await deps.store.listWebhooks(own ?? q.tenant, page.after, q.limit + 1);
      const items = found.slice(0, q.limit);
      const nextCursor = found.length > q.limit ? encodeWebhookCursor(items.at(-1)!.id) : null;
      return { items: items.map(webhookView), nextCursor };
    },
  });

  app.get('/v1/webhooks/:id', {
    schema: {
      ...schema('GET', '/v1/webhooks/:id', 'One webhook endpoint'),
      params: ID_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The endpoint (never its secret).', WEBHOOK), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: IdRequest, reply: FastifyReply) => {
      const found = await find(request, reply);
      return found ? webhookView(found) : reply;
    },
  });

  app.patch('/v1/webhooks/:id', {
    schema: {
      ...schema('PATCH', '/v1/webhooks/:id', 'Change a webhook endpoint'),
      params: ID_PARAMS,
      querystring: NO_QUERY,
      body: PATCH_BODY,
      response: { 200: jsonResponse('The endpoint after the change.', WEBHOOK), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: FastifyRequest<{ Params: { id: string }; Body: PatchBody }>, reply: FastifyReply) => {
      auditRequest(request, { target: request.params.id });
      const before = await find(request, reply);
      if (!before) return reply;
      const body = request.body;
      const why = body.url === undefined ? null : urlProblem(body.url, deps.allowPrivateNetworks);
      if (why) return sendInvalid(request, reply, 'body.url', why);
      const change: WebhookChange = {};
      if (body.url !== undefined) change.url = body.url;
      if (body.eventTypes !== undefined) change.eventTypes = body.eventTypes;
      if (body.description !== undefined) change.description = body.description;
      if (body.maxEventsPerRequest !== undefined) change.maxEventsPerRequest = body.maxEventsPerRequest;
      if (body.enabled !== undefined) change.enabled = body.enabled;
      if (body.enabled === false) change.disabledReason = `disabled by ${request.principal!.name}`;
      const after = await deps.store.updateWebhook(before.id, change, clock.now());
      if (!after) return webhookNotFound(request, reply);
      if (!before.enabled && after.enabled) deps.onDue?.();
      auditRequest(request, { target: before.id, change: { before: webhookView(before), after: webhookView(after) } });
      return webhookView(after);
    },
  });

  app.delete('/v1/webhooks/:id', {
    schema: {
      ...schema('DELETE', '/v1/webhooks/:id', 'Remove a webhook endpoint and its delivery history'),
      params: ID_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The endpoint removed; its deliveries not yet sent are not sent.', WEBHOOK), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: IdRequest, reply: FastifyReply) => {
      auditRequest(request, { target: request.params.id });
      const found = await find(request, reply);
      if (!found) return reply;
      if (!(await deps.store.deleteWebhook(found.id))) return webhookNotFound(request, reply);
      auditRequest(request, { target: found.id, change: { before: webhookView(found) } });
      return webhookView(found);
    },
  });

  app.post('/v1/webhooks/:id/rotate-secret', {
    schema: {
      ...schema('POST', '/v1/webhooks/:id/rotate-secret', "Replace a webhook endpoint's signing secret"),
      params: ID_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The new secret, shown this once.', SECRET_ANSWER), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: IdRequest, reply: FastifyReply) => {
      auditRequest(request, { target: request.params.id });
      const found = await find(request, reply);
      if (!found) return reply;
      const secret = newWebhookSecret();
      if (!(await deps.store.updateWebhook(found.id, { secret }, clock.now()))) return webhookNotFound(request, reply);
      return { id: found.id, secret };
    },
  });
}

/**
 * The tenant an endpoint is registered for: a tenant's token, its own (naming another is
 * forbidden); a token of no tenant, the configured tenant it names, or none.
 */
function tenantOf(principal: ApiPrincipal, named: string | undefined, tenants: TenantLookup): string | null | { message: string; forbidden: boolean } {
  if (principal.tenant !== null) {
    if (named !== undefined && named !== principal.tenant) return { message: `A token of tenant "${principal.tenant}" registers endpoints for that tenant only`, forbidden: true };
    return principal.tenant;
  }
  if (named === undefined) return null;
  return tenants.get(named) ? named : { message: `not a configured tenant: ${JSON.stringify(named)}`, forbidden: false };
}

function forbidden(request: FastifyRequest, reply: FastifyReply, detail: string): FastifyReply {
  return sendProblem(reply, problem('FORBIDDEN', detail, { instance: pathOf(request) }));
}

export function webhookNotFound(request: IdRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, problem('WEBHOOK_NOT_FOUND', `No webhook endpoint ${request.params.id}`, { instance: pathOf(request) }));
}
