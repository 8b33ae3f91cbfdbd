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
 * (a user or API token with pools of its own: one of them; one without: one of its tenant's
 * pools); else the user's own pool; else the pool whose senders cover the envelope
 * sender's domain; else "default". A tenant's mail stays within its pools: a choice outside them
 * gives way to the tenant's first pool. A header that may not be used is ignored (and reported),
 * never honoured: clients with neither user nor tenant (trusted networks) cannot choose by header.
 */
export function assignPool(input: { header: string | null; user: PoolUser | null; tenant?: PoolTenant | null; sender: string; rules: PoolAssignmentRules }): PoolAssignment {
  const { header, user, sender, rules } = input;
  const allowed = input.tenant?.pools ?? null;
  const mayUse = (pool: string) => allowed === null || allowed.includes(pool);
  const within = (assignment: PoolAssignment): PoolAssignment =>
    mayUse(assignment.pool) ? assignment : { pool: allowed![0]!, source: 'tenant', refusedHeader: assignment.refusedHeader };
  let refusedHeader: string | null = null;
  if (header) {
    const wanted = header.trim();
    // A user or token with pools of its own chooses among them; one without, among its tenant's.
    const own = user ? [user.pool, ...(user.pools ?? [])].filter((p) => p !== undefined) : [];
    const choices = own.length > 0 ? own : (allowed ?? []);
    if (choices.includes(wanted) && mayUse(wanted)) return { pool: wanted, source: 'header', refusedHeader: null };
    refusedHeader = wanted;
  }
  if (user?.pool) return within({ pool: user.pool, source: 'user', refusedHeader });
  const domain = domainOf(sender);
  if (domain) {
    for (const [pool, patterns] of rules.senders) {
      if (mayUse(pool) && patterns.some((p) => domainMatches(domain, p))) return { pool, source: 'sender', refusedHeader };
    }
  }
  return within({ pool: DEFAULT_POOL, source: 'default', refusedHeader });
}

/** Chooses a message's pool for its submitter (an SMTP user or an API token) and tenant. */
export type PoolAssigner = (input: { header: string | null; submitter: PoolSubmitter; tenant: PoolTenant | null; sender: string }) => PoolAssignment;

/** Who submitted a message, as pool assignment looks it up: an SMTP user, or an API token by its name. */
export interface PoolSubmitter {
  source: 'smtp' | 'http';
  name: string | null;
}

/**
 * The assignment function for a configuration: its SMTP users' and API tokens' pools, and its
 * pools' sender domains. Users and tokens are looked up apart (by the door the message came
 * in), so a token never gets the pools of an SMTP user that happens to share its name.
 */
export function poolAssignerFor(config: {
  smtp: { users: readonly PoolUser[] };
  api: { tokens: ReadonlyArray<{ name: string; pool?: string; pools?: readonly string[] }> };
  pools: Readonly<Record<string, { senders: readonly string[] }>>;
}): PoolAssigner {
  const users = new Map(config.smtp.users.map((u) => [u.username, u]));
  const tokens = new Map(config.api.tokens.map((t) => [t.name, { username: t.name, pool: t.pool, pools: t.pools }]));
  const rules: PoolAssignmentRules = { senders: new Map(Object.entries(config.pools).map(([name, pool]) => [name, pool.senders])) };
  return ({ header, submitter, tenant, sender }) => {
    const known = submitter.source === 'smtp' ? users : tokens;
    return assignPool({ header, user: submitter.name === null ? null : (known.get(submitter.name) ?? null), tenant, sender, rules });
  };
}
