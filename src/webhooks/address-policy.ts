import { BlockList, isIP } from 'node:net';

/**
 * Where a webhook may not be sent unless webhooks.allowPrivateNetworks says so: addresses of the
 * network this node stands in, or of no host at all. A tenant chooses the URL; without this rule
 * it could make the daemon POST to its own control API, a database, or a cloud metadata service.
 * The rule is applied to the address each connection is made to (after DNS, so a name that later
 * resolves to a private address is refused too), not only to the URL when it is registered.
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

/**
 * Why a webhook URL is refused when it is registered, or null: not http(s), credentials in it,
 * or (unless private networks are allowed) a host that is a restricted address or a name of this
 * machine. Other names are checked when they are resolved, at each delivery.
 */
export function urlProblem(url: string, allowPrivateNetworks: boolean, check: AddressCheck = restrictedAddressCheck()): string | null {
  if (!URL.canParse(url)) return 'not a URL';
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'must be an http or https URL';
  if (parsed.username || parsed.password) return 'must not hold credentials: receivers check the signature';
  if (allowPrivateNetworks) return null;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const why = check(host);
    return why ? `the address ${host} is ${why}, not a public one (webhooks.allowPrivateNetworks)` : null;
  }
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return `${host} is this machine (webhooks.allowPrivateNetworks)`;
  return null;
}
