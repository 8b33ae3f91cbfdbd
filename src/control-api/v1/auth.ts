import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { ApiPrincipal, TokenDirectory } from '../../access/api-token.ts';
import type { ApiRole } from '../../config/api-schema.ts';
import { pathOf, recordedPath, sendProblem } from '../error-handler.ts';
import { problem } from '../problem.ts';
import { rolesFor, TENANT_ROUTES } from './route-roles.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token that authenticated a /v1 request; null before authentication and elsewhere. */
    principal: ApiPrincipal | null;
  }
}

/** A limiter as @fastify/rate-limit's createRateLimit makes it: counts a request, or only reads the count. */
export type FailureLimiter = (request: FastifyRequest, options?: { increment?: boolean }) => Promise<{ isAllowed: true } | { isAllowed: false; remaining: number; ttlInSeconds: number; isExceeded: boolean }>;

export interface V1AuthDeps {
  /** The tokens in effect, asked at each request. */
  tokens: () => TokenDirectory;
  /** Counts failed authentications per client address (IPv6: per /64). */
  failures: FailureLimiter;
  /** The roles allowed on a route; default the table of route-roles.ts. */
  routeRoles?: (method: string, url: string) => readonly ApiRole[] | undefined;
  /** The routes a token of a tenant may call ("GET /v1/messages"); default TENANT_ROUTES. */
  tenantRoutes?: ReadonlySet<string>;
}

/** Who may call one method of a route. */
interface Access {
  roles: readonly ApiRole[];
  /** Whether a token bound to a tenant may. */
  tenants: boolean;
}

const REALM = 'Bearer realm="rookery"';

/**
 * Puts bearer authentication and the role check in front of every /v1 route registered in
 * `app`'s context, and refuses to register a /v1 route the role table does not list. Each
 * guarded route is added to `guarded`, which the control API checks before it listens (no /v1
 * route may be registered around this plugin).
 *
 * Order of the checks: a missing token 401; a wrong token 401 and counted, or 429 once its
 * address has failed too often (further guesses are not even checked); a valid token passes
 * whatever its address did before, so someone sharing the address (every local process on a
 * loopback listener, every client behind one proxy) cannot lock a right token out; then a role
 * that does not include the route 403, and a tenant's token on a route not for tenants 403. It
 * runs at onRequest, before the body is read or validated, so nothing of an unauthenticated
 * request is parsed.
 */
export function protectV1Routes(app: FastifyInstance, deps: V1AuthDeps, guarded: WeakSet<RouteOptions>): void {
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route: RouteOptions) => {
    if (!isV1Path(route.url)) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const accessByMethod = new Map<string, Access>();
    for (const method of methods) {
      // Fastify adds a HEAD route for each GET; it runs the GET handler, so it needs the same roles.
      const asked = method === 'HEAD' ? 'GET' : method;
      const roles = (deps.routeRoles ?? rolesFor)(asked, route.url);
      if (!roles) throw new Error(`${method} ${route.url} is not in the /v1 role table (src/control-api/v1/route-roles.ts)`);
      accessByMethod.set(method, { roles, tenants: (deps.tenantRoutes ?? TENANT_ROUTES).has(`${asked} ${route.url}`) });
    }
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [authenticateFor(accessByMethod, deps), ...existing];
    guarded.add(route);
  });
}

/** Whether a route path belongs to the versioned API. */
export function isV1Path(url: string): boolean {
  return url === '/v1' || url.startsWith('/v1/');
}

function authenticateFor(accessByMethod: ReadonlyMap<string, Access>, deps: V1AuthDeps) {
  return async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const token = bearerToken(request.headers.authorization);
    if (token === null) {
      reply.header('www-authenticate', REALM);
      return sendProblem(reply, problem('AUTH_REQUIRED', 'Send an API token: Authorization: Bearer <token>', { instance: pathOf(request) }));
    }
    const principal = deps.tokens().authenticate(token);
    if (!principal) {
      const lock = await deps.failures(request, { increment: false });
      if (!lock.isAllowed && lock.remaining === 0) return locked(reply, lock.ttlInSeconds);
      const count = await deps.failures(request);
      // The token is never logged, not even in part: a near-miss of a real token is still a secret.
      request.log.warn({ event: 'api.auth.failed', client: request.ip, route: `${request.method} ${recordedPath(request)}` }, 'API token not accepted');
      if (!count.isAllowed && count.isExceeded) return locked(reply, count.ttlInSeconds);
      reply.header('www-authenticate', `${REALM}, error="invalid_token"`);
      return sendProblem(reply, problem('AUTH_FAILED', 'The API token is not valid', { instance: pathOf(request) }));
    }
    request.principal = principal;
    const access = accessByMethod.get(request.method) ?? { roles: [], tenants: false };
    const roles = access.roles;
    if (!roles.includes(principal.role)) {
      const detail = `Role "${principal.role}" may not ${request.method} ${request.routeOptions.url}; allowed: ${roles.join(', ')}`;
      return sendProblem(reply, problem('FORBIDDEN', detail, { instance: pathOf(request) }));
    }
    if (principal.tenant !== null && !access.tenants) {
      const detail = `A token of tenant "${principal.tenant}" may not ${request.method} ${request.routeOptions.url}: it acts on what every tenant shares`;
      return sendProblem(reply, problem('FORBIDDEN', detail, { instance: pathOf(request) }));
    }
    return undefined;
  };
}

function locked(reply: FastifyReply, retryAfterSeconds: number): FastifyReply {
  const seconds = Math.max(1, retryAfterSeconds);
  reply.header('retry-after', String(seconds));
  return sendProblem(reply, problem('AUTH_LOCKED', `Too many failed authentications from this address; retry in ${seconds}s`, { instance: pathOf(reply.request) }));
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 6750), else null. */
export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header ?? '');
  return match ? match[1]! : null;
}
