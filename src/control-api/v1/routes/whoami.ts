import type { FastifyInstance } from 'fastify';
import { API_ROLES } from '../../../config/api-schema.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';

const PRINCIPAL = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role', 'tenant'],
  properties: {
    name: { type: 'string', description: 'The token name from api.tokens[].name.' },
    role: { type: 'string', enum: [...API_ROLES] },
    tenant: { type: ['string', 'null'], description: 'The tenant the token belongs to; null for none.' },
  },
} as const;

/** GET /v1/whoami: the caller's token name, role and tenant; a script's first check of its token. */
export function registerWhoamiRoute(app: FastifyInstance): void {
  app.get('/v1/whoami', {
    schema: {
      ...v1Route({ summary: 'The calling token', roles: rolesFor('GET', '/v1/whoami') ?? [], tags: ['access'] }),
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The token that authenticated this request.', PRINCIPAL), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request) => {
      const { name, role, tenant } = request.principal!;
      return { name, role, tenant };
    },
  });
}
