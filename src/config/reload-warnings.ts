import type { Config } from './schema.ts';

/** The pool that takes the mail of a pool without IPs (src/ippool/pool-setup.ts). */
const DEFAULT_POOL = 'default';

/**
 * What a reload applies but the operator should hear about at once, because mail goes
 * somewhere other than the configuration seems to say: each warning starts with the config
 * path it is about, like a problem, and is answered and logged with the reload.
 */
export function reloadWarnings(running: Pick<Config, 'ips'>, next: Pick<Config, 'ips'>): string[] {
  if (next.ips.length === 0) return [];
  const pools = (config: Pick<Config, 'ips'>) => new Set(config.ips.map((ip) => ip.pool));
  const before = pools(running);
  const after = pools(next);
  // The schema makes sure `default` keeps an IP whenever there are any.
  return [...before].filter((pool) => !after.has(pool)).map((pool) => `ips: pool ${pool} lost its last IP; its mail, queued or new, goes through pool ${DEFAULT_POOL}`);
}
