import { BlockList, isIP } from 'node:net';
import type { ErrorCode } from '../errors.ts';
import { senderAllowed } from '../access/allowed-senders.ts';

/**
 * Who may hand mail to Rookery. A transaction is accepted when
 *  - the session is authenticated and MAIL FROM matches one of the user's allowedSenders, or
 *  - the client address is in smtp.trustedNetworks.
 * Everything else is refused; there is no open relay:
 *  - authenticated, sender not allowed  -> 553 5.7.1 at MAIL FROM (SENDER_NOT_ALLOWED)
 *  - not authenticated, not trusted     -> 554 5.7.1 at every RCPT TO (RELAY_DENIED), so the
 *    transaction can never reach DATA. MAIL FROM itself is answered 250, as Postfix does, so the
 *    client sees the refusal where RFC 5321 clients expect relay decisions.
 * An authenticated session is held to its user's allowedSenders even from a trusted network:
 * having logged in, the client speaks as that user, and a leaked credential used from inside
 * the network still cannot send as anyone else.
 */

export interface RelayClient {
  /** The authenticated user's allowedSenders, or null when the session has not authenticated. */
  allowedSenders: readonly string[] | null;
  /** The client address is in smtp.trustedNetworks. */
  trusted: boolean;
  /** The session logged in as a user the configuration no longer has (a reload removed it). */
  removed?: boolean;
}

/** Decision at MAIL FROM: null accepts, otherwise the error to answer with. */
export function checkMailFrom(client: RelayClient, sender: string): ErrorCode | null {
  if (client.removed) return 'RELAY_DENIED';
  if (client.allowedSenders === null) return null;
  return senderAllowed(client.allowedSenders, sender) ? null : 'SENDER_NOT_ALLOWED';
}

/** Decision at RCPT TO: null accepts, otherwise the error to answer with. */
export function checkRcptTo(client: RelayClient): ErrorCode | null {
  if (client.removed) return 'RELAY_DENIED';
  return client.trusted || client.allowedSenders !== null ? null : 'RELAY_DENIED';
}

/**
 * Matches client addresses against CIDR networks (IPv4 and IPv6). IPv4-mapped IPv6 addresses
 * (::ffff:10.1.2.3, as a dual-stack listener reports IPv4 clients) match IPv4 networks and
 * vice versa; node's BlockList does that mapping.
 */
export class NetworkMatcher {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [address = '', bits] = cidr.split('/');
      const family = isIP(address);
      if (family === 0) throw new Error(`not a network in CIDR form: ${cidr}`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new Error(`not a network in CIDR form: ${cidr}`);
      }
      this.list.addSubnet(address, prefix, type);
    }
    this.empty = cidrs.length === 0;
  }

  contains(ip: string): boolean {
    if (this.empty) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    return this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}
