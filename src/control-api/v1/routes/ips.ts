import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isIP } from 'node:net';
import type { ApiPrincipal } from '../../../access/api-token.ts';
import type { TenantLookup } from '../../../access/tenants.ts';
import type { EgressPool } from '../../../ippool/egress-pool.ts';
import type { IpSnapshot, RestrictionSnapshot, WindowUsage } from '../../../ippool/pool-snapshot.ts';
import { pathOf, sendProblem } from '../../error-handler.ts';
import { problem } from '../../problem.ts';
import { rfc3339 } from '../message-view.ts';
import { rolesFor } from '../route-roles.ts';
import { AUTH_PROBLEMS, jsonResponse, NO_QUERY, problemResponses, v1Route } from '../schemas.ts';
import { IP_SCHEMA } from './ip-schema.ts';

export interface IpsRouteDeps {
  pool: Pick<EgressPool, 'snapshot'>;
  tenants: TenantLookup;
}

const IP_LIST = {
  type: 'object',
  additionalProperties: false,
  required: ['ips'],
  properties: { ips: { type: 'array', items: IP_SCHEMA, description: 'Every configured egress IP, in configuration order.' } },
} as const;

export const ADDRESS_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: { address: { type: 'string', description: 'An IPv4 or IPv6 address of `ips[]` (any spelling; `:` may be sent as is or as %3A).' } },
} as const;

/**
 * GET /v1/ips and GET /v1/ips/{address}: each egress IP as the pool selects with it now (its
 * snapshot, src/ippool/pool-snapshot.ts). Restrictions made by other nodes show once this node
 * has re-read pool state (every 10 s). A tenant's token sees the IPs of its pools only.
 */
export function registerIpsRoutes(app: FastifyInstance, deps: IpsRouteDeps): void {
  app.get('/v1/ips', {
    schema: {
      ...v1Route({ summary: 'Egress IPs and their state', roles: rolesFor('GET', '/v1/ips') ?? [], tags: ['ips'] }),
      querystring: NO_QUERY,
      response: { 200: jsonResponse('Every egress IP with weights, warm-up, reputation and restrictions.', IP_LIST), ...problemResponses(...AUTH_PROBLEMS) },
    },
    handler: async (request) => ({ ips: (await deps.pool.snapshot()).filter(visibleTo(deps.tenants, request.principal!)).map(ipJson) }),
  });

  app.get<{ Params: { address: string } }>('/v1/ips/:address', {
    schema: {
      ...v1Route({ summary: 'One egress IP and its state', roles: rolesFor('GET', '/v1/ips/:address') ?? [], tags: ['ips'] }),
      params: ADDRESS_PARAMS,
      querystring: NO_QUERY,
      response: { 200: jsonResponse('The egress IP.', IP_SCHEMA), ...problemResponses(...AUTH_PROBLEMS, 404) },
    },
    handler: async (request, reply) => {
      const { address } = request.params;
      if (!isAddressParam(address)) return refuseAddress(request, reply);
      const [ip] = await deps.pool.snapshot({ address });
      if (!ip || !visibleTo(deps.tenants, request.principal!)(ip)) return unknownIp(request, reply);
      return ipJson(ip);
    },
  });
}

/** Whether the caller sees an IP: a token of a tenant sees the IPs of that tenant's pools only. */
function visibleTo(tenants: TenantLookup, principal: ApiPrincipal): (ip: IpSnapshot) => boolean {
  const pools = principal.tenant === null ? null : (tenants.get(principal.tenant)?.pools ?? null);
  return (ip) => pools === null || pools.includes(ip.pool);
}

/** Whether an {address} parameter is an IP address; a zone id (fe80::1%eth0) names an interface, never an egress address. */
export function isAddressParam(address: string): boolean {
  return isIP(address) !== 0 && !address.includes('%');
}

/** The 400 for an {address} parameter that is not an IP address. */
export function refuseAddress(request: FastifyRequest<{ Params: { address: string } }>, reply: FastifyReply): FastifyReply {
  const { address } = request.params;
  const errors = [{ path: 'params.address', message: 'not an IP address' }];
  return sendProblem(reply, problem('INVALID_REQUEST', `params.address: not an IP address: ${JSON.stringify(address)}`, { errors, instance: pathOf(request) }));
}

/** The 404 for an {address} that is no configured egress IP. */
export function unknownIp(request: FastifyRequest<{ Params: { address: string } }>, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, problem('NOT_FOUND', `No egress IP ${request.params.address} is configured (ips[].address)`, { instance: pathOf(request) }));
}

/** A time the API may not have, as it shows times (RFC 3339), or null. */
export const rfc3339OrNull = (ms: number | null) => (ms === null ? null : rfc3339(ms));

/** A warm-up counting window as the API shows it. */
export function usageJson(w: WindowUsage): object {
  return { cap: w.cap, used: w.used, windowStart: rfc3339(w.windowStart), windowEnd: rfc3339(w.windowEnd) };
}

export function restrictionJson(r: RestrictionSnapshot): object {
  return { ...r, until: rfc3339(r.until) };
}

/** The snapshot as the API shows it: times in RFC 3339. */
export function ipJson(ip: IpSnapshot): Record<string, unknown> {
  return {
    address: ip.address,
    hostname: ip.hostname,
    pool: ip.pool,
    weight: ip.weight,
    weightOverride: ip.weightOverride && { ...ip.weightOverride, setAt: rfc3339(ip.weightOverride.setAt) },
    lastSentAt: rfc3339OrNull(ip.lastSentAt),
    warmupOverride: ip.warmupOverride && { ...ip.warmupOverride, start: rfc3339(ip.warmupOverride.start), setAt: rfc3339(ip.warmupOverride.setAt) },
    warmup: ip.warmup && {
      ...ip.warmup,
      configuredStart: rfc3339(ip.warmup.configuredStart),
      restartedAt: rfc3339OrNull(ip.warmup.restartedAt),
      start: rfc3339(ip.warmup.start),
    },
    providers: ip.providers.map((p) => ({ ...p, warmup: p.warmup && { hourly: usageJson(p.warmup.hourly), daily: usageJson(p.warmup.daily) } })),
    restrictions: ip.restrictions.map(restrictionJson),
    recoveries: ip.recoveries.map((r) => ({ ...r, endedAt: rfc3339(r.endedAt), endsAt: rfc3339OrNull(r.endsAt) })),
    blocklists: ip.blocklists.map(({ ip: _, firstListedAt, lastCheckedAt, ...rest }) => ({ ...rest, firstListedAt: rfc3339OrNull(firstListedAt), lastCheckedAt: rfc3339OrNull(lastCheckedAt) })),
  };
}
