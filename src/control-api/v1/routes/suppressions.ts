import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiPrincipal } from '../../../access/api-token.ts';
import type { TenantLookup } from '../../../access/tenants.ts';
import { systemClock, type Clock } from '../../../clock.ts';
import type { Metrics } from '../../../observability/metrics.ts';
import type { Store } from '../../../storage/store.ts';
import { SUPPRESSION_REASONS, type NewSuppression, type SuppressionReason, type SuppressionRecord } from '../../../storage/suppressions.ts';
import { pathOf, sendInvalid, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { auditRequest } from '../audit-trail.ts';
import { decodeSuppressionCursor, encodeSuppressionCursor } from '../cursor.ts';
import { eventView } from '../message-view.ts';
import { readPageQuery } from '../page-query.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, PAGE_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { readEntry, tenantOf, type InputProblem } from '../suppression-input.ts';
import { visibleMessage } from './messages.ts';
import { ADD_BODY, ADD_RESULT, ADDRESS_PARAMS, addedView, ENTRY, ENTRY_DETAIL, ENTRY_PAGE, entryView, TENANT_QUERY } from './suppression-schemas.ts';

export interface SuppressionRouteDeps {
  store: Pick<
    Store,
    'addSuppressions' | 'getSuppression' | 'listSuppressions' | 'deleteSuppression' | 'getMessageInfo' | 'listEvents' | 'listRecipients'
  >;
  /** The configured tenants: an entry is added only to a tenant's list that exists. */
  tenants: TenantLookup;
  metrics: Metrics;
  clock?: Clock;
}

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { ...TENANT_QUERY, description: `${TENANT_QUERY.description} Absent: every tenant's (a tenant's token: its own).` },
    reason: { type: 'string', enum: [...SUPPRESSION_REASONS] },
    address: { type: 'string', minLength: 3, maxLength: 320, description: 'The entries of this address (case ignored).' },
    since: { type: 'string', format: 'date-time', description: 'Created at or after (RFC 3339).' },
    until: { type: 'string', format: 'date-time', description: 'Created before (RFC 3339).' },
    ...PAGE_QUERY,
  },
} as const;

interface ListQuery {
  tenant?: string;
  reason?: SuppressionReason;
  address?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit: number;
}

const ONE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { tenant: { ...TENANT_QUERY, description: `${TENANT_QUERY.description} Absent: mail of no tenant (a tenant's token: its own).` } },
} as const;

type AddressRequest = FastifyRequest<{ Params: { address: string }; Querystring: { tenant?: string } }>;
type NewEntryBody = { address: string; reason?: SuppressionReason; expiresAt?: string; expiresIn?: string; tenant?: string | null };

/**
 * The suppression list over the API: GET /v1/suppressions (newest first, by cursor), POST (one
 * entry or up to 1,000), GET and DELETE /v1/suppressions/{address} (a DELETE of an address not
 * on the list answers `deleted: null`, so a retried one is no error). A tenant's token acts on its
 * own tenant's list only; the others name a tenant (`tenant`, empty for mail of no tenant). The
 * changes are audited. Bulk files: suppression-files.ts (import, export).
 */
