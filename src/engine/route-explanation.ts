import type { Clock } from '../clock.ts';
import type { EgressPool } from '../ippool/egress-pool.ts';
import { tenantMaySend, type Tenant, type TenantLookup } from '../access/tenants.ts';
import { DEFAULT_POOL, POOL_HEADER, type PoolAssigner, type PoolAssignment } from '../ippool/pool-assignment.ts';
import type { PoolExplanation } from '../ippool/pool-explanation.ts';
import { domainOf } from '../mail/address.ts';
import type { SenderExplanation } from '../sender-domains/sender-explanation.ts';
import type { DeadSites } from './dead-sites.ts';
import type { NextHop, Router } from './routing.ts';
import type { TlsExplanation, TlsPolicies } from './tls/tls-policies.ts';

/**
 * The route a message would take now and why (GET /v1/explain): its pool and the rule that chose
 * it, the next hops (a configured route or the MX list) through the daemon's own router and
 * resolver, the destination site and its provider, whether the site is held as unreachable, each
 * egress IP of the pool with every reason it may not send now, and the DKIM domain and return
 * path the mail would carry. Every answer comes from the code that decides (pool assignment,
 * routing, the pool's gates, the signer's rule), read without side effects: no token, warm-up
 * count, probe or hold is spent or changed. A lookup failure is part of the answer.
 */

export interface ExplainRequest {
  sender: string;
  recipient: string;
  /** The pool the message asks for: its X-Rookery-Pool header (honoured when its user may use the pool). */
  pool: string | null;
  /** The SMTP user that submits it (smtp.users[].username); null: a trusted network's client, or none. */
  user: string | null;
  /** The tenant it is sent for; null: the user's tenant, or none. */
  tenant: string | null;
}

/** The tenant a message is sent for, and whether it may use this sender. */
export interface TenantChoice {
  name: string;
  senderAllowed: boolean;
  detail: string;
}

export interface PoolChoice {
  name: string;
  /** The rule that chose it: the message's request (header), its user's pool, its sender's domain, or the default. */
  rule: PoolAssignment['source'];
  requested: string | null;
  /** The requested pool when it was not honoured. */
  refused: string | null;
  detail: string;
}

export interface RouteChoice {
  /** `route`: a delivery.routes entry; `mx`: the domain's MX records (or the domain itself, or an address literal); null when it failed. */
  via: 'route' | 'mx' | null;
  site: string | null;
  provider: string | null;
  /** In the order they would be tried now (hosts of equal preference are shuffled on each lookup). */
  nextHops: NextHop[];
  /** Why no route was found (no such domain, a null MX, a DNS failure): the recipient would be deferred or bounced with it. */
  error: { disposition: 'transient' | 'permanent'; enhanced: string | null; message: string } | null;
  /** The site is held because no egress IP can reach it (a dead destination): its mail waits for a probe to get through. */
  held: { since: number; until: number; reason: string } | null;
  /** The TLS the domain's mail would be held to (delivery.tls, tlsPolicies, its cached MTA-STS policy); null without a route or TLS policies. */
  tls: TlsExplanation | null;
}

export interface RouteExplanation {
  at: number;
  sender: string;
  recipient: string;
  /** The tenant it is sent for; null for none. */
  tenant: TenantChoice | null;
  pool: PoolChoice;
  route: RouteChoice;
  /** The pool's egress IPs toward the site; null when there is no route, hence no site to judge them for. */
  egress: PoolExplanation | null;
  dkim: SenderExplanation['dkim'];
  returnPath: SenderExplanation['returnPath'];
}

/** Why a request cannot be explained: it names a user, a pool or a tenant the configuration does not have. */
export type ExplainRefusal = { refused: 'unknown-user' | 'unknown-pool' | 'unknown-tenant'; known: readonly string[] };

export interface RouteExplainerDeps {
  router: Pick<Router, 'resolve'>;
  pool: Pick<EgressPool, 'explain' | 'pools'>;
  sites: Pick<DeadSites, 'heldSite'>;
  /** The TLS of each domain (read only: no policy is fetched). */
  tls?: Pick<TlsPolicies, 'explain'>;
  /** The pool assignment of the queue (poolAssignerFor of the configuration). */
  assignPool: PoolAssigner;
  tenants: TenantLookup;
  /** The SMTP users (smtp.users). */
  users: ReadonlyArray<{ username: string; tenant?: string | undefined }>;
  /** What the sender's mail would carry (sender-domains/sender-explanation.ts). */
  sender(sender: string): SenderExplanation;
  clock: Clock;
}

