import type { EgressIpConfig } from '../config/schema.ts';

/** The source a delivery attempt uses: an egress IP and the name it greets with. */
export interface Egress {
  /** null = the operating system's default source address. */
  address: string | null;
  /** EHLO/HELO name. */
  hostname: string;
}

/** Chooses the egress for one delivery attempt. */
export interface EgressSelector {
  pick(request: { domain: string; site: string; previous: string | null }): Egress;
}

/**
 * Plain round-robin over the configured IPs; with no IPs, the OS default source and the
 * daemon's hostname. Each IP greets with its own hostname, else the daemon's.
 */
export function createRoundRobinSelector(ips: readonly EgressIpConfig[], defaultHostname: string): EgressSelector {
  const egresses: Egress[] = ips.length
    ? ips.map((ip) => ({ address: ip.address, hostname: ip.hostname ?? defaultHostname }))
    : [{ address: null, hostname: defaultHostname }];
  let next = 0;
  return {
    pick() {
      const egress = egresses[next % egresses.length]!;
      next = (next + 1) % egresses.length;
      return egress;
    },
  };
}
