import { addressparser } from '../vendor/nodemailer.ts';
import { normalizeDomain, splitAddress } from './address.ts';
import { splitHeader } from './message-headers.ts';

/**
 * The author fields of a message, From and Sender, read once for everyone who judges them: the
 * submission check (a user's allowedSenders) and the DKIM signer (d= follows the From domain).
 * Both must see the author a receiver sees, so the field is read as receivers read it: its bytes
 * decoded as UTF-8, then nodemailer's addressparser (mailauth's choice too). A field that another
 * reader could take for a different author is not read at all:
 *  - a second From or Sender: the first would be checked and signed, a mail program may show the
 *    other;
 *  - a field longer than MAX_AUTHOR_FIELD_BYTES: parsing cost grows with it, and no author needs
 *    that much;
 *  - non-ASCII other than UTF-8 letters, marks and digits where it can be part of an address,
 *    outside quoted strings and comments: U+2028, U+3000, U+FEFF and their kind are whitespace
 *    to a UTF-8 reader and letters to a Latin-1 one, so `ceo@victim.example<U+2028>me@app.example`
 *    names another mailbox for each. An internationalized address (RFC 6532: `jörg@bücher.de`)
 *    is made of letters, so it is read; a display name before an <angle-addr>, holding no '@',
 *    may carry any raw UTF-8 (`Jürgen <j@example.de>`: common, and it names no mailbox);
 *    encoded-words are ASCII;
 *  - addresses that come out differently when the bytes are decoded as Latin-1 (the UTF-8
 *    reading's addresses, as bytes, must be what a Latin-1 reader finds).
 */

/** Longest From or Sender field value (with its folding), in bytes. */
export const MAX_AUTHOR_FIELD_BYTES = 4096;

export type AuthorFieldName = 'From' | 'Sender';

export interface AuthorField {
  name: AuthorFieldName;
  /** The addresses the parser finds, groups flattened; an entry without an address is ''. */
  addresses: string[];
  /**
   * Everything written as an address: each <angle-addr> (source route dropped), and each other
   * word with an '@', once quoted strings and comments are set aside. A lenient parser may read
   * fewer (`<me@app.example> <ceo@other.example>` is one address to addressparser).
   */
  written: string[];
}

export type Authors = { ok: true; fields: AuthorField[] } | { ok: false; problem: string };

const AUTHOR_FIELDS: readonly AuthorFieldName[] = ['From', 'Sender'];
/** The start of an author field's line: its name, optional blanks, the colon. */
const AUTHOR_FIELD_START = /^(from|sender)[ \t]*:/i;
/** Non-ASCII that is no letter, mark or digit: never part of an address (see above). */
const NON_ADDRESS_CHARACTER = /[^\x00-\x7f\p{L}\p{M}\p{N}]/u;

/** The From and Sender fields of a header block (as splitHeader gives it, one char per byte). */
export function readAuthors(header: string): Authors {
  const found = locateAuthorFields(header);
  for (const name of AUTHOR_FIELDS) {
    if (found[name].length > 1) return { ok: false, problem: `Message has more than one ${name} header` };
  }
  const fields: AuthorField[] = [];
  for (const name of AUTHOR_FIELDS) {
    const [span] = found[name];
    if (!span) continue;
    if (span.end - span.start > MAX_AUTHOR_FIELD_BYTES) return { ok: false, problem: `${name} header is longer than ${MAX_AUTHOR_FIELD_BYTES} bytes` };
    const bytes = header.slice(span.start, span.end).replace(/\r\n/g, '').trim();
    const text = Buffer.from(bytes, 'latin1').toString('utf8');
    const bare = withoutQuotesAndComments(text);
    if (nonAsciiNearAddresses(bare)) return { ok: false, problem: `${name} header has non-ASCII characters other than letters outside quoted strings, comments and display names` };
    const addresses = parsedAddresses(text);
    // A quoted local part is set aside above, yet it is the address itself: held to letters too.
    if (addresses.some((address) => NON_ADDRESS_CHARACTER.test(address))) return { ok: false, problem: `${name} header has an address with non-ASCII characters other than letters` };
    // An ASCII field reads the same either way (it decodes to itself): only other fields are parsed twice.
    const asBytes = text === bytes ? null : addresses.map((address) => Buffer.from(address, 'utf8').toString('latin1'));
    if (asBytes && !sameAddresses(asBytes, parsedAddresses(bytes))) return { ok: false, problem: `${name} header reads differently as UTF-8 and as Latin-1` };
    fields.push({ name, addresses, written: writtenAddresses(bare) });
  }
  return { ok: true, fields };
}

