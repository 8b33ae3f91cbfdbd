import type { ApiPrincipal } from '../../access/api-token.ts';
import type { TenantLookup } from '../../access/tenants.ts';
import { parseDuration } from '../../config/duration.ts';
import { splitAddress } from '../../mail/address.ts';
import { SUPPRESSION_REASONS, type NewSuppression, type SuppressionReason, type SuppressionSource } from '../../storage/suppressions.ts';

/**
 * What the suppression routes read from a request, the same way for one entry (POST
 * /v1/suppressions) and for each line of an import: whose list (the token's tenant confines it),
 * the address, the reason, and when the entry ends.
 */

/** The longest address taken: RFC 5321 allows 64 + 1 + 255 octets of a path. */
const MAX_ADDRESS = 320;
/** Tenant names are API names; '' names mail of no tenant. */
export const TENANT_PATTERN = '^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$';

/** A request's problem: where (a request path, or an import line) and what. */
export interface InputProblem {
  path: string;
  message: string;
  /** The token may not act on this tenant's list: 403, not 400. */
  forbidden?: boolean;
}

/**
 * The tenant a request acts for: a tenant's token its own (naming another is forbidden); another
 * token the one it names ('' for mail of no tenant), else `otherwise` (a listing: every
 * tenant's, null; one entry: mail of no tenant's, ''). A tenant named to write to must be
 * configured; reads may name any (a tenant removed from the config keeps its entries).
 */
export function tenantOf(
  principal: ApiPrincipal,
  named: string | null | undefined,
  options: { path: string; otherwise: string | null; tenants?: TenantLookup },
): { tenant: string | null } | { problem: InputProblem } {
  const given = named === null ? '' : named;
  if (principal.tenant !== null) {
    if (given !== undefined && given !== principal.tenant) {
      return { problem: { path: options.path, message: `a token of tenant "${principal.tenant}" acts on that tenant's suppression list only`, forbidden: true } };
    }
    return { tenant: principal.tenant };
  }
  if (given === undefined) return { tenant: options.otherwise };
  if (given !== '' && options.tenants && !options.tenants.get(given)) return { problem: { path: options.path, message: `unknown tenant ${JSON.stringify(given)}` } };
  return { tenant: given };
}

/** Why `address` cannot be a suppressed address, or null. */
export function addressProblem(address: unknown): string | null {
  if (typeof address !== 'string' || address.length === 0) return 'required: the address';
  if (address.length > MAX_ADDRESS) return `longer than ${MAX_ADDRESS} characters`;
  if (/[\s\u0000-\u001f\u007f]/.test(address) || splitAddress(address) === null) return 'not an address (local@domain)';
  return null;
}

/** One entry as given: in a JSON body, or a line of an import (absent fields undefined, empty CSV cells null). */
export interface EntryFields {
  address?: unknown;
  reason?: unknown;
  expiresAt?: unknown;
  expiresIn?: unknown;
  createdAt?: unknown;
}

export interface EntryContext {
  tenant: string | null;
  now: number;
  source: SuppressionSource;
  /** For an entry that names none. */
  defaultReason: SuppressionReason;
  /** Prefix of the problems' paths (`body`, `body[3]`, `line 17`). */
  at: string;
}

/**
 * The entry to store, or the first problem of its fields. It is as new as the request (createdAt
 * now, so it replaces the tenant's entry of the address) unless it gives its own createdAt (an
 * import of an export keeps the entries' times, and an older one changes nothing).
 */
export function readEntry(fields: EntryFields, ctx: EntryContext): { entry: NewSuppression } | { problem: InputProblem } {
  const problem = (field: string, message: string) => ({ problem: { path: `${ctx.at}.${field}`, message } });
  const badAddress = addressProblem(fields.address);
  if (badAddress) return problem('address', badAddress);
  const reason = fields.reason ?? ctx.defaultReason;
  if (!SUPPRESSION_REASONS.includes(reason as SuppressionReason)) return problem('reason', `not a reason: use ${SUPPRESSION_REASONS.join(', ')}`);
  let createdAt = ctx.now;
  if (fields.createdAt != null) {
    const ms = typeof fields.createdAt === 'string' ? Date.parse(fields.createdAt) : NaN;
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > ctx.now) return problem('createdAt', `not a time (RFC 3339) in the past: ${JSON.stringify(fields.createdAt)}`);
    createdAt = ms;
  }
  let expiresAt: number | null = null;
  if (fields.expiresAt != null && fields.expiresIn != null) return problem('expiresAt', 'give at most one of expiresAt and expiresIn');
  if (fields.expiresAt != null) {
    const ms = typeof fields.expiresAt === 'string' ? Date.parse(fields.expiresAt) : NaN;
    if (!Number.isSafeInteger(ms) || ms <= ctx.now) return problem('expiresAt', `not a time (RFC 3339) in the future: ${JSON.stringify(fields.expiresAt)}`);
    expiresAt = ms;
  }
  if (fields.expiresIn != null) {
    const ms = typeof fields.expiresIn === 'string' ? parseDuration(fields.expiresIn) : null;
    if (ms === null || ms <= 0) return problem('expiresIn', `not a duration above zero (30m, 12h, 90d): ${JSON.stringify(fields.expiresIn)}`);
    expiresAt = ctx.now + ms;
  }
  return { entry: { tenant: ctx.tenant === '' ? null : ctx.tenant, address: fields.address as string, reason: reason as SuppressionReason, source: ctx.source, createdAt, expiresAt } };
}
