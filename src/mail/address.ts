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

/** RFC 5321 dot-atom local part: atext words joined by single dots. */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * Why `address` cannot be an envelope address handed over outside SMTP (the HTTP API), or null.
 * SMTP's own command parser never lets a line break, a space or an angle bracket into MAIL FROM
 * or RCPT TO; an address from JSON could carry any of them into the commands Rookery sends on
 * (a CR LF would start a command of its own), so only the plain form is taken: a dot-atom local
 * part, '@', a domain name in ASCII (an IDN as its A-label).
 */
export function envelopeAddressProblem(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return 'not an address (local@domain)';
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!DOT_ATOM.test(local)) return 'not an address: the part before @ may hold letters, digits, dots (not two in a row, not first or last) and !#$%&\'*+/=?^_`{|}~-';
  if (local.length > 64) return 'the part before @ is longer than 64 characters';
  if (!/^[A-Za-z0-9.-]+$/.test(domain) || normalizeDomain(domain) !== domain.toLowerCase()) return `not a domain name: ${JSON.stringify(domain)} (an internationalized one as its A-label, xn--...)`;
  return null;
}