/**
 * The domain DKIM signs for: that of the (first) address of the From field, as a lower-case
 * A-label; null when the message has no readable From (see readAuthors) or it has no domain.
 */
export function authorDomain(message: Buffer): string | null {
  const authors = readAuthors(splitHeader(message).header);
  if (!authors.ok) return null;
  const address = authors.fields.find((field) => field.name === 'From')?.addresses[0] ?? '';
  const domain = splitAddress(address)?.domain;
  return domain ? normalizeDomain(domain) : null;
}

/** Same addresses, in any order, domains and local parts compared case-insensitively. */
export function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  const norm = (list: readonly string[]) => list.map((x) => x.toLowerCase()).sort();
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

/**
 * Where each author field's value lies: from after the colon to the end of its last continuation
 * line. One pass over the lines, no regular expression over the block, so its cost is linear in
 * the block's size whatever the block holds.
 */
function locateAuthorFields(header: string): Record<AuthorFieldName, Array<{ start: number; end: number }>> {
  const found: Record<AuthorFieldName, Array<{ start: number; end: number }>> = { From: [], Sender: [] };
  let current: { start: number; end: number } | null = null;
  for (let pos = 0; pos < header.length; ) {
    const lineEnd = header.indexOf('\r\n', pos);
    const end = lineEnd < 0 ? header.length : lineEnd;
    const c = header[pos];
    if (c !== ' ' && c !== '\t') {
      const match = AUTHOR_FIELD_START.exec(header.slice(pos, end));
      current = match ? { start: pos + match[0].length, end } : null;
      if (match) found[match[1]!.toLowerCase() === 'from' ? 'From' : 'Sender'].push(current!);
    }
    if (current) current.end = end;
    pos = end + 2;
  }
  return found;
}

/** The addresses nodemailer's addressparser finds in a field value (groups flattened); an entry without an address is ''. */
export function parsedAddresses(value: string): string[] {
  const addresses: string[] = [];
  const flatten = (list: ReturnType<typeof addressparser>): void => {
    for (const entry of list) {
      if ('group' in entry && entry.group) flatten(entry.group);
      else addresses.push(entry.address ?? '');
    }
  };
  flatten(addressparser(value));
  return addresses;
}

/** What is written as an address in a value whose quoted strings and comments are set aside. */
function writtenAddresses(bare: string): string[] {
  const written: string[] = [];
  const rest = bare.replace(/<([^<>]*)>/g, (_all, inner: string) => {
    written.push(inner.trim().replace(/^@[^:]*:/, ''));
    return ' ';
  });
  for (const word of rest.split(/[\s,;:<>]+/)) if (word.includes('@')) written.push(word);
  return written;
}

/**
 * Non-ASCII that is no letter, mark or digit anywhere but in a display name: each mailbox (or
 * group name) of the list, set apart at ',', ';' and ':', may hold it only before a '<' and only
 * with no '@' before that '<'. UTF-8 letters may stand anywhere (RFC 6532 addresses).
 */
function nonAsciiNearAddresses(bare: string): boolean {
  return bare.split(/[,;:]/).some((part) => {
    if (!NON_ADDRESS_CHARACTER.test(part)) return false;
    const angle = part.indexOf('<');
    if (angle < 0) return part.includes('@');
    const phrase = part.slice(0, angle);
    return phrase.includes('@') || NON_ADDRESS_CHARACTER.test(part.slice(angle));
  });
}

/** The value with each quoted string and (nested) comment replaced by a space. */
function withoutQuotesAndComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (quoted || depth > 0)) i++;
    else if (quoted) quoted = c !== '"';
    else if (c === '(') depth++;
    else if (depth > 0) depth -= c === ')' ? 1 : 0;
    else if (c === '"') quoted = true;
    else {
      out += c;
      continue;
    }
    out += ' ';
  }
  return out;
}
