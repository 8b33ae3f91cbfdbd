import type { BufferBudget } from '../../engine/buffer-budget.ts';
import type { ApiPrincipal } from '../../access/api-token.ts';
import { senderAllowed } from '../../access/allowed-senders.ts';
import { checkHeaderBlock, checkRecipient } from '../../access/submission-policy.ts';
import type { Submission } from '../../engine/queue.ts';
import type { ApiErrorCode, ErrorCode } from '../../errors.ts';
import { addressKey, envelopeAddressProblem } from '../../mail/address.ts';
import { hasHeader, rfc5322Date, splitHeader, withHeaders } from '../../mail/message-headers.ts';
import { toWireForm } from '../../mail/wire-form.ts';

/**
 * A message handed over through the HTTP API, between the request and the queue: its envelope,
 * its bytes in wire form and the options it came with, and the checks SMTP makes of the same
 * things (src/access/submission-policy.ts), against the token's allowedSenders. Every refusal
 * names the place of the request it is about (`body.to[2]`, `querystring.from`), as a schema
 * failure does.
 */

/** The same limits as SMTP submission: smtp.maxMessageBytes and smtp.maxRecipients. */
export interface SendLimits {
  maxMessageBytes: number;
  maxRecipients: number;
  /**
   * The memory of messages being received (smtp.maxBufferedBytes), shared with the SMTP door:
   * what requests being composed hold counts against the same budget as SMTP's DATA.
   */
  buffers: BufferBudget;
  /** dkim.expiry (x=) in ms, or null for none: a scheduled send must go out before it passes. */
  dkimExpiryMs?: number | null;
}

/**
 * A scheduled message is signed when it is accepted, so its signature must still hold when it
 * goes: a sendAt is at most dkim.expiry ahead less this margin (for the first attempt's delay).
 */
export const DKIM_EXPIRY_MARGIN_MS = 3_600_000;

/** The furthest ahead a send may be scheduled: a month of mail waiting is already a lot to keep. */
export const MAX_SCHEDULE_MS = 30 * 86_400_000;

/** Why a message was refused, as the fields of a problem document. */
export interface Refusal {
  code: ErrorCode | ApiErrorCode;
  detail: string;
  errors?: Array<{ path: string; message: string }>;
}

export interface Draft {
  sender: string;
  recipients: string[];
  /** Wire form (CRLF). */
  body: Buffer;
  pool: string | null;
  sendAt: number | null;
  tags: readonly string[];
  metadata: Readonly<Record<string, string>> | null;
}

/** A 400 naming one place of the request. */
export function invalid(path: string, message: string): Refusal {
  return { code: 'INVALID_REQUEST', detail: `${path}: ${message}`, errors: [{ path, message }] };
}

/** A refusal of a registry code about one place of the request. */
export function refusedAt(code: ErrorCode | ApiErrorCode, path: string, message: string): Refusal {
  return { code, detail: `${path}: ${message}`, errors: [{ path, message }] };
}

/**
 * The envelope recipients from addresses at `places` (each with its request path), checked one
 * by one as SMTP checks each RCPT TO: a plain address, and no more than maxRecipients different
 * ones. An address given twice (case aside, an IDN in either form) is one recipient.
 */
export function envelopeRecipients(places: ReadonlyArray<{ path: string; address: string }>, limits: SendLimits, at: string): string[] | Refusal {
  if (places.length === 0) return invalid(at, 'no recipient: give at least one');
  const recipients: string[] = [];
  for (const { path, address } of places) {
    const problem = envelopeAddressProblem(address);
    if (problem) return invalid(path, problem);
    const refusal = checkRecipient(address, recipients, limits.maxRecipients);
    if (refusal) return refusedAt(refusal.code, path, `${refusal.message} (at most ${limits.maxRecipients}, smtp.maxRecipients)`);
    const key = addressKey(address);
    if (!recipients.some((r) => addressKey(r) === key)) recipients.push(address);
  }
  return recipients;
}

/** A sendAt as milliseconds: null for none or a time already past (sent at once); at most MAX_SCHEDULE_MS ahead. */
export function scheduledAt(value: string | undefined, path: string, now: number, limits: Pick<SendLimits, 'dkimExpiryMs'>): number | null | Refusal {
  if (value === undefined) return null;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return invalid(path, `not a time this API can read: ${JSON.stringify(value)}`);
  if (ms - now > MAX_SCHEDULE_MS) return invalid(path, 'at most 30 days ahead');
  const expiry = limits.dkimExpiryMs ?? null;
  if (expiry !== null && ms > now && ms - now > expiry - DKIM_EXPIRY_MARGIN_MS) {
    return invalid(path, `at most ${Math.max(0, Math.floor((expiry - DKIM_EXPIRY_MARGIN_MS) / 60_000))} minutes ahead: the message is DKIM-signed now and its signature expires after dkim.expiry, less an hour for the first attempt`);
  }
  return ms > now ? ms : null;
}