export interface RouteExplainer {
  explain(request: ExplainRequest): Promise<RouteExplanation | ExplainRefusal>;
}

export function createRouteExplainer(deps: RouteExplainerDeps): RouteExplainer {
  return {
    async explain(request) {
      const { user, pool: requested } = request;
      const known = deps.users.find((u) => u.username === user);
      if (user !== null && !known) return { refused: 'unknown-user', known: deps.users.map((u) => u.username) };
      const pools = [...new Set([DEFAULT_POOL, ...deps.pool.pools()])];
      if (requested !== null && !pools.includes(requested)) return { refused: 'unknown-pool', known: pools };
      // As the queue does: the user's tenant, unless the request names one.
      const tenantName = request.tenant ?? known?.tenant ?? null;
      const tenant = tenantName === null ? null : deps.tenants.get(tenantName);
      if (tenant === undefined) return { refused: 'unknown-tenant', known: deps.tenants.names() };
      const at = deps.clock.now();
      const assignment = deps.assignPool({ header: requested, submitter: { source: 'smtp', name: user }, tenant, sender: request.sender });
      const route = await routeOf(domainOf(request.recipient), deps, at);
      const egress = route.site === null ? null : await deps.pool.explain({ pool: assignment.pool, site: route.site });
      const { dkim, returnPath } = deps.sender(request.sender);
      return {
        at,
        sender: request.sender,
        recipient: request.recipient,
        tenant: tenant && tenantChoice(tenant, request.sender),
        pool: poolChoice(assignment, request),
        route: { ...route, provider: egress?.provider ?? null },
        egress,
        dkim,
        returnPath,
      };
    },
  };
}

async function routeOf(domain: string, deps: RouteExplainerDeps, now: number): Promise<Omit<RouteChoice, 'provider'>> {
  const failed = (error: RouteChoice['error']) => ({ via: null, site: null, nextHops: [], error, held: null, tls: null });
  try {
    const route = await deps.router.resolve(domain);
    if (!route.ok) return failed({ disposition: route.outcome.disposition === 'permanent' ? 'permanent' : 'transient', enhanced: route.outcome.enhanced, message: route.outcome.response });
    const via = route.site.startsWith('route:') ? 'route' : 'mx';
    const tls = deps.tls ? await deps.tls.explain(domain, route.viaMx === true, now) : null;
    return { via, site: route.site, nextHops: route.hops, error: null, held: deps.sites.heldSite(route.site, now), tls };
  } catch (err) {
    // The router answers lookup failures itself; anything thrown is reported as one too, never a 500.
    return failed({ disposition: 'transient', enhanced: '4.4.3', message: `routing ${domain} failed: ${(err as Error).message}` });
  }
}

function tenantChoice(tenant: Tenant, sender: string): TenantChoice {
  const senderAllowed = tenantMaySend(tenant, sender);
  const domains = tenant.senderDomains.join(', ');
  const detail = senderAllowed ? `tenant ${tenant.name} may send as ${sender} (senderDomains: ${domains})` : `tenant ${tenant.name} may not send as ${sender}: refused at acceptance (senderDomains: ${domains})`;
  return { name: tenant.name, senderAllowed, detail };
}

function poolChoice(assignment: PoolAssignment, request: ExplainRequest): PoolChoice {
  const { pool, source, refusedHeader } = assignment;
  const domain = domainOf(request.sender);
  const reasons = {
    header: `the message asks for it (${POOL_HEADER}) and user ${request.user} may use it (smtp.users[].pool, pools)`,
    user: `the pool of user ${request.user} (smtp.users[].pool)`,
    sender: `pools.${pool}.senders covers the sender's domain ${domain}`,
    default: `no pool of its user, and no pools.*.senders covers ${domain}`,
    tenant: `the first of its tenant's pools (tenants.*.pools): the pool otherwise chosen is not one of them`,
  };
  const refusal =
    refusedHeader === null ? '' : request.user === null ? `; ${POOL_HEADER}: ${refusedHeader} is ignored: only a user that may use a pool can ask for it` : `; ${POOL_HEADER}: ${refusedHeader} is ignored: user ${request.user} may not use it`;
  return { name: pool, rule: source, requested: request.pool, refused: refusedHeader, detail: `pool ${pool}: ${reasons[source]}${refusal}` };
}
