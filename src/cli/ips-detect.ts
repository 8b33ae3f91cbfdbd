import { Resolver } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { dataName } from '../config/pool-schemas.ts';
import { hostAddresses } from './host-addresses.ts';
import { detectIps, formatIpsDetect } from './ips-detect-report.ts';
import type { CommandContext, CommandResult } from './main.ts';

/**
 * `rookery ips detect`: the addresses this host could send from, with their forward-confirmed
 * PTR names, and the `ips:` block to paste into the configuration. It reads the interfaces and
 * asks DNS; it needs no configuration and changes nothing.
 */
export async function execute(values: Record<string, unknown>, _context: CommandContext): Promise<CommandResult> {
  const given = values as { pool?: string; interface?: string[]; json?: boolean };
  const pool = given.pool ?? 'default';
  const poolCheck = dataName.safeParse(pool);
  if (!poolCheck.success) {
    process.stderr.write(`rookery ips detect: --pool ${JSON.stringify(pool)}: ${poolCheck.error.issues[0]?.message}\n(see rookery ips detect --help)\n`);
    return 2;
  }
  const only = given.interface ?? [];
  const interfaces = networkInterfaces();
  const unknown = only.filter((name) => !Object.hasOwn(interfaces, name));
  if (unknown.length > 0) {
    process.stderr.write(`rookery ips detect: no interface ${unknown.join(', ')} is up here (up: ${Object.keys(interfaces).join(', ')})\n`);
    return 1;
  }
  const addresses = hostAddresses(interfaces, only);
  if (addresses.length === 0) {
    process.stderr.write('rookery ips detect: this host has no address besides loopback and link-local ones on the interfaces that are up\n');
    return 1;
  }
  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  const report = await detectIps({ addresses, resolver, pool });
  process.stdout.write(given.json ? `${JSON.stringify(report, null, 2)}\n` : formatIpsDetect(report));
  return 0;
}