/**
 * A message/rfc822 body with its envelope from the query, as a mail server takes one: measured
 * in the CRLF form it is stored in (a message of LF lines grows by a byte a line), with a header
 * block ended by a blank line and a From field, and without its Bcc fields (the envelope carries
 * those recipients; a stored Bcc would show them to everyone, as Postfix's cleanup removes it).
 * Scheduled without a Date, it is dated when it goes.
 */
export function rawDraft(
  query: { from?: string; to?: string[]; pool?: string; sendAt?: string; tag?: string[] },
  body: Buffer,
  limits: SendLimits,
  now: number,
): Draft | Refusal {
  const wire = toWireForm(body);
  if (wire.length > limits.maxMessageBytes) {
    const grown = wire.length > body.length ? ` once its lines end in CRLF (${body.length} as sent)` : '';
    return refusedAt('MESSAGE_TOO_LARGE', 'body', `${wire.length} bytes${grown}, more than ${limits.maxMessageBytes} (smtp.maxMessageBytes)`);
  }
  if (query.from === undefined) return invalid('querystring.from', 'required with a message/rfc822 body: the envelope sender');
  const senderProblem = envelopeAddressProblem(query.from);
  if (senderProblem) return invalid('querystring.from', senderProblem);
  const recipients = envelopeRecipients((query.to ?? []).map((address, i) => ({ path: `querystring.to[${i}]`, address })), limits, 'querystring.to');
  if (!Array.isArray(recipients)) return recipients;
  const sendAt = scheduledAt(query.sendAt, 'querystring.sendAt', now, limits);
  if (sendAt !== null && typeof sendAt === 'object') return sendAt;
  const { header, body: text } = splitHeader(wire);
  // splitHeader takes a message without the blank line as all header: text would become fields.
  if (text.length === 0) return invalid('body', 'no blank line after the header fields: a message is its header fields, an empty line, then its text');
  if (!hasHeader(header, 'From')) return refusedAt('BAD_AUTHOR_HEADER', 'body', 'no From header field: a message names its author (RFC 5322 section 3.6)');
  const date = sendAt !== null && !hasHeader(header, 'Date') ? [`Date: ${rfc5322Date(sendAt)}`] : [];
  const stored = date.length || hasHeader(header, 'Bcc') ? withHeaders(wire, [], date, ['Bcc']) : wire;
  return { sender: query.from, recipients, body: stored, pool: query.pool ?? null, sendAt, tags: query.tag ?? [], metadata: null };
}

/**
 * The checks of the token and the message: a token sends only as its allowedSenders (never
 * implied), in the envelope and in the From and Sender fields alike, and the header block holds
 * to the same limits as over SMTP. `at` is where the sender was given (body.from, querystring.from).
 */
export function checkDraft(draft: Draft, principal: ApiPrincipal, at: string): Refusal | null {
  const allowed = principal.allowedSenders;
  if (allowed === null) {
    return { code: 'SENDER_NOT_ALLOWED', detail: `Token "${principal.name}" has no allowedSenders (api.tokens[].allowedSenders), so it may send no mail` };
  }
  if (!senderAllowed(allowed, draft.sender)) return refusedAt('SENDER_NOT_ALLOWED', at, `${draft.sender} is not among this token's allowedSenders`);
  const refusal = checkHeaderBlock(splitHeader(draft.body).header, allowed);
  if (refusal) return { code: refusal.code, detail: refusal.message };
  return null;
}

/** What the queue takes from a checked draft. */
export function toSubmission(draft: Draft, principal: ApiPrincipal, clientAddress: string): Submission {
  return {
    sender: draft.sender,
    recipients: draft.recipients,
    body: draft.body,
    submitter: principal.name,
    tenant: principal.tenant,
    source: 'http',
    clientAddress,
    pool: draft.pool,
    sendAt: draft.sendAt,
    tags: draft.tags,
    metadata: draft.metadata,
    // The answer lists each recipient: a suppressed one is refused there (suppression.action reject).
    suppressedRecipients: 'refuse',
  };
}
