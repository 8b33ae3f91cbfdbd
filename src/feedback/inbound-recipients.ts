import type { MailtoUnsubscribe } from './unsubscribe-mailto.ts';
import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import { domainOf } from '../mail/address.ts';
import { bounceDomains, parseVerpAddress, type VerpIds } from '../sender-domains/verp.ts';

/**
 * Whom the inbound listener takes mail for (RCPT TO), and as what: a VERP return path whose tag
 * verifies at a configured bounce domain (a bounce, or a complaint sent to the return path), a
 * feedback-loop address (ARF complaints), or an address the unsubscribe handler takes. Anyone
 * else is refused, so the listener is never a relay. Pure.
 */

/** What the recipient checks read, from the configuration in effect (a reload may change it). */
export interface InboundAddressing {
  returnPath: ReturnPathConfig;
  /** Lower case. */
  fblAddresses: readonly string[];
  unsubscribe?: Pick<MailtoUnsubscribe, 'accepts'>;
}

export type InboundTarget =
  | ({ kind: 'verp'; address: string } & VerpIds)
  | { kind: 'fbl'; address: string }
  | { kind: 'unsubscribe'; address: string };

/** A refused recipient, with the reason for the log (the remote hears one 550 5.7.1 for all). */
export type RefusedRecipient = { kind: 'refused'; reason: 'verp-tag-invalid' | 'not-ours' };

export function inboundTarget(address: string, addressing: InboundAddressing): InboundTarget | RefusedRecipient {
  const lower = address.toLowerCase();
  // postmaster of a bounce domain (RFC 5321 4.5.1 requires it) is read as a feedback address:
  // abuse reports are what arrives there; anything else is dropped as a feedback address's is.
  const postmaster = lower.startsWith('postmaster@') && bounceDomains(addressing.returnPath).has(domainOf(lower));
  if (addressing.fblAddresses.includes(lower) || postmaster) return { kind: 'fbl', address };
  const verp = verpIdsOf(address, addressing.returnPath);
  if (verp) return { kind: 'verp', address, ...verp };
  if (addressing.unsubscribe?.accepts(address)) return { kind: 'unsubscribe', address };
  return { kind: 'refused', reason: bounceDomains(addressing.returnPath).has(domainOf(address)) ? 'verp-tag-invalid' : 'not-ours' };
}

/** The message and recipient a VERP address at one of the bounce domains names, when its tag verifies. */
export function verpIdsOf(address: string, returnPath: ReturnPathConfig): VerpIds | null {
  if (returnPath.secret === null) return null;
  return parseVerpAddress(address, returnPath.secret, { domains: bounceDomains(returnPath) });
}
