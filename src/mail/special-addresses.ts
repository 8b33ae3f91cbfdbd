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

/**
 * IPv6 forms that carry an IPv4 address a router or the host's stack may reach it by: the
 * address is judged as that IPv4 address (where its 32 bits start, in 16-bit words). NAT64's
 * well-known prefix (RFC 6052) and 6to4 (RFC 3056) are translated or tunnelled to it;
 * IPv4-compatible addresses (::a.b.c.d, deprecated) are taken for it by some stacks.
 */
const EMBEDDING: ReadonlyArray<readonly [network: string, prefix: number, word: number, form: string]> = [
  ['64:ff9b::', 96, 6, 'NAT64'],
  ['2002::', 16, 1, '6to4'],
  ['::', 96, 6, 'IPv4-compatible'],
];

/** IPv6 ranges restricted whole: NAT64 for local use (RFC 8215), Teredo (RFC 4380, its IPv4 hidden). */
const RESTRICTED_TUNNELS: ReadonlyArray<readonly [network: string, prefix: number, what: string]> = [
  ['64:ff9b:1::', 48, 'NAT64 for local use'],
  ['2001::', 32, 'Teredo'],
];

/** Says why an address is restricted ("loopback", ...), or null; IPv4-mapped IPv6 counts as its IPv4 address. */
export type AddressCheck = (address: string) => string | null;

export function restrictedAddressCheck(): AddressCheck {
  const subnet = (network: string, prefix: number, kind: 'ipv4' | 'ipv6') => {
    const list = new BlockList();
    list.addSubnet(network, prefix, kind);
    return list;
  };
  const lists = RESTRICTED.map(([network, prefix, kind, what]) => ({ list: subnet(network, prefix, kind), what }));
  const tunnels = RESTRICTED_TUNNELS.map(([network, prefix, what]) => ({ list: subnet(network, prefix, 'ipv6'), what }));
  const embeddings = EMBEDDING.map(([network, prefix, word, form]) => ({ list: subnet(network, prefix, 'ipv6'), word, form }));
  const check: AddressCheck = (address) => {
    const family = isIP(address);
    if (family === 0) return 'not an IP address';
    const kind = family === 4 ? 'ipv4' : 'ipv6';
    const listed = lists.find(({ list }) => list.check(address, kind))?.what;
    if (listed || kind === 'ipv4') return listed ?? null;
    const tunnel = tunnels.find(({ list }) => list.check(address, 'ipv6'))?.what;
    if (tunnel) return tunnel;
    const embedding = embeddings.find(({ list }) => list.check(address, 'ipv6'));
    const words = embedding ? ipv6Words(address) : null;
    if (!embedding || !words) return null;
    const [high, low] = [words[embedding.word]!, words[embedding.word + 1]!];
    const ipv4 = [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
    const why = check(ipv4);
    return why === null ? null : `${why} (${embedding.form} of ${ipv4})`;
  };
  return check;
}

/** The eight 16-bit words of an IPv6 address (the URL parser writes it without a dotted quad); null for one with a zone. */
function ipv6Words(address: string): number[] | null {
  if (!URL.canParse(`http://[${address}]`)) return null;
  const written = new URL(`http://[${address}]`).hostname.slice(1, -1);
  const [head, tail] = written.includes('::') ? written.split('::') : [written, null];
  const first = head ? head.split(':') : [];
  const last = tail ? tail.split(':') : [];
  const zeros = tail === null ? [] : Array<string>(8 - first.length - last.length).fill('0');
  return [...first, ...zeros, ...last].map((word) => parseInt(word, 16));
}

