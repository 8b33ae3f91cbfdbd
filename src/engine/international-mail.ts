import { isUtf8 } from 'node:buffer';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import { asciiAddress } from '../mail/address.ts';

/**
 * Internationalised mail on the way out (RFC 6531, SMTPUTF8). Whether a message needs the
 * extension is read from what is stored, each time it goes, instead of a flag kept beside it:
 * its envelope addresses and its header block (bounded by acceptance), a scan of a few kilobytes.
 *
 * A message needs SMTPUTF8 when the sender's or a recipient's local part is not ASCII, or its
 * header block holds UTF-8 beyond ASCII (RFC 6532 header fields). A domain in U-labels alone
 * needs nothing: it has an ASCII form, its A-label.
 *
 * To a server that offers SMTPUTF8, such a message goes as it is, with the SMTPUTF8 parameter on
 * MAIL FROM. To one that does not:
 *  - every domain is written as its A-label (the only downgrade RFC 6531 3.2 leaves a relay);
 *  - a recipient whose local part is not ASCII cannot be named: it is bounced, permanently, with
 *    5.6.7 (a DSN follows); the other recipients of the transaction go;
 *  - a sender whose local part is not ASCII, or UTF-8 header fields, concern every recipient:
 *    all of them are bounced with 5.6.7. Headers are never rewritten (no RFC 2047 encoding of
 *    someone else's message, which would break its DKIM signature and the author's own text).
 * Header bytes beyond ASCII that are not UTF-8 (legacy 8-bit) are no RFC 6532 message: they go
 * as before, with BODY=8BITMIME where the server offers it.
 */

/** The envelope of one transaction as it goes to a server. */
export interface EnvelopeForServer {
  sender: string;
  /** Per recipient of the delivery: the address as written on RCPT TO, or the 5.6.7 outcome it gets instead. */
  recipients: Array<string | DeliveryOutcome>;
  /** MAIL FROM carries the SMTPUTF8 parameter. */
  smtpUtf8: boolean;
}

/** Where the decision is made: the server that lacks the extension, from the egress address. */
export interface ServerContext {
  remoteHost: string;
  egressIp: string | null;
}

/** The envelope of a delivery for a server that does (or does not) offer SMTPUTF8. */
export function envelopeForServer(
  delivery: { sender: string; recipients: readonly string[]; body: Buffer },
  offersSmtpUtf8: boolean,
  server: ServerContext,
): EnvelopeForServer {
  const sender = delivery.sender === '' ? '' : asciiAddress(delivery.sender);
  const recipients = delivery.recipients.map((recipient) => asciiAddress(recipient));
  const utf8Headers = hasUtf8Headers(delivery.body);
  const needed = sender === null || utf8Headers || recipients.some((r) => r === null);
  if (needed && offersSmtpUtf8) return { sender: delivery.sender, recipients: [...delivery.recipients], smtpUtf8: true };
  // The whole message needs what the server lacks: every recipient bounces with the reason.
  const whole = sender === null ? 'the sender address' : utf8Headers ? 'UTF-8 header fields' : null;
  return {
    sender: sender ?? delivery.sender,
    recipients: recipients.map((ascii) => (whole === null && ascii !== null ? ascii : needsSmtpUtf8(whole ?? 'the recipient address', server))),
    smtpUtf8: false,
  };
}

/** The header block (up to the first empty line) holds UTF-8 beyond ASCII. */
export function hasUtf8Headers(body: Buffer): boolean {
  const end = body.indexOf('\r\n\r\n');
  const header = body.subarray(0, end < 0 ? body.length : end);
  return header.some((byte) => byte > 0x7f) && isUtf8(header);
}

/** The permanent result of a recipient a server without SMTPUTF8 cannot take (RFC 6531 3.2: 5.6.7). */
function needsSmtpUtf8(what: string, server: ServerContext): DeliveryOutcome {
  return {
    disposition: 'permanent',
    code: null,
    enhanced: '5.6.7',
    response: `not sent: ${what} needs SMTPUTF8 (RFC 6531), which ${server.remoteHost} does not offer`.replace('fields needs', 'fields need'),
    stage: 'mail',
    bounceClass: 'other',
    remoteHost: server.remoteHost,
    egressIp: server.egressIp,
  };
}
