import type { NetworkInterfaceInfo } from 'node:os';
import { canonicalIp } from '../mail/ip-address.ts';
import { restrictedAddressCheck } from '../mail/special-addresses.ts';

/**
 * The addresses of this host that could send mail: those os.networkInterfaces() reports (the
 * interfaces that are up), less loopback and link-local ones, which never reach another network.
 * A private address (RFC 1918, CGNAT, IPv6 unique local) is kept and marked: behind NAT (many
 * clouds) it is what Rookery binds, and receivers see the public address NAT maps it to.
 */

export interface HostAddress {
  address: string;
  family: 4 | 6;
  /** The interface it is on, e.g. eth0. */
  interface: string;
  /** Why it is not a public address ("private", "unique local", ...), or null for a public one. */
  private: string | null;
}

/** What os.networkInterfaces() returns. */
export type InterfaceList = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** Kinds of address that are never an egress IP. */
const SKIPPED = new Set(['loopback', 'link-local', 'unspecified', 'multicast']);

/**
 * The candidate egress addresses, IPv4 first, each once (the first interface that has it), in
 * the order the system lists them. `only`: interface names to keep (all when empty).
 */
export function hostAddresses(interfaces: InterfaceList, only: readonly string[] = []): HostAddress[] {
  const check = restrictedAddressCheck();
  const seen = new Set<string>();
  const found: HostAddress[] = [];
  for (const [name, infos] of Object.entries(interfaces)) {
    if (only.length > 0 && !only.includes(name)) continue;
    for (const info of infos ?? []) {
      if (info.internal) continue;
      const address = canonicalIp(info.address);
      const kind = check(address);
      if ((kind !== null && SKIPPED.has(kind)) || seen.has(address)) continue;
      seen.add(address);
      found.push({ address, family: info.family === 'IPv4' ? 4 : 6, interface: name, private: kind });
    }
  }
  return found.sort((a, b) => a.family - b.family);
}
