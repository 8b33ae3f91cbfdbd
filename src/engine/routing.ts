import { isIP } from 'node:net';
import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import { asciiDomain } from '../mail/address.ts';

/**
 * Where mail for a domain goes: static routes from config (`delivery.routes`), or the domain's
 * MX records (RFC 5321 section 5.1), resolved to a list of next hops, one per address, in the
 * order they should be tried.
 */

/** The DNS queries routing needs; `node:dns/promises` Resolver satisfies it (tests inject their own). */
export interface Resolver {
  resolveMx(domain: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(host: string): Promise<string[]>;
  resolve6(host: string): Promise<string[]>;
}

export interface NextHop {
  /** Name or IP literal to connect to (an IP for MX routes; static routes may give a name). */
  host: string;
  port: number;
  /** MX preference (0 for static routes and implicit MX). */
  preference: number;
  /** The MX (or route) host name, for the TLS server name and logs. */
  name: string;
}

export type Route =
  | {
      ok: true;
      /** Destination site: domains that share an MX set share a site (and its connection limits). */
      site: string;
      hops: NextHop[];
      /** The hops are the domain's MX hosts (not a static route's host): its MTA-STS policy applies. */
      viaMx?: boolean;
    }
  | { ok: false; outcome: DeliveryOutcome };

export interface Router {
  resolve(domain: string): Promise<Route>;
}

export interface RouterOptions {
  /** `delivery.routes`: domain, ".parent.domain" or "*" -> "mx" | "host" | "host:port" | "[v6]:port". */
  routes: Record<string, string>;
  /** Port for next hops found by MX lookup. */
  mxPort: number;
  resolver: Resolver;
  clock: Clock;
  /** How long a lookup result is reused (default one minute). Transient failures are not cached. */
  cacheTtlMs?: number;
  /** Most entries kept in the cache; the oldest go first. */
  cacheMaxEntries?: number;
  /** Most next hops returned for one domain (MX hosts x addresses). */
  maxHops?: number;
  /** Most addresses tried per MX host, so a host with many addresses does not crowd out the next MX. */
  maxAddressesPerHost?: number;
  /** Orders MX hosts of equal preference; injectable so tests are deterministic. */
  random?: () => number;
}

/** Port used by a static route that names no port (the SMTP port). */
const DEFAULT_ROUTE_PORT = 25;

type StaticTarget = { kind: 'mx' } | { kind: 'host'; host: string; port: number; label: string };

interface MxHost {
  name: string;
  preference: number;
  addresses: string[];
}

/** What a lookup produced, before the per-call ordering of equal-preference hosts. */
type Resolved = { ok: true; site: string; hosts: MxHost[] } | { ok: false; outcome: DeliveryOutcome };

export function createRouter(options: RouterOptions): Router {
  const { resolver, clock, mxPort } = options;
  const ttl = options.cacheTtlMs ?? 60_000;
  const maxEntries = options.cacheMaxEntries ?? 10_000;
  const maxHops = options.maxHops ?? 10;
  const maxAddressesPerHost = options.maxAddressesPerHost ?? 3;
  const random = options.random ?? Math.random;
  const routes = normalizeRoutes(options.routes);
  const cache = new Map<string, { at: number; value: Resolved }>();
  // One lookup per domain at a time: a burst of recipients for a domain shares it.
  const inflight = new Map<string, Promise<Resolved>>();

  function remember(domain: string, value: Resolved): void {
    // Transient DNS failures are retried by the next attempt rather than served from cache.
    if (!value.ok && value.outcome.disposition === 'transient') return;
    cache.delete(domain);
    cache.set(domain, { at: clock.now(), value });
    while (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
  }

  async function lookup(domain: string): Promise<Resolved> {
    const cached = cache.get(domain);
    if (cached && clock.now() - cached.at < ttl) return cached.value;
    const running = inflight.get(domain);
    if (running) return running;
    const pending = resolveMxRoute(domain, resolver)
      .then((value) => {
        remember(domain, value);
        return value;
      })
      .finally(() => inflight.delete(domain));
    inflight.set(domain, pending);
    return pending;
  }

  return {
    async resolve(rawDomain: string): Promise<Route> {
      const domain = normalizeName(rawDomain);
      const target = staticTarget(routes, domain);
      if (target.kind === 'host') {
        return {
          ok: true,
          site: `route:${target.label}`,
          hops: [{ host: target.host, port: target.port, preference: 0, name: target.host }],
          viaMx: false,
        };
      }
      const resolved = await lookup(domain);
      if (!resolved.ok) return resolved;
      const hops = toHops(orderHosts(resolved.hosts, random), mxPort, maxHops, maxAddressesPerHost);
      return { ok: true, site: resolved.site, hops, viaMx: addressLiteral(domain) === null };
    },
  };
}

/** Lower case, no final dot, an IDN as its A-label: what DNS is asked and static routes are keyed by. */
function normalizeName(name: string): string {
  return asciiDomain(name.trim().replace(/\.$/, ''));
}

function normalizeRoutes(routes: Record<string, string>): Map<string, StaticTarget> {
  return domainPatterns(routes, parseTarget);
}

/** A table keyed by domain patterns (a domain, ".parent.domain" or "*"), its keys in one spelling for byDomainPattern. */
export function domainPatterns<V, T>(table: Record<string, V>, parse: (value: V) => T): Map<string, T> {
  const result = new Map<string, T>();
  for (const [key, value] of Object.entries(table)) {
    const pattern = key === '*' ? '*' : key.startsWith('.') ? `.${normalizeName(key.slice(1))}` : normalizeName(key);
    result.set(pattern, parse(value));
  }
  return result;
}

/** Parses "mx", "host", "host:port" or "[v6]:port" (validated by the config schema). */
export function parseTarget(value: string): StaticTarget {
  if (value === 'mx') return { kind: 'mx' };
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) {
    const port = bracketed[2] ? Number(bracketed[2]) : DEFAULT_ROUTE_PORT;
    return { kind: 'host', host: bracketed[1]!, port, label: `[${bracketed[1]}]:${port}` };
  }
  const colon = value.lastIndexOf(':');
  const host = normalizeName(colon >= 0 ? value.slice(0, colon) : value);
  const port = colon >= 0 ? Number(value.slice(colon + 1)) : DEFAULT_ROUTE_PORT;
  return { kind: 'host', host, port, label: `${host}:${port}` };
}

/**
 * The static route for a domain: the exact domain, then ".parent" entries from the nearest
 * parent up (as Postfix transport maps), then "*". Without any entry, MX lookup.
 */
function staticTarget(routes: Map<string, StaticTarget>, domain: string): StaticTarget {
  return byDomainPattern(routes, domain) ?? { kind: 'mx' };
}

/** The entry for a domain (lower case): the exact domain, then ".parent" entries from the nearest parent up, then "*". */
export function byDomainPattern<T>(table: Map<string, T>, domain: string): T | undefined {
  const exact = table.get(domain);
  if (exact !== undefined) return exact;
  const labels = domain.split('.');
  for (let i = 1; i < labels.length; i++) {
    const parent = table.get(`.${labels.slice(i).join('.')}`);
    if (parent !== undefined) return parent;
  }
  return table.get('*');
}

/** The error code of a failed DNS query ('EUNKNOWN' when it has none). */
export function dnsCode(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    ? (err as { code: string }).code
    : 'EUNKNOWN';
}

/** NODATA and NXDOMAIN are answers; anything else (SERVFAIL, timeout, refused) is a failure to get one. */
export const isNoRecords = (code: string) => code === 'ENODATA' || code === 'ENOTFOUND';

function dnsOutcome(disposition: 'transient' | 'permanent', enhanced: string, bounceClass: DeliveryOutcome['bounceClass'], response: string): DeliveryOutcome {
  return { disposition, code: null, enhanced, response, stage: 'dns', bounceClass, remoteHost: null, egressIp: null };
}

/** A + AAAA of a host. `failed` is set when neither query got an answer (a failure, not "no records"). */
async function addressesOf(host: string, resolver: Resolver): Promise<{ addresses: string[]; failure: string | null }> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  const failures = [v4, v6]
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => dnsCode(r.reason))
    .filter((code) => !isNoRecords(code));
  return { addresses, failure: addresses.length === 0 && failures.length ? failures[0]! : null };
}

