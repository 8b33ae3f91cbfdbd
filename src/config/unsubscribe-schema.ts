import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeDomain } from '../mail/address.ts';
import { positiveDurationSchema } from './duration.ts';

/**
 * The config's `unsubscribe:` key and the `unsubscribe:` of each tenant: one-click unsubscribe
 * (RFC 8058) and the List-Unsubscribe field (RFC 2369) Rookery adds to accepted mail, and the
 * public listener that takes the clicks (src/feedback/unsubscribe-server.ts).
 *
 *     unsubscribe:
 *       listen: { host: 127.0.0.1, port: 8026 }     # behind the operator's TLS proxy
 *       secret: "at least 32 random characters"    # or ROOKERY_UNSUBSCRIBE_SECRET
 *       publicBaseUrl: https://unsubscribe.example.com
 *       mailto: unsubscribe.example.com            # the local part is Rookery's: unsub+TOKEN
 *       enabled: false                             # for mail no tenant or domain entry covers
 *       domains:
 *         news.example.com: { enabled: true }      # by the From domain
 *     tenants:
 *       acme:
 *         unsubscribe: { enabled: true, baseUrl: https://u.acme.example }
 *
 * Which settings a message gets: the entry of its From domain, else its tenant's, else the
 * section's own `enabled`; the first found decides whole, its missing baseUrl / mailto taken
 * from publicBaseUrl / mailto. Simple to predict, and each entry can be checked on its own.
 */

/** What one level (the section, a tenant, a From domain) says. */
export interface UnsubscribeSettings {
  enabled: boolean;
  /** https:// base of the one-click links, without a trailing slash; null: from publicBaseUrl. */
  baseUrl: string | null;
  /** Lower-case domain of the mailto: address; null: from the section's mailto. */
  mailto: string | null;
}

export interface UnsubscribeConfig {
  /** The public listener; null: none on this node (another node, or none, takes the clicks). */
  listen: { host: string; port: number } | null;
  /** Key material of the tokens; null only while nothing needs it. */
  secret: string | null;
  /** Earlier secrets whose tokens are still honoured (a rotation), never used for new ones. */
  previousSecrets: readonly string[];
  /** For mail no tenant or domain entry covers. */
  enabled: boolean;
  publicBaseUrl: string | null;
  mailto: string | null;
  /** Lower-case From domain -> its settings. */
  domains: Readonly<Record<string, UnsubscribeSettings>>;
  /** Requests per client address (IPv6: its /64) within `window`; then 429. */
  rateLimit: { max: number; window: number };
  /** Proxies whose X-Forwarded-For names the client (IP addresses or CIDR networks). */
  trustedProxies: readonly string[];
}

export const MIN_UNSUBSCRIBE_SECRET_LENGTH = 32;
/** A longer base would push the List-Unsubscribe line towards RFC 5322's 998 octets. */
export const MAX_BASE_URL_LENGTH = 200;
/** The mailto address is unsub+<45 octets>@domain: kept well inside RFC 5321's 254. */
export const MAX_MAILTO_DOMAIN_LENGTH = 200;

const secretSchema = z.string().min(MIN_UNSUBSCRIBE_SECRET_LENGTH, {
  message: `too short: use at least ${MIN_UNSUBSCRIBE_SECRET_LENGTH} random characters (e.g. from \`openssl rand -base64 48\`)`,
});

