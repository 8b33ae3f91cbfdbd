import { z } from 'zod';

/**
 * The config's `returnPath:` key: which sender domains get a VERP return path
 * (src/sender-domains/verp.ts) and the HMAC secret that tags it. Absent or `{}`: off, every
 * envelope sender is left as given.
 *
 *     returnPath:
 *       secret: "at least 32 random characters"   # or ROOKERY_VERP_SECRET
 *       domains:
 *         example.com: { domain: bounces.example.com }
 *         example.org: {}                           # bounce domain bounces.example.org
 *
 * Sender domains match exactly (case-insensitive): a subdomain that sends needs its own entry.
 * Changing the secret makes the return paths of mail already sent unverifiable, so bounces for
 * it can no longer be tied to their recipient.
 */

export interface ReturnPathDomain {
  /** Lower-case domain of the VERP address, where bounces for this sender domain arrive. */
  domain: string;
}

export interface ReturnPathConfig {
  /** HMAC key of the tag; null only while no domain is listed. */
  secret: string | null;
  /** Lower-case sender domain -> its return path. */
  domains: Readonly<Record<string, ReturnPathDomain>>;
}

export const MIN_VERP_SECRET_LENGTH = 32;

/**
 * The parts of a VERP local part, `b+<messageId>.<recipientId>.<tag>` (src/sender-domains/verp.ts),
 * whose lengths bound the bounce domain a config may name.
 */
export const VERP_PREFIX = 'b+';
export const VERP_TAG_LENGTH = 10;
/** Longest message id encoded; longer ids would push the local part towards the 64-octet limit. */
export const MAX_VERP_MESSAGE_ID_LENGTH = 32;
/** Recipient ids are written in base 36; the largest safe integer takes 11 digits. */
export const MAX_VERP_RECIPIENT_ID_DIGITS = Number.MAX_SAFE_INTEGER.toString(36).length;
/** The longest local part a VERP address has (57; RFC 5321 allows 64). */
export const MAX_VERP_LOCAL_PART_LENGTH = VERP_PREFIX.length + MAX_VERP_MESSAGE_ID_LENGTH + 1 + MAX_VERP_RECIPIENT_ID_DIGITS + 1 + VERP_TAG_LENGTH;

/**
 * RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets, so the bounce domain
 * may take what the longest VERP local part and the '@' leave.
 */
export const MAX_BOUNCE_DOMAIN_LENGTH = 256 - 2 - MAX_VERP_LOCAL_PART_LENGTH - 1;

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'i');

function domainProblem(domain: string, maxLength: number): string | null {
  if (!DOMAIN.test(domain)) return `not a domain name: ${JSON.stringify(domain)}`;
  if (domain.length > maxLength) return `longer than ${maxLength} characters: ${domain}`;
  return null;
}

export const verpConfigSchema = z
  .strictObject({
    secret: z
      .string()
      .min(MIN_VERP_SECRET_LENGTH, {
        message: `too short: use at least ${MIN_VERP_SECRET_LENGTH} random characters (e.g. from \`openssl rand -base64 48\`)`,
      })
      .optional(),
    /** `example.com:` with no value means the same as `example.com: {}`. */
    domains: z.record(z.string(), z.strictObject({ domain: z.string().optional() }).nullable()).default({}),
  })
  .transform((value, ctx): ReturnPathConfig => {
    const domains: Record<string, ReturnPathDomain> = {};
    for (const [key, entry] of Object.entries(value.domains)) {
      const keyProblem = domainProblem(key, 253);
      if (keyProblem) {
        ctx.addIssue({ code: 'custom', path: ['domains', key], message: keyProblem });
        continue;
      }
      const sender = key.toLowerCase();
      if (Object.hasOwn(domains, sender)) {
        ctx.addIssue({ code: 'custom', path: ['domains', key], message: `${sender} is listed twice (domains are not case-sensitive)` });
        continue;
      }
      const bounce = entry?.domain ?? `bounces.${sender}`;
      const bounceProblem = domainProblem(bounce, MAX_BOUNCE_DOMAIN_LENGTH);
      if (bounceProblem) {
        const path = entry?.domain === undefined ? ['domains', key] : ['domains', key, 'domain'];
        const what = entry?.domain === undefined ? 'default bounce domain ' : '';
        ctx.addIssue({ code: 'custom', path, message: `${what}${bounceProblem}` });
        continue;
      }
      domains[sender] = { domain: bounce.toLowerCase() };
    }
    if (Object.keys(value.domains).length > 0 && value.secret === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['secret'],
        message: 'required when returnPath.domains lists a domain (or set ROOKERY_VERP_SECRET)',
      });
    }
    return { secret: value.secret ?? null, domains };
  })
  .prefault({});

export type ReturnPathConfigInput = z.input<typeof verpConfigSchema>;
