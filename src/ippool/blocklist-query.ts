import { isIP } from 'node:net';

/**
 * The DNSBL protocol (RFC 5782), pure: the name an address is looked up under in a list, and
 * what the list's answer means.
 *
 * IPv4 `192.0.2.99` in `zen.spamhaus.org` is `99.2.0.192.zen.spamhaus.org`; IPv6 is written as
 * its 32 nibbles, least significant first (`2001:db8::1` is `1.0.0.0. ... .8.b.d.0.1.0.0.2.<zone>`).
 *
 * An A answer in 127.0.0.2-127.0.0.255 lists the address (the code says why: Spamhaus
 * 127.0.0.2 SBL, .3 CSS, .4-.7 XBL, .9 DROP, .10-.11 PBL). Spamhaus answers 127.255.255.x when
 * it refuses the query (252: typo in the zone, 254: a public resolver asked, 255: too many
 * queries): that says nothing about the address and is never a listing. NXDOMAIN (or a name
 * without an A record) is the clean answer. Anything else (127.0.0.1, an address outside
 * 127/8 from a resolver that rewrites NXDOMAIN to an advertising page, a timeout, SERVFAIL) is
 * an error: the state known before it stands.
 */

/** The name `address` is looked up under in `zone`; null for a string that is no IP address. */
export function queryName(address: string, zone: string): string | null {
  const family = isIP(address);
  if (family === 4) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (family === 6) return `${nibbles(address).reverse().join('.')}.${zone}`;
  return null;
}

/** The 32 hexadecimal digits of an IPv6 address, most significant first. */
function nibbles(address: string): string[] {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (::ffff:192.0.2.1) is two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const zeros = Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].flatMap((group) => [...group.padStart(4, '0')]);
}

/** What one lookup found. */
export type BlocklistAnswer =
  /** Listed: the A answers (the return codes), sorted. */
  | { kind: 'listed'; codes: string[] }
  /** Not listed (NXDOMAIN, or no A record). */
  | { kind: 'clear' }
  /** The list refused to answer (127.255.255.x): `why` in words. Never a listing. */
  | { kind: 'refused'; codes: string[]; why: string }
  /** No usable answer: the state known before stands. */
  | { kind: 'error'; error: string };

/** The refusal codes Spamhaus documents for its public zones and DQS. */
const REFUSALS: Readonly<Record<string, string>> = {
  '127.255.255.252': 'typo in the zone name',
  '127.255.255.254': 'query through a public or open resolver',
  '127.255.255.255': 'too many queries',
};

/** The answer A records `records` make. */
export function classifyRecords(records: readonly string[]): BlocklistAnswer {
  if (records.length === 0) return { kind: 'clear' };
  const codes = [...new Set(records)].sort();
  const refused = codes.filter((code) => code.startsWith('127.255.255.'));
  if (refused.length > 0) return { kind: 'refused', codes: refused, why: refused.map((code) => REFUSALS[code] ?? 'refused').join(', ') };
  const listing = codes.filter(isListingCode);
  if (listing.length === codes.length) return { kind: 'listed', codes: listing };
  return { kind: 'error', error: `unexpected answer ${codes.join(', ')} (not 127.0.0.2-127.0.0.255): a resolver rewriting answers?` };
}

/** The answer a failed A query makes: its node:dns error code. */
export function classifyFailure(code: string | undefined): BlocklistAnswer {
  if (code === 'ENOTFOUND' || code === 'ENODATA') return { kind: 'clear' };
  return { kind: 'error', error: code ?? 'lookup failed' };
}

/** 127.0.0.2 - 127.0.0.255. */
function isListingCode(code: string): boolean {
  const match = /^127\.0\.0\.(\d{1,3})$/.exec(code);
  if (!match) return false;
  const last = Number(match[1]);
  return last >= 2 && last <= 255;
}
