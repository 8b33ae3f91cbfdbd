import { API_ROLES, type ApiRole } from '../../config/api-schema.ts';

/**
 * Who may call each /v1 route: one table, keyed by method and Fastify route pattern. A /v1 route
 * missing here cannot be registered (see auth.ts), so no route is ever open by oversight.
 *
 * The roles: admin (everything, every tenant), operator (queue, IP and domain operations and all
 * reads; no tokens or config), sender (send mail, read its own messages), viewer (reads).
 */
const EVERY_ROLE: readonly ApiRole[] = API_ROLES;

export const ROUTE_ROLES: Readonly<Record<string, readonly ApiRole[]>> = {
  'GET /v1/whoami': EVERY_ROLE,
  'GET /v1/queue': EVERY_ROLE,
  // A sender will read its own messages once messages record their tenant; until then it would
  // read every tenant's, so these are for the roles that see all mail anyway.
  'GET /v1/messages': ['admin', 'operator', 'viewer'],
  'GET /v1/messages/:id': ['admin', 'operator', 'viewer'],
  // IPs and sender domains: reads for every role but sender (not about its own messages); the
  // domain check makes DNS queries on demand, so it is an operation, not a read.
  'GET /v1/ips': ['admin', 'operator', 'viewer'],
  'GET /v1/ips/:address': ['admin', 'operator', 'viewer'],
  'GET /v1/domains': ['admin', 'operator', 'viewer'],
  'POST /v1/domains/:domain/check': ['admin', 'operator'],
  // The operator's run-time changes to an egress IP: IP operations, so operator and admin.
  'POST /v1/ips/:address/suspend': ['admin', 'operator'],
  'POST /v1/ips/:address/resume': ['admin', 'operator'],
  'PUT /v1/ips/:address/weight': ['admin', 'operator'],
  'DELETE /v1/ips/:address/weight': ['admin', 'operator'],
  // The audit log names every token and client address that changed something: admin only.
  'GET /v1/audit': ['admin'],
};

/** The roles allowed on a route, or undefined when the table does not list it. */
export function rolesFor(method: string, url: string): readonly ApiRole[] | undefined {
  const key = `${method} ${url}`;
  return Object.hasOwn(ROUTE_ROLES, key) ? ROUTE_ROLES[key] : undefined;
}