/** An https:// URL with no query, fragment or credentials, as written in links; kept without its trailing slash. */
const baseUrlSchema = z.string().transform((value, ctx) => {
  const url = URL.canParse(value) ? new URL(value) : null;
  if (!url || url.protocol !== 'https:' || url.search || url.hash || url.username || url.password || value.includes('?') || value.includes('#')) {
    ctx.addIssue({ code: 'custom', message: `not an https:// URL without query or fragment (RFC 8058 asks for HTTPS): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  const base = url.href.replace(/\/+$/, '');
  if (base.length > MAX_BASE_URL_LENGTH) {
    ctx.addIssue({ code: 'custom', message: `longer than ${MAX_BASE_URL_LENGTH} characters` });
    return z.NEVER;
  }
  return base;
});

const mailtoSchema = z.string().transform((value, ctx) => {
  const domain = value.includes('@') ? null : normalizeDomain(value);
  if (!domain || domain.length > MAX_MAILTO_DOMAIN_LENGTH) {
    ctx.addIssue({ code: 'custom', message: `not a domain name of up to ${MAX_MAILTO_DOMAIN_LENGTH} characters (give the domain only: the address is unsub+TOKEN@domain): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return domain;
});

/** An IP address or a network in CIDR form. */
const proxySchema = z.string().refine(
  (v) => {
    const [address = '', bits, extra] = v.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
  },
  { message: 'not an IP address or a network in CIDR form' },
);

/** A tenant's or a From domain's entry. An entry turns unsubscribe on unless it says `enabled: false`. */
export const unsubscribeSettingsSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    baseUrl: baseUrlSchema.optional(),
    mailto: mailtoSchema.optional(),
  })
  .transform((value): UnsubscribeSettings => ({ enabled: value.enabled, baseUrl: value.baseUrl ?? null, mailto: value.mailto ?? null }));

export const unsubscribeConfigSchema = z
  .strictObject({
    listen: z.strictObject({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8026) }).optional(),
    secret: secretSchema.optional(),
    previousSecrets: z.array(secretSchema).default([]),
    enabled: z.boolean().default(false),
    publicBaseUrl: baseUrlSchema.optional(),
    mailto: mailtoSchema.optional(),
    domains: z.record(z.string(), unsubscribeSettingsSchema).default({}),
    rateLimit: z.strictObject({ max: z.number().int().positive().default(30), window: positiveDurationSchema.default(60_000) }).prefault({}),
    trustedProxies: z.array(proxySchema).default([]),
  })
  .transform((value, ctx): UnsubscribeConfig => {
    const domains: Record<string, UnsubscribeSettings> = {};
    for (const [key, entry] of Object.entries(value.domains)) {
      const domain = normalizeDomain(key);
      if (!domain) ctx.addIssue({ code: 'custom', path: ['domains', key], message: `not a domain name: ${JSON.stringify(key)}` });
      else if (Object.hasOwn(domains, domain)) ctx.addIssue({ code: 'custom', path: ['domains', key], message: `${domain} is listed twice (domains are not case-sensitive)` });
      else domains[domain] = entry;
    }
    return {
      listen: value.listen ?? null,
      secret: value.secret ?? null,
      previousSecrets: value.previousSecrets,
      enabled: value.enabled,
      publicBaseUrl: value.publicBaseUrl ?? null,
      mailto: value.mailto ?? null,
      domains,
      rateLimit: value.rateLimit,
      trustedProxies: value.trustedProxies,
    };
  })
  .prefault({});

/**
 * What the schema alone cannot see, because tenants live in their own section: every level that
 * is enabled has somewhere to send people (its baseUrl or mailto, or the section's), and a secret
 * exists once anything needs one. Both sections are reloadable, so they are checked together.
 */
export function unsubscribeProblems(config: { unsubscribe: UnsubscribeConfig; tenants: Readonly<Record<string, { unsubscribe?: UnsubscribeSettings | undefined }>> }): string[] {
  const { unsubscribe } = config;
  const levels: Array<{ path: string; settings: UnsubscribeSettings }> = [
    { path: 'unsubscribe', settings: { enabled: unsubscribe.enabled, baseUrl: null, mailto: null } },
    ...Object.entries(unsubscribe.domains).map(([domain, settings]) => ({ path: `unsubscribe.domains.${domain}`, settings })),
    ...Object.entries(config.tenants).flatMap(([name, tenant]) => (tenant.unsubscribe ? [{ path: `tenants.${name}.unsubscribe`, settings: tenant.unsubscribe }] : [])),
  ];
  const problems: string[] = [];
  const enabled = levels.filter((level) => level.settings.enabled);
  for (const { path, settings } of enabled) {
    if ((settings.baseUrl ?? unsubscribe.publicBaseUrl) === null && (settings.mailto ?? unsubscribe.mailto) === null) {
      problems.push(`${path}: enabled, but no link to put in List-Unsubscribe: set baseUrl or mailto here, or unsubscribe.publicBaseUrl or unsubscribe.mailto`);
    }
  }
  if (unsubscribe.secret === null && (enabled.length > 0 || unsubscribe.listen !== null)) {
    const why = enabled.length > 0 ? `${enabled[0]!.path} is enabled` : 'unsubscribe.listen is set';
    problems.push(`unsubscribe.secret: required when ${why} (or set ROOKERY_UNSUBSCRIBE_SECRET)`);
  }
  return problems;
}
