import { z } from 'zod';
import { positiveDurationSchema } from './duration.ts';

/**
 * Outbound TLS (src/engine/tls/): the mode mail to a domain is held to, MTA-STS (RFC 8461) and
 * TLS reporting (RFC 8460). Part of `delivery`.
 */

/** opportunistic: TLS when offered, else clear. required: STARTTLS must succeed. verify: and the certificate must be valid for the MX name. */
export const tlsModeSchema = z.enum(['opportunistic', 'required', 'verify']);

/** A recipient domain, ".parent.domain" (its subdomains) or "*", as delivery.routes keys. */
const DOMAIN_PATTERN = /^(\*|\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)$/;

/** Keys are checked here rather than by a key schema, so a bad one is named by its own path. */
export const tlsPoliciesSchema = z
  .record(z.string(), tlsModeSchema)
  .superRefine((policies, ctx) => {
    for (const key of Object.keys(policies)) {
      if (!DOMAIN_PATTERN.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'not a domain, ".parent.domain" or "*"' });
    }
  })
  .default({});

export const mtaStsConfigSchema = z
  .strictObject({
    /** Look up and apply recipient domains' MTA-STS policies. */
    enabled: z.boolean().default(true),
    /** One policy fetch, connect to last byte. */
    fetchTimeout: positiveDurationSchema.refine((ms) => ms <= 60_000, { message: 'at most 60s' }).default(10_000),
    /** How long a domain's answer (policy or none) is reused before its _mta-sts TXT record is asked again. */
    recheck: positiveDurationSchema.default(300_000),
    /** Fetch policies from hosts that resolve to private or loopback addresses (off: only public ones). */
    allowPrivateNetworks: z.boolean().default(false),
  })
  .prefault({});

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, { message: 'not an email address' });

export const tlsReportsConfigSchema = z
  .strictObject({
    /** Count TLS sessions per recipient domain and send the daily reports the domains ask for (_smtp._tls TXT). */
    enabled: z.boolean().default(true),
    /** organization-name of the reports; default: the hostname. */
    organization: z.string().min(1).optional(),
    /** contact-info of the reports (an address or URL); default: postmaster@ the hostname. */
    contact: z.string().min(1).optional(),
    /** The From of reports sent by mail; default: noreply-tlsrpt@ the hostname. */
    from: address.optional(),
    /** The pool report mail is sent from. */
    pool: z.string().min(1).default('default'),
    /** POST reports to https rua URIs whose host is a private or loopback address (off: only public ones). */
    allowPrivateNetworks: z.boolean().default(false),
  })
  .prefault({});

export type TlsReportsConfig = z.output<typeof tlsReportsConfigSchema>;
