import { isIPv4, isIPv6 } from 'node:net';
import { canonicalIp } from '../mail/ip-address.ts';
import { lookup, type DomainCheckResolver } from './domain-check-dns.ts';

/**
 * Forward-confirmed reverse DNS (FCrDNS) of an egress address: its PTR names, and whether one of
 * them resolves back to the address. Receivers such as Gmail and Outlook refuse or penalise mail
 * from an address without it, and compare it with the HELO name, so each egress IP's `hostname`
 * should be such a name.
 */

export type ReverseDnsResolver = Pick<DomainCheckResolver, 'resolve4' | 'resolve6'> & { resolvePtr(name: string): Promise<string[]> };

export type ReverseDnsStatus = 'confirmed' | 'unconfirmed' | 'missing' | 'failed';

export interface ReverseDns {
  /** confirmed: a PTR name resolves back to the address; unconfirmed: none does; missing: no PTR; failed: the PTR lookup failed. */
  status: ReverseDnsStatus;
  /** The PTR names, lower-case, without the trailing dot. */
  names: string[];
  /** The first PTR name that resolves back to the address, else null. */
  hostname: string | null;
  /** What was found, in words, for the operator. */
  detail: string;
}

/** The name of the PTR record of `address`: 4.3.2.1.in-addr.arpa, or 32 nibbles under ip6.arpa. */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(address)) throw new Error(`not an IP address: ${address}`);
  const nibbles = expandIpv6(address).replaceAll(':', '').split('');
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/** The eight groups of an IPv6 address, four hex digits each (a trailing dotted quad becomes two groups). */
function expandIpv6(address: string): string {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((group) => group.padStart(4, '0')).join(':');
}

/** Looks up the PTR names of `address`, then each name's A (IPv4) or AAAA (IPv6) records. */
export async function checkReverseDns(resolver: ReverseDnsResolver, address: string): Promise<ReverseDns> {
  const ptr = await lookup(() => resolver.resolvePtr(reverseName(address)));
  if (!ptr.ok) {
    if (ptr.missing !== null) return { status: 'missing', names: [], hostname: null, detail: 'no PTR record' };
    return { status: 'failed', names: [], hostname: null, detail: `PTR lookup failed: ${ptr.error}` };
  }
  const names = [...new Set(ptr.records.map((name) => name.toLowerCase().replace(/\.$/, '')))];
  const wanted = canonicalIp(address);
  const forward = isIPv4(address) ? (name: string) => resolver.resolve4(name) : (name: string) => resolver.resolve6(name);
  const misses: string[] = [];
  for (const name of names) {
    const answer = await lookup(() => forward(name));
    if (answer.ok && answer.records.some((record) => canonicalIp(record) === wanted)) {
      return { status: 'confirmed', names, hostname: name, detail: `PTR ${name} resolves back to ${wanted}` };
    }
    const type = isIPv4(address) ? 'A' : 'AAAA';
    if (answer.ok) misses.push(`${name} has ${type} ${answer.records.join(', ')}`);
    else if (answer.missing !== null) misses.push(`${name} has no ${type} record`);
    else misses.push(`${type} lookup of ${name} failed: ${answer.error}`);
  }
  return { status: 'unconfirmed', names, hostname: null, detail: `PTR does not resolve back to ${wanted}: ${misses.join('; ')}` };
}
