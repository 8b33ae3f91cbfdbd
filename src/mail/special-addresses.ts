import { BlockList, isIP } from 'node:net';

/**
 * Addresses that are no public internet host: of the network a node stands in (private,
 * loopback, link-local, CGNAT, ULA), or of no host at all (unspecified, multicast, reserved).
 * Webhooks refuse them (webhooks/address-policy.ts), `rookery ips detect` leaves them out, and
 * the blocklist watch skips them, since no public list judges them.
 */
const RESTRICTED: ReadonlyArray<readonly [network: string, prefix: number, kind: 'ipv4' | 'ipv6', what: string]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared address space (CGNAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['fc00::', 7, 'ipv6', 'unique local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

/** Says why an address is restricted ("loopback", ...), or null; IPv4-mapped IPv6 counts as its IPv4 address. */
export type AddressCheck = (address: string) => string | null;

export function restrictedAddressCheck(): AddressCheck {
  const lists = RESTRICTED.map(([network, prefix, kind, what]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, kind);
    return { list, what };
  });
  return (address) => {
    const family = isIP(address);
    if (family === 0) return 'not an IP address';
    const kind = family === 4 ? 'ipv4' : 'ipv6';
    return lists.find(({ list }) => list.check(address, kind))?.what ?? null;
  };
}

