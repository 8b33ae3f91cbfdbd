import { isIPv4, isIPv6 } from 'node:net';

/**
 * What per-client limits and the AUTH lockout count by. An IPv4 client is its address; an IPv6
 * client is its /64, because one host is routinely given a whole /64 and could otherwise take a
 * fresh address for every connection or every guess.
 */
export type ClientKey = string & { readonly __brand: 'ClientKey' };

/** The key of a client address as a socket reports it (IPv4-mapped IPv6 counts as IPv4). */
export function clientKeyOf(ip: string): ClientKey {
  const address = ip.replace(/%.*$/, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1] as ClientKey;
  if (!isIPv6(address)) return address as ClientKey;
  const groups = ipv6Groups(address);
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64` as ClientKey;
}

/** The eight 16-bit groups of a valid IPv6 address. */
function ipv6Groups(address: string): number[] {
  // A dotted IPv4 tail is the last two groups written another way.
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_all, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const [head = '', tail] = text.split('::');
  if (tail === undefined) return parse(head);
  const left = parse(head);
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