async function resolveMxRoute(domain: string, resolver: Resolver): Promise<Resolved> {
  const literal = addressLiteral(domain);
  if (literal) {
    // RFC 5321 4.1.3: "user@[192.0.2.1]" names the host directly; there is nothing to look up.
    return { ok: true, site: literal, hosts: [{ name: literal, preference: 0, addresses: [literal] }] };
  }
  let records: { exchange: string; priority: number }[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    const code = dnsCode(err);
    if (code === 'ENOTFOUND') {
      return { ok: false, outcome: dnsOutcome('permanent', '5.1.2', 'no-mail-domain', `domain ${domain} does not exist (NXDOMAIN)`) };
    }
    if (code !== 'ENODATA') {
      return { ok: false, outcome: dnsOutcome('transient', '4.4.3', 'dns', `MX lookup for ${domain} failed (${code})`) };
    }
    records = [];
  }

  const mx = records.map((r) => ({ name: normalizeName(r.exchange), preference: r.priority }));
  // RFC 7505: a single MX "." at preference 0 says the domain accepts no mail.
  if (mx.length > 0 && mx.every((r) => r.name === '')) {
    return { ok: false, outcome: dnsOutcome('permanent', '5.1.10', 'no-mail-domain', `domain ${domain} accepts no mail (null MX)`) };
  }
  const named = mx.filter((r) => r.name !== '');

  if (named.length === 0) {
    // RFC 5321 5.1: no MX records, the domain itself is the implicit MX.
    const { addresses, failure } = await addressesOf(domain, resolver);
    if (addresses.length) return { ok: true, site: domain, hosts: [{ name: domain, preference: 0, addresses }] };
    if (failure) return { ok: false, outcome: dnsOutcome('transient', '4.4.3', 'dns', `address lookup for ${domain} failed (${failure})`) };
    return { ok: false, outcome: dnsOutcome('permanent', '5.1.2', 'no-mail-domain', `domain ${domain} has no MX and no address records`) };
  }

  const looked = await Promise.all(named.map(async (r) => ({ ...r, ...(await addressesOf(r.name, resolver)) })));
  const hosts = looked.filter((h) => h.addresses.length > 0).map(({ name, preference, addresses }) => ({ name, preference, addresses }));
  const site = [...new Set(named.map((r) => r.name))].sort().join(',');
  if (hosts.length) return { ok: true, site, hosts };
  const failure = looked.find((h) => h.failure)?.failure;
  if (failure) {
    return { ok: false, outcome: dnsOutcome('transient', '4.4.3', 'dns', `address lookup for the MX hosts of ${domain} failed (${failure})`) };
  }
  return { ok: false, outcome: dnsOutcome('permanent', '5.4.4', 'dns', `no MX host of ${domain} has an address (${site})`) };
}

/** The address of an address-literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]"), else null. */
function addressLiteral(domain: string): string | null {
  const inner = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain)?.[1] ?? domain;
  return isIP(inner) ? inner : null;
}

/** Sorts by preference and shuffles hosts of equal preference, so load spreads over them. */
function orderHosts(hosts: MxHost[], random: () => number): MxHost[] {
  const keyed = hosts.map((host) => ({ host, tiebreak: random() }));
  keyed.sort((a, b) => a.host.preference - b.host.preference || a.tiebreak - b.tiebreak);
  return keyed.map((k) => k.host);
}

function toHops(hosts: MxHost[], port: number, maxHops: number, perHost: number): NextHop[] {
  const hops: NextHop[] = [];
  for (const host of hosts) {
    for (const address of host.addresses.slice(0, perHost)) {
      if (hops.length >= maxHops) return hops;
      hops.push({ host: address, port, preference: host.preference, name: host.name });
    }
  }
  return hops;
}
