import { splitAddress } from '../mail/address.ts';

/**
 * Who a client may send as: the allowedSenders patterns of an SMTP user (smtp.users[]) or of an
 * API token (api.tokens[]), one reading for both doors.
 */

/**
 * True when `sender` matches one of the patterns: "*" (anything, including the null sender <>),
 * "*@domain" (any local part at exactly that domain) or an exact address. Domains compare
 * case-insensitively; local parts exactly, as RFC 5321 leaves their case to the owner.
 */
export function senderAllowed(patterns: readonly string[], sender: string): boolean {
  if (patterns.includes('*')) return true;
  if (sender === '') return false;
  const address = splitAddress(sender);
  if (!address) return false;
  return patterns.some((pattern) => {
    const wanted = splitAddress(pattern);
    if (!wanted) return false;
    return wanted.domain === address.domain && (wanted.local === '*' || wanted.local === address.local);
  });
}
