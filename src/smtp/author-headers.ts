import type { ErrorCode } from '../errors.ts';
import { headerValues } from '../mail/message-headers.ts';
import { addressparser } from '../vendor/nodemailer.ts';
import { senderAllowed } from './relay-policy.ts';

/**
 * The author fields of a submitted message, From and Sender: what recipients see and what DKIM
 * signs for. Every message may have at most one of each (RFC 5322 3.6); otherwise the first
 * would be checked and signed while a mail program could show the other. An authenticated
 * user's are also held to allowedSenders, and must parse to exactly the addresses written: a
 * lenient parser reads `<me@allowed.example> <ceo@other.example>` as one address, the first,
 * while a mail program may show the second. Display names (quoted strings, encoded words) and
 * comments are not addresses and are not judged.
 */

export type AuthorRefusal = { code: Extract<ErrorCode, 'BAD_AUTHOR_HEADER' | 'SENDER_NOT_ALLOWED'>; message: string; address?: string };

const AUTHOR_FIELDS = ['From', 'Sender'] as const;

/** null when the header block's author fields are acceptable; `allowedSenders` null for a session without a user. */
export function checkAuthors(header: string, allowedSenders: readonly string[] | null): AuthorRefusal | null {
  const fields = AUTHOR_FIELDS.map((name) => ({ name, values: headerValues(header, name) }));
  for (const { name, values } of fields) {
    if (values.length > 1) return { code: 'BAD_AUTHOR_HEADER', message: `Message has more than one ${name} header` };
  }
  if (allowedSenders === null) return null;
  for (const { name, values } of fields) {
    const value = values[0];
    if (value === undefined) continue;
    const parsed = parsedAddresses(value);
    if (!sameAddresses(parsed, writtenAddresses(value))) {
      return { code: 'BAD_AUTHOR_HEADER', message: `${name} header does not parse as a list of addresses` };
    }
    const foreign = parsed.find((address) => !senderAllowed(allowedSenders, address));
    if (foreign !== undefined) {
      return { code: 'SENDER_NOT_ALLOWED', message: 'From or Sender header address not allowed for this user', address: foreign };
    }
  }
  return null;
}

/** The addresses the parser finds (groups flattened); an entry without an address is ''. */
function parsedAddresses(value: string): string[] {
  const flatten = (list: ReturnType<typeof addressparser>): string[] =>
    list.flatMap((entry) => ('group' in entry && entry.group ? flatten(entry.group) : [entry.address ?? '']));
  return flatten(addressparser(value));
}

/**
 * Everything written as an address: each <angle-addr> (source route dropped), and each other word
 * with an '@', once quoted strings and comments are set aside.
 */
function writtenAddresses(value: string): string[] {
  const written: string[] = [];
  const rest = withoutQuotesAndComments(value).replace(/<([^<>]*)>/g, (_all, inner: string) => {
    written.push(inner.trim().replace(/^@[^:]*:/, ''));
    return ' ';
  });
  written.push(...rest.split(/[\s,;:<>]+/).filter((word) => word.includes('@')));
  return written;
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

function sameAddresses(a: string[], b: string[]): boolean {
  const norm = (list: string[]) => list.map((x) => x.toLowerCase()).sort();
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}
