import { domainToASCII } from 'node:url';

/**
 * Mail addresses and domain names: the one place that splits an address at its '@' and puts a
 * domain in the form every comparison uses: lower case, an internationalized domain name as its
 * A-label (xn--...). An address may come with either form (smtp-server hands U-labels on, the
 * HTTP API takes both, the config holds A-labels): tenants' sender domains, allowedSenders,
 * routing, the recipients' domain column and the suppression key all compare the A-label, so
 * `bücher.example` and `xn--bcher-kva.example` are one domain everywhere.
 */

/**
 * A domain in the form every comparison uses: lower case, U-labels as A-labels. What is no domain
 * name (an address literal such as [192.0.2.1], a name IDNA refuses) stays lower case as given.
 */
export function asciiDomain(domain: string): string {
  const lower = domain.toLowerCase();
  if (isAscii(lower)) return lower;
  // IDNA maps to NFC itself; a name it refuses stays as given, so it is put in NFC here first.
  const nfc = lower.normalize('NFC');
  return domainToASCII(nfc) || nfc;
}

/** The domain of an address as asciiDomain gives it ("" for the null address or one without '@'). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : asciiDomain(address.slice(at + 1));
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

/** Local part (as given) and domain (as asciiDomain gives it), or null unless both are non-empty. */
export function splitAddress(address: string): { local: string; domain: string } | null {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  return { local: address.slice(0, at), domain: asciiDomain(address.slice(at + 1)) };
}

/**
 * The key an address is known by (the suppression list, repeated recipients): the local part
 * lower-cased (Unicode case folding of a UTF-8 one, the same on every node) in Unicode NFC
 * (RFC 6532 3.1), and the domain as asciiDomain gives it. Without NFC, `jörg@` written with a
 * precomposed ö and `jo\u0308rg@` (o and a combining diaeresis) are one mailbox with two keys, and a
 * suppressed address would be mailed again by spelling it the other way. For an ASCII address
 * it is its lower case, as the key always was.
 */
export function addressKey(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? foldLocal(address) : `${foldLocal(address.slice(0, at))}@${asciiDomain(address.slice(at + 1))}`;
}

/** Lower case in NFC; NFC again after lower-casing, whose mappings need not keep a string in NFC. */
function foldLocal(local: string): string {
  return isAscii(local) ? local.toLowerCase() : local.normalize('NFC').toLowerCase().normalize('NFC');
}

/** No character beyond ASCII. */
export function isAscii(value: string): boolean {
  return /^[\x00-\x7f]*$/.test(value);
}

/**
 * The address as it can go to a server without SMTPUTF8 (RFC 6531 3.2): an ASCII local part
 * with its domain as the A-label; null when the local part is not ASCII, which no ASCII form
 * can say.
 */
export function asciiAddress(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at < 0) return isAscii(address) ? address : null;
  const local = address.slice(0, at);
  return isAscii(local) ? `${local}@${asciiDomain(address.slice(at + 1))}` : null;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})+$`);

/** A domain as written in the config (or in a From header) as a lower-case A-label, or null. */
export function normalizeDomain(domain: string): string | null {
  const ascii = domainToASCII(domain.trim().replace(/\.$/, '').toLowerCase());
  return ascii && ascii.length <= 253 && DOMAIN.test(ascii) ? ascii : null;
}

/**
 * RFC 5321 dot-atom local part, with RFC 6531's UTF-8 letters, marks and digits beside atext:
 * atext words joined by single dots. Other non-ASCII (spaces such as U+3000, U+2028, format
 * characters such as U+200B and U+FEFF, symbols) is left out: some readers take it for
 * whitespace or nothing, so it would name another mailbox to them.
 */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\p{L}\p{M}\p{N}-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\p{L}\p{M}\p{N}-]+)*$/u;
/** A domain as written: ASCII letters, digits, dots and hyphens, or UTF-8 letters, marks and digits of a U-label. */
const DOMAIN_CHARACTERS = /^[A-Za-z0-9.\p{L}\p{M}\p{N}-]+$/u;

/**
 * Why `address` cannot be an envelope address handed over outside SMTP (the HTTP API), or null.
 * SMTP's own command parser never lets a line break, a space or an angle bracket into MAIL FROM
 * or RCPT TO; an address from JSON could carry any of them into the commands Rookery sends on
 * (a CR LF would start a command of its own), so only the plain form is taken: a dot-atom local
 * part (UTF-8 letters allowed, RFC 6531), '@', a domain name (an IDN as its A-label or its
 * U-labels), in Unicode NFC. A local part of at most 64 octets of UTF-8.
 */
export function envelopeAddressProblem(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return 'not an address (local@domain)';
  // One mailbox, one spelling (RFC 6532 3.1): what is kept, compared in SQL, logged and sent on
  // is in NFC, so no reader further on can take two spellings of it for two mailboxes.
  const nfc = address.normalize('NFC');
  if (nfc !== address) return `not in Unicode normalization form C (RFC 6532 3.1): write it as ${JSON.stringify(nfc)}`;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!DOT_ATOM.test(local)) return 'not an address: the part before @ may hold letters, digits, dots (not two in a row, not first or last) and !#$%&\'*+/=?^_`{|}~-';
  if (Buffer.byteLength(local, 'utf8') > 64) return 'the part before @ is longer than 64 characters (octets of UTF-8)';
  if (!DOMAIN_CHARACTERS.test(domain) || normalizeDomain(domain) !== asciiDomain(domain)) return `not a domain name: ${JSON.stringify(domain)}`;
  return null;
}
