import type { Config } from '../config/schema.ts';
import { assignPool } from '../ippool/pool-assignment.ts';
import { splitAddress } from '../mail/address.ts';

/**
 * The egress IPs that can send a domain's mail, following pool assignment
 * (src/ippool/pool-assignment.ts): a user's own pool and the pools the user may pick with
 * X-Rookery-Pool, for every user allowed to send as the domain; and for mail submitted without
 * a pool of its own, the pool whose senders cover the domain, else "default".
 */

export type SenderConfig = Pick<Config, 'hostname' | 'ips' | 'pools' | 'smtp'>;

export interface SendingIp {
  address: string;
  /** The EHLO name it greets with: the IP's own hostname, else the server's. */
  hostname: string;
  pool: string;
}

export interface SendingPool {
  pool: string;
  /** Why mail from the domain can use it, for the report. */
  reason: string;
}

export function sendingPoolsFor(domain: string, config: SenderConfig): SendingPool[] {
  const pools = new Map<string, string>();
  const allowed = config.smtp.users.filter((user) => mayUseDomain(user.allowedSenders, domain));
  for (const user of allowed) {
    for (const pool of [user.pool, ...(user.pools ?? [])]) {
      if (pool && !pools.has(pool)) pools.set(pool, `pool of user ${user.username}`);
    }
  }
  // Mail without a pool of its own: from trusted networks, from users without a pool, and
  // (when no user may send as the domain) whatever submits it in future.
  const withoutPool = config.smtp.trustedNetworks.length > 0 || allowed.length === 0 || allowed.some((user) => !user.pool);
  if (withoutPool) {
    const rules = { senders: new Map(Object.entries(config.pools).map(([name, pool]) => [name, pool.senders])) };
    const { pool, source } = assignPool({ header: null, user: null, sender: `postmaster@${domain}`, rules });
    if (!pools.has(pool)) pools.set(pool, source === 'sender' ? `pools.${pool}.senders covers ${domain}` : 'mail without a pool of its own');
  }
  return [...pools].map(([pool, reason]) => ({ pool, reason }));
}

export function sendingIpsFor(domain: string, config: SenderConfig): SendingIp[] {
  const pools = new Set(sendingPoolsFor(domain, config).map((p) => p.pool));
  return config.ips
    .filter((ip) => pools.has(ip.pool))
    .map((ip) => ({ address: ip.address, hostname: ip.hostname ?? config.hostname, pool: ip.pool }));
}

/** allowedSenders patterns ("*", "*@domain", "user@domain") that admit some address at the domain. */
function mayUseDomain(patterns: readonly string[], domain: string): boolean {
  return patterns.some((pattern) => {
    if (pattern === '*') return true;
    return splitAddress(pattern)?.domain === domain;
  });
}
