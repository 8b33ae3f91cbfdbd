import { z } from 'zod';
import { normalizeDomain } from '../mail/address.ts';
import { positiveDurationSchema } from './duration.ts';

/**
 * The config's `dkim:` key: which From domains are signed, with which keys. Absent or `{}`:
 * nothing is signed.
 *
 *     dkim:
 *       domains:
 *         example.com:
 *           keys:                  # oldest first; the algorithm comes from the key
 *             - { selector: s2026a, privateKey: /etc/rookery/dkim/example.com.s2026a.pem }
 *             - { selector: ed2026, privateKey: /etc/rookery/dkim/example.com.ed2026.pem }
 *           subdomains: true       # mail From: any subdomain is signed with d=example.com
 *       fallback: example.net      # signs mail whose From domain has no key (default: unsigned)
 *       expiry: 7d                 # x= this long after signing (default: no x=)
 *       workers: 2                 # signing threads (default: one per core, at most 4; 0: on the event loop)
 *
 * An RSA and an Ed25519 key on one domain sign every message twice (dual signing). Several keys
 * of one algorithm are a rotation: the newest whose DNS record is published signs (see
 * src/sender-domains/key-store.ts). Domain names may be written as U-labels; they are kept as
 * lower-case A-labels.
 */

export interface DkimKeyConfig {
  /** s= of the signature; the DNS record lives at `<selector>._domainkey.<domain>`. */
  selector: string;
  /** Path of the PEM private key (RSA of at least 1024 bits, or Ed25519). */
  privateKey: string;
}

export interface DkimDomainConfig {
  /** In the order written, oldest first. */
  keys: readonly DkimKeyConfig[];
  /** Also sign mail From: any subdomain of this domain, with d= this domain. */
  subdomains: boolean;
}

export interface DkimConfig {
  /** Lower-case A-label domain -> its keys. */
  domains: Readonly<Record<string, DkimDomainConfig>>;
  /** A configured domain that signs mail whose From domain has no key; null: leave it unsigned. */
  fallback: string | null;
  /** Milliseconds from signing to the x= expiry; null: no x=. */
  expiry: number | null;
  /** Worker threads that sign; null: one per core, at most 4; 0: sign on the event loop. */
  workers: number | null;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** RFC 6376 3.1: a selector is one or more DNS labels. */
const SELECTOR = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, 'i');

const keySchema = z.strictObject({
  selector: z.string().regex(SELECTOR, { message: 'not a selector (DNS labels: letters, digits, hyphens)' }),
  privateKey: z.string().min(1, { message: 'give the path of the PEM private key' }),
});

export const dkimConfigSchema = z
  .strictObject({
    domains: z
      .record(
        z.string(),
        z.strictObject({
          keys: z.array(keySchema).min(1, { message: 'list at least one key' }),
          subdomains: z.boolean().default(false),
        }),
      )
      .default({}),
    fallback: z.string().optional(),
    expiry: positiveDurationSchema.optional(),
    workers: z.number().int().min(0).max(64).optional(),
  })
  .transform((value, ctx): DkimConfig => {
    const domains: Record<string, DkimDomainConfig> = {};
    for (const [key, entry] of Object.entries(value.domains)) {
      const domain = normalizeDomain(key);
      if (!domain) {
        ctx.addIssue({ code: 'custom', path: ['domains', key], message: `not a domain name: ${JSON.stringify(key)}` });
        continue;
      }
      if (Object.hasOwn(domains, domain)) {
        ctx.addIssue({ code: 'custom', path: ['domains', key], message: `${domain} is listed twice (domains are not case-sensitive)` });
        continue;
      }
      const selectors = new Set<string>();
      entry.keys.forEach((k, i) => {
        const selector = k.selector.toLowerCase();
        if (selectors.has(selector)) {
          ctx.addIssue({ code: 'custom', path: ['domains', key, 'keys', i, 'selector'], message: `selector ${k.selector} is listed twice` });
        }
        selectors.add(selector);
      });
      domains[domain] = { keys: entry.keys, subdomains: entry.subdomains };
    }
    let fallback: string | null = null;
    if (value.fallback !== undefined) {
      fallback = normalizeDomain(value.fallback);
      if (!fallback || !Object.hasOwn(domains, fallback)) {
        ctx.addIssue({ code: 'custom', path: ['fallback'], message: `not a configured dkim domain: ${JSON.stringify(value.fallback)}` });
        fallback = null;
      }
    }
    return { domains, fallback, expiry: value.expiry ?? null, workers: value.workers ?? null };
  })
  .prefault({});

export type DkimConfigInput = z.input<typeof dkimConfigSchema>;
