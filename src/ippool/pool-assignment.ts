import { domainMatches, domainOf } from '../mail/address.ts';

export const DEFAULT_POOL = 'default';
export const POOL_HEADER = 'X-Rookery-Pool';

export interface PoolAssignmentRules {
  /** Pool name -> sender domains it sends for ("example.com", or "*.example.com" for subdomains). */
  senders: ReadonlyMap<string, readonly string[]>;
}

export interface PoolUser {
  username: string;
  /** The user's pool, if set. */
  pool?: string;
  /** Further pools the user may choose with the X-Rookery-Pool header. */
  pools?: readonly string[];
}

export type PoolAssignment = { pool: string; source: 'header' | 'user' | 'sender' | 'tenant' | 'default'; refusedHeader: string | null };

/** A tenant as pool choice sees it: the pools its mail may use (its default first), or null for any. */
export interface PoolTenant {
  pools: readonly string[] | null;
}

/**
 * The pool a message sends from: the X-Rookery-Pool header when the sender may choose that pool
 * (a user: one of its pools; a client without a user but with a tenant, such as an API token: one
 * of the tenant's pools); else the user's own pool; else the pool whose senders cover the envelope
 * sender's domain; else "default". A tenant's mail stays within its pools: a choice outside them
 * gives way to the tenant's first pool. A header that may not be used is ignored (and reported),
 * never honoured: clients with neither user nor tenant (trusted networks) cannot choose by header.
 */
export function assignPool(input: { header: string | null; user: PoolUser | null; tenant?: PoolTenant | null; sender: string; rules: PoolAssignmentRules }): PoolAssignment {
  const { header, user, sender, rules } = input;
  const allowed = input.tenant?.pools ?? null;
  const within = (assignment: PoolAssignment): PoolAssignment =>
    allowed === null || allowed.includes(assignment.pool) ? assignment : { pool: allowed[0]!, source: 'tenant', refusedHeader: assignment.refusedHeader };
  let refusedHeader: string | null = null;
  if (header) {
    const wanted = header.trim();
    const choices = user ? [user.pool, ...(user.pools ?? [])] : (allowed ?? []);
    if (choices.includes(wanted) && (allowed === null || allowed.includes(wanted))) return { pool: wanted, source: 'header', refusedHeader: null };
    refusedHeader = wanted;
  }
  if (user?.pool) return within({ pool: user.pool, source: 'user', refusedHeader });
  const domain = domainOf(sender);
  if (domain) {
    for (const [pool, patterns] of rules.senders) {
      if ((allowed === null || allowed.includes(pool)) && patterns.some((p) => domainMatches(domain, p))) return { pool, source: 'sender', refusedHeader };
    }
  }
  return within({ pool: DEFAULT_POOL, source: 'default', refusedHeader });
}

/** Chooses a message's pool; `submitter` is an SMTP username (or null). */
export type PoolAssigner = (input: { header: string | null; submitter: string | null; tenant: PoolTenant | null; sender: string }) => PoolAssignment;

/** The assignment function for a configuration: its users' pools and its pools' sender domains. */
export function poolAssignerFor(config: {
  smtp: { users: readonly PoolUser[] };
  pools: Readonly<Record<string, { senders: readonly string[] }>>;
}): PoolAssigner {
  const users = new Map(config.smtp.users.map((u) => [u.username, u]));
  const rules: PoolAssignmentRules = { senders: new Map(Object.entries(config.pools).map(([name, pool]) => [name, pool.senders])) };
  return ({ header, submitter, tenant, sender }) => assignPool({ header, user: submitter ? (users.get(submitter) ?? null) : null, tenant, sender, rules });
}
