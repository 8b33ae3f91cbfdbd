import { isUtf8 } from 'node:buffer';
import type { SMTPServerSession } from 'smtp-server';
import type { SmtpReplyCode } from '../errors.ts';

/**
 * RFC 6531 (SMTPUTF8) at the command line, before smtp-server reads it: smtp-server takes UTF-8
 * in MAIL FROM and RCPT TO whether or not the client asked for SMTPUTF8, and turns an A-label
 * domain into U-labels, so only the raw line still says what the client wrote.
 *  - A non-ASCII address needs the transaction to have been opened with `MAIL FROM:<...>
 *    SMTPUTF8` on a listener that offers it: 553 5.6.7 otherwise (RFC 6531 3.6.1).
 *  - The SMTPUTF8 parameter where the listener does not offer it: 555 (RFC 5321 4.1.1.11).
 *  - Non-ASCII bytes that are not UTF-8 name no address in any reading: 501.
 * An A-label domain (ASCII) needs nothing: it is an address without the extension.
 */

export type Utf8Refusal = Extract<SmtpReplyCode, 'SMTPUTF8_REQUIRED' | 'SMTPUTF8_NOT_OFFERED' | 'NOT_UTF8'>;

/** The refusal of a MAIL or RCPT line, or null when it may go on to smtp-server. */
export function utf8EnvelopeRefusal(verb: 'MAIL' | 'RCPT', line: Buffer, session: SMTPServerSession, offered: boolean): Utf8Refusal | null {
  const eightBit = line.some((byte) => byte > 0x7f);
  if (verb === 'MAIL') {
    const asked = mailParameters(line).includes('SMTPUTF8');
    if (asked && !offered) return 'SMTPUTF8_NOT_OFFERED';
    if (!eightBit) return null;
    if (!isUtf8(line)) return 'NOT_UTF8';
    return asked ? null : 'SMTPUTF8_REQUIRED';
  }
  if (!eightBit) return null;
  if (!isUtf8(line)) return 'NOT_UTF8';
  return session.envelope.smtpUtf8 ? null : 'SMTPUTF8_REQUIRED';
}

/** The upper-cased keywords after the reverse-path of a MAIL line (`SIZE=100 SMTPUTF8` -> SIZE, SMTPUTF8). */
function mailParameters(line: Buffer): string[] {
  const text = line.toString('latin1');
  const close = text.lastIndexOf('>');
  if (close < 0) return [];
  return text
    .slice(close + 1)
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((parameter) => parameter.split('=')[0]!.toUpperCase());
}
