import { createHmac, timingSafeEqual } from 'node:crypto';
import { domainOf, splitAddress } from '../mail/address.ts';
import {
  MAX_VERP_MESSAGE_ID_LENGTH,
  MAX_VERP_RECIPIENT_ID_DIGITS,
  VERP_PREFIX,
  VERP_TAG_LENGTH,
  type ReturnPathConfig,
} from '../config/return-path-schema.ts';

/**
 * VERP return paths: an envelope sender per recipient delivery that names the message and the
 * recipient, so that a bounce arriving days later (to the return path, as a new message) can be
 * tied back to the recipient row it is about.
 *
 * Format (all lower case, every character an unquoted dot-atom character of RFC 5321):
 *
 *     b+<messageId>.<recipientId>.<tag>@<bounce domain>
 *
 *   messageId    the queue id, lower-case hex, 1..32 digits (queue ids are 22)
 *   recipientId  the recipient row id in base 36, no leading zeros (the largest safe integer is
 *                11 digits: "2gosa7pa2gv")
 *   tag          the first 10 characters of the lower-case RFC 4648 base32 form of
 *                HMAC-SHA256(secret, "<messageId>.<recipientId in decimal>"): 50 bits, so a forged
 *                or altered address is accepted with odds of 1 in 2^50
 *
 * e.g. `b+0190a4c2e6f1a3b5c7d9e1.2n9c.k3x7q2m4pa@bounces.example.com`. The local part is at most
 * 2 + 32 + 1 + 11 + 1 + 10 = 57 octets (RFC 5321 allows 64). Only lower-case letters, digits,
 * '+' and '.' appear, so a remote MTA that folds the case of the address, as some do, does not
 * break it: parsing is case-insensitive and the tag alphabet has no case.
 */

const MESSAGE_ID = new RegExp(`^[0-9a-f]{1,${MAX_VERP_MESSAGE_ID_LENGTH}}$`);
const LOCAL_PART = new RegExp(
  `^b\\+([0-9a-f]{1,${MAX_VERP_MESSAGE_ID_LENGTH}})\\.([0-9a-z]{1,${MAX_VERP_RECIPIENT_ID_DIGITS}})\\.([a-z2-7]{${VERP_TAG_LENGTH}})$`,
);
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export interface VerpIds {
  /** The queue id of the message. */
  messageId: string;
  /** The recipient row id. */
  recipientId: number;
}

/**
 * The VERP envelope sender for one recipient's delivery. Throws for a message id that is not
 * lower-case hex of 1..32 digits or a recipient id that is not a safe non-negative integer: both
 * come from the queue, so either is a defect, not a condition to deliver around.
 */
export function verpAddress(input: VerpIds & { domain: string; secret: string }): string {
  const { messageId, recipientId, domain, secret } = input;
  if (!MESSAGE_ID.test(messageId)) throw new Error(`VERP: message id is not lower-case hex of 1..${MAX_VERP_MESSAGE_ID_LENGTH} digits: ${JSON.stringify(messageId)}`);
  if (!Number.isSafeInteger(recipientId) || recipientId < 0) throw new Error(`VERP: recipient id is not a non-negative integer: ${recipientId}`);
  return `${VERP_PREFIX}${messageId}.${recipientId.toString(36)}.${tagOf(messageId, recipientId, secret)}@${domain.toLowerCase()}`;
}

/**
 * The message and recipient a VERP address names, or null when the address is not exactly what
 * verpAddress produces (any case), its tag does not verify, or - when `domains` is given - its
 * domain is not one of them. `domains` holds lower-case bounce domains (see bounceDomains);
 * without it the domain is not checked.
 */
export function parseVerpAddress(address: string, secret: string, options: { domains?: ReadonlySet<string> } = {}): VerpIds | null {
  // ASCII only, before folding case: Unicode lower-casing maps some non-ASCII letters (the Kelvin sign) to ASCII ones.
  if (!/^[\x21-\x7e]+$/.test(address)) return null;
  const lower = address.toLowerCase();
  const parts = splitAddress(lower);
  if (!parts || (options.domains && !options.domains.has(parts.domain))) return null;
  const match = LOCAL_PART.exec(parts.local);
  if (!match) return null;
  const [, messageId, encodedRecipient, tag] = match as unknown as [string, string, string, string];
  const recipientId = parseInt(encodedRecipient, 36);
  // One address per recipient: a non-canonical form ("00a" for "a") is not one we generate.
  if (!Number.isSafeInteger(recipientId) || recipientId.toString(36) !== encodedRecipient) return null;
  const expected = Buffer.from(tagOf(messageId, recipientId, secret), 'latin1');
  return timingSafeEqual(expected, Buffer.from(tag, 'latin1')) ? { messageId, recipientId } : null;
}

/**
 * The envelope sender for delivering message `messageId` to recipient `recipientId`: a VERP
 * address at the sender domain's bounce domain when `config` lists the sender's domain, else
 * `sender` unchanged. The null sender ('') stays null: a bounce or DSN must never draw a bounce.
 *
 * With VERP the envelope sender differs per recipient, so each recipient needs a mail
 * transaction of its own: a job for a sender domain with a return path must carry one recipient
 * (several transactions may still share one connection).
 */
export function returnPathFor(input: VerpIds & { sender: string; config: ReturnPathConfig }): string {
  const { sender, config } = input;
  if (sender === '') return sender;
  if (!sender.includes('@')) return sender;
  const domain = returnPathDomainOf(domainOf(sender), config);
  if (domain === null) return sender;
  // The schema requires a secret whenever a domain is listed.
  if (config.secret === null) throw new Error('VERP: returnPath.domains lists a domain but returnPath.secret is not set');
  return verpAddress({ messageId: input.messageId, recipientId: input.recipientId, domain, secret: config.secret });
}

/** The bounce domain of a sender domain (any case), or null when it has no VERP return path. */
export function returnPathDomainOf(senderDomain: string, config: ReturnPathConfig): string | null {
  const key = senderDomain.toLowerCase();
  // Own keys only: a sender domain such as "constructor" must not find Object.prototype.
  return Object.hasOwn(config.domains, key) ? config.domains[key]!.domain : null;
}

/** Every bounce domain the config uses, lower case: the `domains` to give parseVerpAddress. */
export function bounceDomains(config: ReturnPathConfig): Set<string> {
  return new Set(Object.values(config.domains).map((entry) => entry.domain));
}

function tagOf(messageId: string, recipientId: number, secret: string): string {
  const mac = createHmac('sha256', secret).update(`${messageId}.${recipientId}`).digest();
  return base32(mac).slice(0, VERP_TAG_LENGTH);
}

/** RFC 4648 base32 in lower case, without padding (also the unsubscribe mailto tag's alphabet). */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}
