import { domainOf } from '../mail/address.ts';

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

export type PoolAssignment = { pool: string; source: 'header' | 'user' | 'sender' | 'default'; refusedHeader: string | null };

/**
 * The pool a message sends from: the X-Rookery-Pool header when the submitting user may use
 * that pool; else the user's own pool; else the pool whose senders cover the envelope sender's
 * domain; else "default". A header the user may not use is ignored (and reported), never
 * honoured: clients without a user (trusted networks) cannot choose by header.
 */
export function assignPool(input: { header: string | null; user: PoolUser | null; sender: string; rules: PoolAssignmentRules }): PoolAssignment {
  const { header, user, sender, rules } = input;
  let refusedHeader: string | null = null;
  if (header) {
    const wanted = header.trim();
    const allowed = user ? [user.pool, ...(user.pools ?? [])].includes(wanted) : false;
    if (allowed) return { pool: wanted, source: 'header', refusedHeader: null };
    refusedHeader = wanted;
  }
  if (user?.pool) return { pool: user.pool, source: 'user', refusedHeader };
  const domain = domainOf(sender);
  if (domain) {
    for (const [pool, patterns] of rules.senders) {
      if (patterns.some((p) => domainMatches(domain, p))) return { pool, source: 'sender', refusedHeader };
    }
  }
  return { pool: DEFAULT_POOL, source: 'default', refusedHeader };
}

function domainMatches(domain: string, pattern: string): boolean {
  const p = pattern.toLowerCase();
  return p.startsWith('*.') ? domain.endsWith(p.slice(1)) : domain === p;
}

/** The assignment function for a configuration: its users' pools and its pools' sender domains. */
export function poolAssignerFor(config: {
  smtp: { users: readonly PoolUser[] };
  pools: Readonly<Record<string, { senders: readonly string[] }>>;
}): (input: { header: string | null; submitter: string | null; sender: string }) => PoolAssignment {
  const users = new Map(config.smtp.users.map((u) => [u.username, u]));
  const rules: PoolAssignmentRules = { senders: new Map(Object.entries(config.pools).map(([name, pool]) => [name, pool.senders])) };
  return ({ header, submitter, sender }) => assignPool({ header, user: submitter ? (users.get(submitter) ?? null) : null, sender, rules });
}
