import type { Config } from './schema.ts';

/** The pool that takes the mail of a pool without IPs (src/ippool/pool-setup.ts). */
const DEFAULT_POOL = 'default';

/**
 * What a reload applies but the operator should hear about at once, because mail goes
 * somewhere other than the configuration seems to say: each warning starts with the config
 * path it is about, like a problem, and is answered and logged with the reload.
 */
export function reloadWarnings(running: Pick<Config, 'ips'>, next: Pick<Config, 'ips' | 'pools' | 'smtp' | 'tenants'>): string[] {
  if (next.ips.length === 0) {
    // Without IPs every message leaves from the host's default address, and any pool name is
    // accepted (config/load.ts): the pools the file still names separate nothing any more.
    const naming = poolReferences(next);
    if (running.ips.length === 0 || naming.length === 0) return [];
    return [`ips: empty: every message now goes out from the host's default address, whatever its pool; pools are still named at ${naming.join(', ')}`];
  }
  const pools = (config: Pick<Config, 'ips'>) => new Set(config.ips.map((ip) => ip.pool));
  const before = pools(running);
  const after = pools(next);
  // The schema makes sure `default` keeps an IP whenever there are any.
  return [...before].filter((pool) => !after.has(pool)).map((pool) => `ips: pool ${pool} lost its last IP; its mail, queued or new, goes through pool ${DEFAULT_POOL}`);
}

/** The config paths that name a pool: pools entries, users' pools, tenants' pools. */
function poolReferences(config: Pick<Config, 'pools' | 'smtp' | 'tenants'>): string[] {
  return [
    ...Object.keys(config.pools).map((name) => `pools.${name}`),
    ...config.smtp.users.flatMap((user, i) => [
      ...(user.pool === undefined ? [] : [`smtp.users[${i}].pool`]),
      ...(user.pools ?? []).map((_, j) => `smtp.users[${i}].pools[${j}]`),
    ]),
    ...Object.entries(config.tenants).flatMap(([name, tenant]) => (tenant.pools ? [`tenants.${name}.pools`] : [])),
  ];
}
