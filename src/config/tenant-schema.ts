import { z } from 'zod';
import { apiNameSchema } from './api-schema.ts';
import { dataName, parseRate } from './pool-schemas.ts';
import { unsubscribeSettingsSchema } from './unsubscribe-schema.ts';
import { tenantSuppressionSchema } from './suppression-schema.ts';

/**
 * The config's `tenants:` key: the customers a platform sends for. Every SMTP user and API token
 * may name one (src/access/tenants.ts checks what a tenant's mail may do):
 *
 *     tenants:
 *       acme:
 *         senderDomains: [acme.example, "*.acme.example"]   # envelope senders it may use
 *         pools: [acme, shared]        # pools its mail may send from; the first is its default
 *         rate: 1000/m                 # recipients accepted, over every node
 *         dailyQuota: 200000           # recipients accepted per UTC day, over every node
 *         suppression: { action: drop } # its suppressed recipients (default: suppression.action)
 *
 * Rate and quota count recipients, not messages: a message to 50 people is 50 deliveries, which
 * is what a mailbox provider sees and what a customer's plan is sold by.
 */

/** A sender domain a tenant may use: "example.com", "*.example.com" (its subdomains) or "*" (any). */
const senderDomain = z.string().regex(/^(\*|(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)$/, { message: 'not a domain, *.domain or *' });

/** A tenant's sending rate: the rate and the burst it allows at once. */
export interface TenantRate {
  ratePerSecond: number;
  /** How many recipients may go at once after a quiet spell: the count written ("1000" of "1000/m"). */
  burst: number;
}

/** "1000/m": a thousand recipients a minute, all at once if they come at once, then 1000/m on average. */
const tenantRateSchema = z.string().transform((value, ctx): TenantRate => {
  const ratePerSecond = parseRate(value);
  const count = Number(value.split('/')[0]);
  if (ratePerSecond === null || !Number.isInteger(count)) {
    ctx.addIssue({ code: 'custom', message: `not a rate (a whole number per s, m, h or d, e.g. 1000/m): ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return { ratePerSecond, burst: count };
});

const tenantSchema = z.strictObject({
  /** Required: a tenant that may send as anyone says so with "*". */
  senderDomains: z.array(senderDomain).min(1, { message: 'list at least one domain (or "*" for any)' }),
  /** Absent: any pool. */
  pools: z.array(dataName).min(1).optional(),
  rate: tenantRateSchema.optional(),
  dailyQuota: z.number().int().positive().optional(),
  /** List-Unsubscribe for its mail (unsubscribe-schema.ts); a From domain's entry comes first. */
  unsubscribe: unsubscribeSettingsSchema.optional(),
  /** What acceptance does with its suppressed recipients, instead of `suppression.action`. */
  suppression: tenantSuppressionSchema.optional(),
});

export type TenantConfig = z.output<typeof tenantSchema>;

/** Tenant names become audit fields, metric labels and counter keys, so they are API names. */
export const tenantsSchema = z
  .record(z.string(), tenantSchema)
  .superRefine(
    (tenants, ctx) => {
      for (const name of Object.keys(tenants)) {
        const checked = apiNameSchema.safeParse(name);
        if (!checked.success) ctx.addIssue({ code: 'custom', path: [name], message: checked.error.issues[0]!.message });
      }
    },
    // Also when an entry has other problems, so one run reports them all.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  )
  .default({});

export type TenantsConfig = z.output<typeof tenantsSchema>;

/** The parts of a config the tenant references are checked against. */
interface TenantReferences {
  tenants: TenantsConfig;
  smtp: { users: ReadonlyArray<{ tenant?: string | undefined; pool?: string | undefined; pools?: readonly string[] | undefined }> };
  api: { tokens: ReadonlyArray<{ role: string; tenant?: string | undefined }> };
  ips: ReadonlyArray<{ pool: string }>;
  pools: Readonly<Record<string, unknown>>;
}

/**
 * What the schema alone cannot see: tenants named by users and tokens exist; once tenants are
 * configured every SMTP user names one (mail without a tenant would escape every limit); a
 * sender token always names one (its messages are the only ones it may read); a tenant's pools
 * exist; a user's pools are within its tenant's.
 */
export function tenantReferenceProblems(config: TenantReferences): string[] {
  const problems: string[] = [];
  const names = Object.keys(config.tenants);
  const known = (tenant: string) => Object.hasOwn(config.tenants, tenant);
  const unknown = (tenant: string) => `unknown tenant ${JSON.stringify(tenant)}${names.length ? ` (tenants: ${names.join(', ')})` : ' (no tenants are configured)'}`;
  const pools = new Set(['default', ...config.ips.map((ip) => ip.pool), ...Object.keys(config.pools)]);

  for (const [name, tenant] of Object.entries(config.tenants)) {
    tenant.pools?.forEach((pool, i) => {
      if (!pools.has(pool)) problems.push(`tenants.${name}.pools[${i}]: unknown pool ${JSON.stringify(pool)} (no IP or pools entry names it)`);
    });
  }
  config.smtp.users.forEach((user, i) => {
    const path = `smtp.users[${i}].tenant`;
    if (user.tenant === undefined) {
      if (names.length) problems.push(`${path}: required once tenants are configured (every user sends for one)`);
      return;
    }
    if (!known(user.tenant)) return void problems.push(`${path}: ${unknown(user.tenant)}`);
    const allowed = config.tenants[user.tenant]!.pools;
    if (!allowed) return;
    for (const pool of [user.pool, ...(user.pools ?? [])]) {
      if (pool !== undefined && !allowed.includes(pool)) problems.push(`smtp.users[${i}]: pool ${JSON.stringify(pool)} is not one of tenant ${user.tenant}'s pools (${allowed.join(', ')})`);
    }
  });
  config.api.tokens.forEach((token, i) => {
    const path = `api.tokens[${i}].tenant`;
    if (token.tenant === undefined) {
      if (token.role === 'sender') problems.push(`${path}: required for role sender (a sender sends for one tenant and reads only its messages)`);
    } else if (!known(token.tenant)) {
      problems.push(`${path}: ${unknown(token.tenant)}`);
    } else if (token.role === 'admin') {
      problems.push(`${path}: an admin token belongs to no tenant (it acts for all); remove the tenant or choose another role`);
    }
  });
  return problems;
}
