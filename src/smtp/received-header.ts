import { isIP, isIPv6 } from 'node:net';
import { rfc5322Date } from '../mail/message-headers.ts';

export interface ReceivedTrace {
  /** What the client said in HELO/EHLO. */
  helo: string;
  /** Reverse DNS name of the client, or null when there is none. */
  reverseName: string | null;
  clientIp: string;
  /** Our own host name (config.hostname). */
  hostname: string;
  /** RFC 3848 protocol: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
  /** Session id, to find the session in our logs. */
  id: string;
  at: number;
}

/**
 * The Received trace field (RFC 5321 section 4.4) for a submitted message, without the
 * "Received:" name and without the final CRLF, folded so no line gets long:
 *
 *   from app.example (app.example [192.0.2.10])
 *   	by mail.example (Rookery) with ESMTPSA id 0123abcd;
 *   	Sun, 22 Nov 2026 10:00:00 +0000
 */
export function receivedField(trace: ReceivedTrace): string {
  const literal = isIPv6(trace.clientIp) ? `[IPv6:${trace.clientIp}]` : `[${trace.clientIp}]`;
  const name = trace.reverseName && isHostname(trace.reverseName) ? trace.reverseName : trace.clientIp;
  // RFC 5321 4.4 wants a domain or an address literal after "from"; any other EHLO argument
  // (markup, 8-bit bytes, a bare word) goes into the comment, percent-encoded.
  const helo = isHostname(trace.helo) || isAddressLiteral(trace.helo) ? trace.helo : null;
  const claimed = helo === null && trace.helo ? ` helo=${percentEncoded(trace.helo)}` : '';
  return (
    `from ${helo ?? literal} (${name} ${literal}${claimed})\r\n` +
    `\tby ${trace.hostname} (Rookery) with ${trace.protocol} id ${trace.id};\r\n` +
    `\t${rfc5322Date(trace.at)}`
  );
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`, 'i');

/** Letters, digits, hyphens (and the underscore real PTR records carry) in dot-separated labels. */
function isHostname(value: string): boolean {
  return HOSTNAME.test(value);
}

/** [192.0.2.1] or [IPv6:2001:db8::1]. */
function isAddressLiteral(value: string): boolean {
  const inner = /^\[(?:ipv6:)?([0-9a-f:.]+)\]$/i.exec(value)?.[1];
  return inner !== undefined && isIP(inner) === (/^\[ipv6:/i.test(value) ? 6 : 4);
}

/** Only hostname characters stay as they are; every other byte of the UTF-8 form is %XX. Bounded. */
function percentEncoded(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value.slice(0, 64), 'utf8')) {
    out += /[A-Za-z0-9._-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
