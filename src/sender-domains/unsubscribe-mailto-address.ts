import { createHmac, timingSafeEqual } from 'node:crypto';
import { splitAddress } from '../mail/address.ts';
import { unsubscribeKey } from './unsubscribe-token.ts';
import { base32 } from './verp.ts';

/**
 * The mailto: form of List-Unsubscribe (RFC 2369), answered by mail to
 *
 *     unsub+<messageId>.<tag>@<mailto domain>
 *
 *   messageId  the queue id of the message, lower-case hex (22 digits; 1..32 accepted)
 *   tag        the first 16 characters of the lower-case base32 form of HMAC-SHA256(key,
 *              messageId), the key derived from unsubscribe.secret: 80 bits, so a guessed or
 *              altered address is accepted with odds of 1 in 2^80
 *
 * RFC 5321 caps a local part at 64 octets, too few for the encrypted token of the https link
 * (an address alone may take 254). So the address carries a reference instead: a message that
 * gets these headers has exactly one recipient (the queue gives each recipient a copy of its
 * own), so its queue id names tenant and recipient, read from the store. The price: the
 * mailto form works while the message is kept (storage.retention after its delivery, 7 days by
 * default); the https link, which mail clients prefer (RFC 8058), works for good.
 * The local part is 6 + 22 + 1 + 16 = 45 octets. Lower case only, so an MTA that folds the
 * case of the address does not break it.
 */

export const MAILTO_PREFIX = 'unsub+';
const TAG_LENGTH = 16;
const LOCAL_PART = new RegExp(`^unsub\\+([0-9a-f]{1,32})\\.([a-z2-7]{${TAG_LENGTH}})$`);

export interface MailtoAddresses {
  /** The address for message `messageId` at `domain`. */
  address(messageId: string, domain: string): string;
  /**
   * The message an address names, or null when it is not one address() makes (any case), its
   * tag does not verify with the secret or a previous one, or its domain is not in `domains`.
   */
  messageOf(address: string, domains: ReadonlySet<string>): string | null;
}

export function createMailtoAddresses(secret: string, previous: readonly string[] = []): MailtoAddresses {
  const keys = [secret, ...previous].map((s) => unsubscribeKey(s, 'mailto'));
  const tagOf = (key: Buffer, messageId: string) => base32(createHmac('sha256', key).update(messageId).digest()).slice(0, TAG_LENGTH);

  return {
    address(messageId, domain) {
      return `${MAILTO_PREFIX}${messageId}.${tagOf(keys[0]!, messageId)}@${domain}`;
    },

    messageOf(address, domains) {
      // ASCII only, before folding case: Unicode lower-casing maps some non-ASCII letters to ASCII ones.
      if (address.length > 254 || !/^[\x21-\x7e]+$/.test(address)) return null;
      const parts = splitAddress(address.toLowerCase());
      if (!parts || !domains.has(parts.domain)) return null;
      const match = LOCAL_PART.exec(parts.local);
      if (!match) return null;
      const [, messageId, tag] = match as unknown as [string, string, string];
      const given = Buffer.from(tag, 'latin1');
      return keys.some((key) => timingSafeEqual(Buffer.from(tagOf(key, messageId), 'latin1'), given)) ? messageId : null;
    },
  };
}