export function registerSuppressionRoutes(app: FastifyInstance, deps: SuppressionRouteDeps): void {
  const clock = deps.clock ?? systemClock;

  app.get('/v1/suppressions', {
    schema: {
      ...v1Route({ summary: 'List the suppression list, newest first', roles: rolesFor('GET', '/v1/suppressions') ?? [], tags: ['suppressions'] }),
      querystring: LIST_QUERY,
      response: { 200: jsonResponse('A page of entries in force; nextCursor is null on the last page.', ENTRY_PAGE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Querystring: ListQuery }>, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, decodeSuppressionCursor);
      if ('path' in page) return sendInvalid(request, reply, page.path, page.message);
      const whose = tenantOf(request.principal!, q.tenant, { path: 'querystring.tenant', otherwise: null });
      if ('problem' in whose) return refuse(request, reply, whose.problem);
      const filters = { tenant: whose.tenant, reason: q.reason ?? null, address: q.address ?? null, since: page.since, until: page.until, now: clock.now() };
      // One more than asked says whether another page follows, without an empty last page.
      const found = await deps.store.listSuppressions(filters, page.after, q.limit + 1);
      const items = found.slice(0, q.limit);
      const last = items.at(-1);
      const nextCursor = found.length > q.limit && last ? encodeSuppressionCursor(last) : null;
      return { items: items.map(entryView), nextCursor };
    },
  });

  app.post('/v1/suppressions', {
    schema: {
      ...v1Route({ summary: 'Add addresses to the suppression list', roles: rolesFor('POST', '/v1/suppressions') ?? [], tags: ['suppressions'] }),
      body: ADD_BODY,
      response: { 200: jsonResponse('Written; each replaces the entry its tenant had for the address.', ADD_RESULT), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Body: NewEntryBody | NewEntryBody[] }>, reply: FastifyReply) => {
      const single = !Array.isArray(request.body);
      const given = Array.isArray(request.body) ? request.body : [request.body];
      const now = clock.now();
      const source = { kind: 'api' as const, actor: request.principal!.name };
      const entries: NewSuppression[] = [];
      for (const [i, body] of given.entries()) {
        const at = single ? 'body' : `body[${i}]`;
        const whose = tenantOf(request.principal!, body.tenant, { path: `${at}.tenant`, otherwise: '', tenants: deps.tenants });
        if ('problem' in whose) return refuse(request, reply, whose.problem);
        const read = readEntry(body, { tenant: whose.tenant, now, source, defaultReason: 'manual', at });
        if ('problem' in read) return refuse(request, reply, read.problem);
        entries.push(read.entry);
      }
      const written = await deps.store.addSuppressions(entries);
      for (const e of entries) deps.metrics.suppressionsAdded.inc({ reason: e.reason, source: 'api' });
      const views = entries.map(addedView);
      auditRequest(request, single ? { target: entries[0]!.address, change: { after: views[0] } } : { target: `${entries.length} addresses`, change: { after: { written } } });
      return { written, entries: views };
    },
  });

  app.get('/v1/suppressions/:address', {
    schema: {
      ...v1Route({ summary: 'One entry of the suppression list and the attempt that caused it', roles: rolesFor('GET', '/v1/suppressions/:address') ?? [], tags: ['suppressions'] }),
      params: ADDRESS_PARAMS,
      querystring: ONE_QUERY,
      response: { 200: jsonResponse('The entry in force, with the message and attempts its source names.', ENTRY_DETAIL), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request: AddressRequest, reply: FastifyReply) => {
      const whose = tenantOf(request.principal!, request.query.tenant, { path: 'querystring.tenant', otherwise: '' });
      if ('problem' in whose) return refuse(request, reply, whose.problem);
      const entry = await deps.store.getSuppression(whose.tenant, request.params.address, clock.now());
      if (!entry) return notFound(request, reply);
      return { ...entryView(entry), ...(await sourceOf(deps, entry, request.principal!)) };
    },
  });

  app.delete('/v1/suppressions/:address', {
    schema: {
      ...v1Route({ summary: 'Remove an address from the suppression list', roles: rolesFor('DELETE', '/v1/suppressions/:address') ?? [], tags: ['suppressions'] }),
      params: ADDRESS_PARAMS,
      querystring: ONE_QUERY,
      response: {
        200: jsonResponse(
          'Removed (its mail is accepted again), or there was none: `deleted` is null, so a repeated request answers alike.',
          { type: 'object', additionalProperties: false, required: ['deleted'], properties: { deleted: { ...ENTRY, type: ['object', 'null'] } } },
        ),
        ...problemResponses(...AUTH_PROBLEMS),
      },
    },
    handler: async (request: AddressRequest, reply: FastifyReply) => {
      const whose = tenantOf(request.principal!, request.query.tenant, { path: 'querystring.tenant', otherwise: '' });
      if ('problem' in whose) return refuse(request, reply, whose.problem);
      const { address } = request.params;
      // Expired entries not purged yet count: they are removed all the same.
      const entry = await deps.store.getSuppression(whose.tenant, address, Number.MIN_SAFE_INTEGER);
      const deleted = entry && (await deps.store.deleteSuppression(whose.tenant, address)) ? entryView(entry) : null;
      auditRequest(request, { target: address, change: { before: deleted, after: null } });
      return { deleted };
    },
  });
}

/** A 400 naming the request's place, or a 403 for another tenant's list. */
export function refuse(request: FastifyRequest, reply: FastifyReply, p: InputProblem): FastifyReply {
  if (p.forbidden) return sendProblem(reply, problem('FORBIDDEN', p.message, { instance: pathOf(request) }));
  return sendInvalid(request, reply, p.path, p.message);
}

function notFound(request: AddressRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, problem('SUPPRESSION_NOT_FOUND', `No entry for ${request.params.address} on this list`, { instance: pathOf(request) }));
}

/**
 * The message an entry's source names and that message's attempts for the address, while the
 * queue keeps them and the caller may see them (a tenant's token: its tenant's messages).
 */
async function sourceOf(deps: SuppressionRouteDeps, entry: SuppressionRecord, principal: ApiPrincipal) {
  const source = entry.source as { messageId?: unknown; recipientId?: unknown } | null;
  const messageId = typeof source?.messageId === 'string' ? source.messageId : null;
  const message = messageId === null ? null : visibleMessage(await deps.store.getMessageInfo(messageId), principal);
  if (!message) return { message: null, events: [] };
  const [recipients, events] = await Promise.all([deps.store.listRecipients(message.id), deps.store.listEvents(message.id)]);
  const address = entry.address?.toLowerCase();
  const ids = new Set(
    recipients.filter((r) => (typeof source!.recipientId === 'number' ? r.recipientId === source!.recipientId : r.recipient.toLowerCase() === address)).map((r) => r.recipientId),
  );
  return {
    message: { id: message.id, sender: message.sender, createdAt: new Date(message.createdAt).toISOString() },
    events: events.filter((e) => ids.has(e.recipientId)).map(eventView),
  };
}
