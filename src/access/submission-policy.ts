import type { ErrorCode } from '../errors.ts';
import { addressKey } from '../mail/address.ts';
import { checkAuthors, type AuthorRefusal } from './author-check.ts';

/**
 * The checks a message passes before it is queued, whichever door it came in by (SMTP
 * submission or the HTTP API), so that neither door is the easier way in: the size of its header
 * block, its author fields against the client's allowedSenders, and its recipients.
 */

/**
 * Largest header block accepted, in bytes. Every step that reads or edits the header block (the
 * author check, the queue's own fields, DKIM signing) costs time in proportion to it, on the
 * thread that answers every client (a 20 MB block of tiny fields costs seconds); real messages
 * stay far below this.
 */
export const MAX_HEADER_BYTES = 256 * 1024;

export type HeaderRefusal = AuthorRefusal | { code: Extract<ErrorCode, 'HEADER_TOO_LARGE'>; message: string; bytes: number };

/**
 * null when the header block (as splitHeader gives it) may be queued: at most MAX_HEADER_BYTES,
 * then author fields that read one way only and, for a client with allowedSenders (null: a
 * trusted network), name only addresses it may send as (author-check.ts).
 */
export function checkHeaderBlock(header: string, allowedSenders: readonly string[] | null): HeaderRefusal | null {
  if (header.length > MAX_HEADER_BYTES) {
    return { code: 'HEADER_TOO_LARGE', message: `Message header block is larger than ${MAX_HEADER_BYTES} bytes`, bytes: header.length };
  }
  return checkAuthors(header, allowedSenders);
}

export type RecipientRefusal = { code: Extract<ErrorCode, 'BAD_ADDRESS' | 'TOO_MANY_RECIPIENTS'>; message: string };

/**
 * null when `address` may join the recipients already `accepted`: it needs a domain (Rookery
 * relays out, it has no local mailbox for a bare "postmaster"), and a new address (case ignored,
 * an IDN in either form: mail/address.ts addressKey) may not take the count past `max`. A repeated address is no new recipient.
 */
export function checkRecipient(address: string, accepted: readonly string[], max: number): RecipientRefusal | null {
  if (!address.includes('@')) return { code: 'BAD_ADDRESS', message: 'Recipient address must have a domain' };
  const key = addressKey(address);
  const repeated = accepted.some((r) => addressKey(r) === key);
  if (!repeated && accepted.length >= max) return { code: 'TOO_MANY_RECIPIENTS', message: 'Too many recipients' };
  return null;
}
