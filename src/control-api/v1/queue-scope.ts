import type { ApiPrincipal, TokenDirectory } from '../../access/api-token.ts';
import { canonicalIp } from '../../mail/ip-address.ts';
import { normalizeDomain } from '../../mail/address.ts';
import type { QueuePause, QueueScope } from '../../storage/queue-control.ts';
import { rfc3339 } from './message-view.ts';
import { isAddressParam } from './routes/ips.ts';

/**
 * A queue scope as the API reads and shows it: an object with exactly one of `domain`, `pool`,
 * `tenant` and `egressIp`. The same names in requests and answers.
 */

export const SCOPE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  description: 'Exactly one of: a destination domain, an egress pool, a tenant, an egress IP.',
  properties: {
    domain: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\s@]+$', description: 'Recipients of this domain (ASCII case and a final dot ignored; an IDN in either form).' },
    pool: { type: 'string', minLength: 1, maxLength: 100, description: 'Messages of this egress pool.' },
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "Messages sent for this configured tenant (the only scope a tenant's token may name: its own)." },
    egressIp: {
      type: 'string',
      minLength: 2,
      maxLength: 64,
      description: 'An egress IP, of any node. Paused: out of selection for every destination. Retried or bounced: the queued recipients whose last attempt went out from it.',
    },
  },
} as const;

export type ScopeJson = { domain?: string; pool?: string; tenant?: string; egressIp?: string };

export const PAUSE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'reason', 'by', 'createdAt', 'until'],
  properties: {
    scope: SCOPE_SCHEMA,
    reason: { type: 'string' },
    by: {
      type: ['string', 'null'],
      description: "The API token that paused it; null to a tenant's token when it was a token of no tenant (the platform's), whose pause a tenant's token may neither replace nor end.",
    },
    createdAt: { type: 'string', format: 'date-time' },
    until: { type: ['string', 'null'], format: 'date-time', description: 'When it ends on its own; null: when resumed.' },
  },
} as const;

/** The scope a request names, or the problem with it (its path in the request). */
export function readScope(json: ScopeJson): QueueScope | { path: string; message: string } {
  if (json.domain !== undefined) {
    // As recipients' domains are stored: lower case, no final dot, an IDN as its A-label.
    const domain = normalizeDomain(json.domain);
    return domain ? { kind: 'domain', domain } : { path: 'body.scope.domain', message: `not a domain name: ${JSON.stringify(json.domain)}` };
  }
  if (json.pool !== undefined) return { kind: 'pool', pool: json.pool };
  if (json.tenant !== undefined) return { kind: 'tenant', tenant: json.tenant };
  const ip = json.egressIp!;
  if (!isAddressParam(ip)) return { path: 'body.scope.egressIp', message: `not an IP address: ${JSON.stringify(ip)}` };
  return { kind: 'egress-ip', ip: canonicalIp(ip) };
}

export function scopeJson(scope: QueueScope): ScopeJson {
  switch (scope.kind) {
    case 'domain':
      return { domain: scope.domain };
    case 'pool':
      return { pool: scope.pool };
    case 'tenant':
      return { tenant: scope.tenant };
    case 'egress-ip':
      return { egressIp: scope.ip };
  }
}

/** A pause as `viewer` may see it: a tenant's token is not told the name of the platform's token that made it. */
export function pauseJson(pause: QueuePause, viewer?: { principal: ApiPrincipal; tokens: TokenDirectory }): object {
  const by = viewer && viewer.principal.tenant !== null && !pausedByTenant(pause, viewer.tokens, viewer.principal.tenant) ? null : pause.by;
  return { scope: scopeJson(pause.scope), reason: pause.reason, by, createdAt: rfc3339(pause.createdAt), until: pause.until === null ? null : rfc3339(pause.until) };
}

/**
 * Whether a token of `tenant` made the pause. The store keeps the name of the token that paused
 * (paused_by), and names are unique in api.tokens, so the configuration in effect tells whose it
 * is. A name the configuration no longer has counts as the platform's: only its staff may then
 * lift the pause, never a tenant that cannot show it was its own.
 */
export function pausedByTenant(pause: QueuePause, tokens: Pick<TokenDirectory, 'named'>, tenant: string): boolean {
  return tokens.named(pause.by)?.tenant === tenant;
}

/**
 * Whether the caller may act on (and see the pauses of) a scope: a token of no tenant on any, a
 * token of a tenant on its own tenant's mail only. A domain, a pool or an egress IP carries every
 * tenant's mail that goes there, so none of them is a tenant's to hold or cancel.
 */
export function ownsScope(principal: ApiPrincipal, scope: QueueScope): boolean {
  return principal.tenant === null || (scope.kind === 'tenant' && scope.tenant === principal.tenant);
}
