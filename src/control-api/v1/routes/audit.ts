import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog, AuditRecord } from '../../../storage/store.ts';
import { sendInvalid } from '../../error-handler.ts';
import { decodeAuditCursor, encodeAuditCursor } from '../cursor.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, PAGE_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { readPageQuery } from '../page-query.ts';

export interface AuditRouteDeps {
  store: Pick<AuditLog, 'listAudit'>;
}

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    actor: { type: 'string', minLength: 1, maxLength: 200, description: 'The token name (api.tokens[].name).' },
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "Requests made with a token of this tenant." },
    route: { type: 'string', minLength: 1, maxLength: 500, description: 'The route pattern, e.g. `/v1/domains/:domain/check`.' },
    status: { type: 'integer', minimum: 100, maximum: 599, description: 'The HTTP status answered.' },
    outcome: { type: 'string', minLength: 1, maxLength: 100, description: 'The problem code answered (`AUTH_FAILED`, `FORBIDDEN`, ...), or `OK`.' },
    since: { type: 'string', format: 'date-time', description: 'At or after (RFC 3339).' },
    until: { type: 'string', format: 'date-time', description: 'Before (RFC 3339).' },
    ...PAGE_QUERY,
  },
} as const;

interface ListQuery {
  actor?: string;
  tenant?: string;
  route?: string;
  status?: number;
  outcome?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit: number;
}

const NULLABLE_STRING = { type: ['string', 'null'] } as const;

const ENTRY = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'at', 'actor', 'tenant', 'clientAddress', 'method', 'route', 'target', 'change', 'status', 'outcome'],
  properties: {
    id: { type: 'integer', description: 'Grows with each entry.' },
    at: { type: 'string', format: 'date-time', description: 'When the request was answered.' },
    actor: { ...NULLABLE_STRING, description: 'The token name; null when no valid token was given.' },
    tenant: { ...NULLABLE_STRING, description: "The token's tenant." },
    clientAddress: { type: 'string' },
    method: { type: 'string' },
    route: { type: 'string', description: 'The route pattern.' },
    target: { ...NULLABLE_STRING, description: 'What the request acted on (a domain, an IP, ...), else the request path.' },
    change: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { before: {}, after: {} },
      description: 'The state before and after, for a request that changed one; null otherwise.',
    },
    status: { type: 'integer', description: 'The HTTP status answered.' },
    outcome: { type: 'string', description: 'The problem code answered, or `OK`.' },
  },
} as const;

const AUDIT_PAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: ENTRY },
    nextCursor: { ...NULLABLE_STRING, description: 'Pass as `cursor` for the next page; null on the last.' },
  },
} as const;

/**
 * GET /v1/audit: the audit log, newest first, filtered, by cursor. Admin only (admins belong to no
 * tenant, so nothing here is confined).
 */
export function registerAuditRoute(app: FastifyInstance, deps: AuditRouteDeps): void {
  app.get('/v1/audit', {
    schema: {
      ...v1Route({ summary: 'The audit log, newest first', roles: rolesFor('GET', '/v1/audit') ?? [], tags: ['access'] }),
      querystring: LIST_QUERY,
      response: { 200: jsonResponse('A page of audit entries; nextCursor is null on the last page.', AUDIT_PAGE), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request: FastifyRequest<{ Querystring: ListQuery }>, reply: FastifyReply) => {
      const q = request.query;
      const page = readPageQuery(q, decodeAuditCursor);
      if ('path' in page) return sendInvalid(request, reply, page.path, page.message);
      const filters = {
        actor: q.actor ?? null,
        route: q.route ?? null,
        status: q.status ?? null,
        outcome: q.outcome ?? null,
        since: page.since,
        until: page.until,
        tenant: q.tenant ?? null,
      };
      // One more than asked says whether another page follows, without an empty last page.
      const found = await deps.store.listAudit(filters, page.after, q.limit + 1);
      const items = found.slice(0, q.limit);
      const last = items.at(-1);
      const nextCursor = found.length > q.limit && last ? encodeAuditCursor({ at: last.at, id: last.id }) : null;
      return { items: items.map(entryJson), nextCursor };
    },
  });
}

function entryJson(entry: AuditRecord): object {
  return { ...entry, at: new Date(entry.at).toISOString() };
}
