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
  // Counts over every tenant's mail: not for a sender (see TENANT_ROUTES for tenants' tokens).
  'GET /v1/queue': ['admin', 'operator', 'viewer'],
  // A sender reads the messages of its tenant (every sender token has one).
  'GET /v1/messages': EVERY_ROLE,
  'GET /v1/messages/:id': EVERY_ROLE,
  // Queue operations: pauses, retries and cancellations change what is delivered; the pauses
  // are read by the roles that read all mail. A tenant's token is confined to its own tenant's
  // mail by the routes themselves (see TENANT_ROUTES).
  'GET /v1/queue/pauses': ['admin', 'operator', 'viewer'],
  'POST /v1/queue/pause': ['admin', 'operator'],
  'POST /v1/queue/resume': ['admin', 'operator'],
  'POST /v1/queue/retry': ['admin', 'operator'],
  'POST /v1/queue/bounce': ['admin', 'operator'],
  'DELETE /v1/messages/:id': ['admin', 'operator'],
  // Sending mail: what sender tokens are for, and admin (everything). Not operator: operators
  // steer the queue, IPs and domains; a token that can pause a destination need not be one that
  // can mail as the platform's customers. Each token is held to its allowedSenders besides.
  'POST /v1/messages': ['admin', 'sender'],
  'POST /v1/messages/batch': ['admin', 'sender'],
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
  'POST /v1/ips/:address/warmup': ['admin', 'operator'],
  'DELETE /v1/ips/:address/warmup': ['admin', 'operator'],
  // Why mail would go where it goes: a read (DNS lookups included, as the daemon's own router makes them).
  'GET /v1/explain': ['admin', 'operator', 'viewer'],
  // The audit log names every token and client address that changed something: admin only.
  'GET /v1/audit': ['admin'],
  // The configuration (tokens among it) is the admin's.
  'POST /v1/reload': ['admin'],
  // The suppression list: every role reads; a sender adds to its tenant's list (its own
  // unsubscribes and complaints) but never removes an entry: taking an address off is the
  // platform's call, as it may be a complaint.
  'GET /v1/suppressions': EVERY_ROLE,
  'GET /v1/suppressions/export': EVERY_ROLE,
  'GET /v1/suppressions/:address': EVERY_ROLE,
  'POST /v1/suppressions': ['admin', 'operator', 'sender'],
  'POST /v1/suppressions/import': ['admin', 'operator', 'sender'],
  'DELETE /v1/suppressions/:address': ['admin', 'operator'],
  // Webhooks: applications (sender) subscribe for their tenant, admin for any; operators read
  // them and their deliveries. Not viewer: a URL may carry the receiver's own credentials.
  'POST /v1/webhooks': ['admin', 'sender'],
  'GET /v1/webhooks': ['admin', 'operator', 'sender'],
  'GET /v1/webhooks/:id': ['admin', 'operator', 'sender'],
  'PATCH /v1/webhooks/:id': ['admin', 'sender'],
  'DELETE /v1/webhooks/:id': ['admin', 'sender'],
  'POST /v1/webhooks/:id/rotate-secret': ['admin', 'sender'],
  'GET /v1/webhooks/:id/deliveries': ['admin', 'operator', 'sender'],
  'POST /v1/webhooks/:id/deliveries/:deliveryId/replay': ['admin', 'sender'],
  'POST /v1/webhooks/:id/replay': ['admin', 'sender'],
  // Personal data of a recipient (data-subject requests): read by those who read all mail but
  // viewers (it gathers one person's data in one answer); erased by admin only (?tenant= confines it).
  'GET /v1/recipients/:address': ['admin', 'operator'],
  'DELETE /v1/recipients/:address': ['admin'],
};

/**
 * The routes a token bound to a tenant may call, each answering for that tenant only (its
 * messages, the IPs of its pools, its sender domains, its suppression list) or acting on that tenant's mail only (the
 * queue operations take its tenant as their one scope, and show it that tenant's pauses; a
 * message of another tenant is unknown to it). Every other route shows or changes what tenants
 * share (queue totals, IP and domain operations, the audit log) and needs a token of no tenant:
 * the platform's own staff. The role still applies: a tenant's sender never pauses or cancels.
 */
export const TENANT_ROUTES: ReadonlySet<string> = new Set([
  'GET /v1/whoami',
  'GET /v1/messages',
  'GET /v1/messages/:id',
  'POST /v1/messages',
  'POST /v1/messages/batch',
  'DELETE /v1/messages/:id',
  'GET /v1/queue/pauses',
  'POST /v1/queue/pause',
  'POST /v1/queue/resume',
  'POST /v1/queue/retry',
  'POST /v1/queue/bounce',
  'GET /v1/ips',
  'GET /v1/ips/:address',
  'GET /v1/domains',
  'GET /v1/suppressions',
  'GET /v1/suppressions/export',
  'GET /v1/suppressions/:address',
  'POST /v1/suppressions',
  'POST /v1/suppressions/import',
  'DELETE /v1/suppressions/:address',
  // A tenant's token sees and changes its own tenant's endpoints only; another's is unknown to it.
  'POST /v1/webhooks',
  'GET /v1/webhooks',
  'GET /v1/webhooks/:id',
  'PATCH /v1/webhooks/:id',
  'DELETE /v1/webhooks/:id',
  'POST /v1/webhooks/:id/rotate-secret',
  'GET /v1/webhooks/:id/deliveries',
  'POST /v1/webhooks/:id/deliveries/:deliveryId/replay',
  'POST /v1/webhooks/:id/replay',
  // A tenant's token reads what its own tenant's mail holds about an address. Erasing is the
  // admin's, and an admin token belongs to no tenant: it names the tenant to erase for.
  'GET /v1/recipients/:address',
]);

/** The roles allowed on a route, or undefined when the table does not list it. */
export function rolesFor(method: string, url: string): readonly ApiRole[] | undefined {
  const key = `${method} ${url}`;
  return Object.hasOwn(ROUTE_ROLES, key) ? ROUTE_ROLES[key] : undefined;
}
