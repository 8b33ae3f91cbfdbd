import { domainToASCII } from 'node:url';

/**
 * Mail addresses and domain names: the one place that splits an address at its '@' and puts a
 * domain in the form every comparison uses.
 */

/** The lower-cased domain of an address ("" for the null address or one without '@'). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/**
 * Whether a lower-case domain matches a pattern of the config: "example.com" exactly, "*.example.com"
 * any of its subdomains (not itself), "*" any domain. Case does not matter in the pattern.
 */
export function domainMatches(domain: string, pattern: string): boolean {
  const p = pattern.toLowerCase();
  if (p === '*') return domain !== '';
  return p.startsWith('*.') ? domain.endsWith(p.slice(1)) : domain === p;
}

/** Local part (as given) and lower-cased domain, or null unless both are non-empty. */
export function splitAddress(address: string): { local: string; domain: string } | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase() };
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})+$`);

/** A domain as written in the config (or in a From header) as a lower-case A-label, or null. */
export function normalizeDomain(domain: string): string | null {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '').toLowerCase());
  return ascii && ascii.length <= 253 && DOMAIN.test(ascii) ? ascii : null;
}
