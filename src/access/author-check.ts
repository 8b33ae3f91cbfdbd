import type { ErrorCode } from '../errors.ts';
import { readAuthors, sameAddresses } from '../mail/authors.ts';
import { senderAllowed } from './allowed-senders.ts';

/**
 * The author fields of a submitted message, From and Sender: what recipients see and what DKIM
 * signs for, read by mail/authors.ts exactly as the signer reads them. Every message must have
 * fields that read one way only (at most one of each, of bounded size, no non-ASCII outside
 * quoted strings and comments). An authenticated user's are also held to allowedSenders, and
 * must parse to exactly the addresses written: a lenient parser reads
 * `<me@allowed.example> <ceo@other.example>` as one address, the first, while a mail program may
 * show the second. Display names (quoted strings, encoded words) and comments are not addresses
 * and are not judged.
 */

export type AuthorRefusal = { code: Extract<ErrorCode, 'BAD_AUTHOR_HEADER' | 'SENDER_NOT_ALLOWED'>; message: string; address?: string };

/** null when the header block's author fields are acceptable; `allowedSenders` null for a session without a user. */
export function checkAuthors(header: string, allowedSenders: readonly string[] | null): AuthorRefusal | null {
  const authors = readAuthors(header);
  if (!authors.ok) return { code: 'BAD_AUTHOR_HEADER', message: authors.problem };
  if (allowedSenders === null) return null;
  for (const { name, addresses, written } of authors.fields) {
    if (!sameAddresses(addresses, written)) {
      return { code: 'BAD_AUTHOR_HEADER', message: `${name} header does not parse as a list of addresses` };
    }
    const foreign = addresses.find((address) => !senderAllowed(allowedSenders, address));
    if (foreign !== undefined) {
      return { code: 'SENDER_NOT_ALLOWED', message: 'From or Sender header address not allowed for this user', address: foreign };
    }
  }
  return null;
}
