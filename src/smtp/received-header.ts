import { isIPv6 } from 'node:net';
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
  const helo = clean(trace.helo) || literal;
  const name = clean(trace.reverseName ?? '') || trace.clientIp;
  return (
    `from ${helo} (${name} ${literal})\r\n` +
    `\tby ${trace.hostname} (Rookery) with ${trace.protocol} id ${trace.id};\r\n` +
    `\t${rfc5322Date(trace.at)}`
  );
}

/**
 * The HELO argument comes from the client: smtp-server already refuses control characters in
 * it; parentheses and whitespace would break the comment structure, so they go too.
 */
function clean(value: string): string {
  return value.replace(/[\s()\\]/g, '').slice(0, 255);
}
