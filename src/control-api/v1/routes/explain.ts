import type { FastifyInstance } from 'fastify';
import type { RouteExplainer, RouteExplanation } from '../../../engine/route-explanation.ts';
import type { IpCheck } from '../../../ippool/gate-description.ts';
import { splitAddress } from '../../../mail/address.ts';
import { sendInvalid } from '../../error-handler.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, problemResponses, v1Route } from '../schemas.ts';
import { EXPLAIN_QUERY, EXPLANATION } from './explain-schema.ts';
import { rfc3339 } from '../message-view.ts';
import { restrictionJson, rfc3339OrNull, usageJson } from './ips.ts';

export interface ExplainRouteDeps {
  explainer: RouteExplainer;
}

type Query = { sender: string; recipient: string; pool?: string; user?: string; tenant?: string };

/**
 * GET /v1/explain?sender=&recipient=[&pool=&user=&tenant=]: the route a message would take now and
 * why (src/engine/route-explanation.ts), read without side effects. A lookup failure is part of
 * the answer, never an error of the request. A tenant (named, or the user's) confines the pool as
 * at acceptance, and the answer says whether its sender domains allow the sender.
 */
export function registerExplainRoute(app: FastifyInstance, deps: ExplainRouteDeps): void {
  app.get<{ Querystring: Query }>('/v1/explain', {
    schema: {
      ...v1Route({ summary: 'Why a message would take the route it would take', roles: rolesFor('GET', '/v1/explain') ?? [], tags: ['explain'] }),
      querystring: EXPLAIN_QUERY,
      response: { 200: jsonResponse('The pool, route, egress IPs, DKIM signature and return path, each with why.', EXPLANATION), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request, reply) => {
      const { sender, recipient, pool = null, user = null, tenant = null } = request.query;
      for (const [name, value] of [['sender', sender], ['recipient', recipient]] as const) {
        if (!splitAddress(value) || /[\s\u0000-\u001f\u007f]/.test(value)) return sendInvalid(request, reply, `querystring.${name}`, `not an address (local@domain): ${JSON.stringify(value)}`);
      }
      const answer = await deps.explainer.explain({ sender, recipient, pool, user, tenant });
      if ('refused' in answer) {
        const known = answer.known.join(', ') || 'none';
        switch (answer.refused) {
          case 'unknown-user':
            return sendInvalid(request, reply, 'querystring.user', `no SMTP user ${JSON.stringify(user)} (smtp.users[].username: ${known})`);
          case 'unknown-pool':
            return sendInvalid(request, reply, 'querystring.pool', `no pool ${JSON.stringify(pool)} (pools with egress IPs: ${known})`);
          case 'unknown-tenant':
            return sendInvalid(request, reply, 'querystring.tenant', `no tenant ${JSON.stringify(tenant)} (tenants: ${known})`);
        }
      }
      return explanationJson(answer);
    },
  });
}

/** The explanation as the API shows it: times in RFC 3339. */
function explanationJson(e: RouteExplanation): object {
  return {
    ...e,
    at: rfc3339(e.at),
    route: {
      ...e.route,
      held: e.route.held && { ...e.route.held, since: rfc3339(e.route.held.since), until: rfc3339(e.route.held.until) },
      tls: e.route.tls && { ...e.route.tls, mtaSts: e.route.tls.mtaSts && { ...e.route.tls.mtaSts, expiresAt: rfc3339(e.route.tls.mtaSts.expiresAt) } },
    },
    egress: e.egress && { ...e.egress, ips: e.egress.ips.map((ip) => ({ ...ip, checks: ip.checks.map(checkJson) })) },
  };
}

function checkJson(check: IpCheck): object {
  const { restriction, warmup } = check;
  return {
    ...check,
    retryAt: rfc3339OrNull(check.retryAt),
    restriction: restriction && restrictionJson(restriction),
    warmup: warmup && { ...warmup, start: rfc3339(warmup.start), hourly: warmup.hourly && usageJson(warmup.hourly), daily: warmup.daily && usageJson(warmup.daily) },
  };
}
