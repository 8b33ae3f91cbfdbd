import type { TenantConfig, TenantRate, TenantsConfig } from '../config/tenant-schema.ts';
import { domainMatches, domainOf } from '../mail/address.ts';
import { readAuthors } from '../mail/authors.ts';

/**
 * The tenants of the config, as the doors and the queue ask about them: may this tenant send as
 * this envelope sender, from which pools, at what rate and daily quota.
 */
export interface Tenant {
  readonly name: string;
  readonly senderDomains: readonly string[];
  /** The pools its mail may send from, its default first; null: any pool. */
  readonly pools: readonly string[] | null;
  readonly rate: TenantRate | null;
  readonly dailyQuota: number | null;
}

/** Finds a tenant by name; the daemon's lookup follows reloads (src/config-parts.ts). */
export interface TenantLookup {
  get(name: string): Tenant | undefined;
  names(): string[];
}

export class TenantDirectory implements TenantLookup {
  private readonly tenants: ReadonlyMap<string, Tenant>;

  constructor(config: TenantsConfig) {
    this.tenants = new Map(Object.entries(config).map(([name, t]: [string, TenantConfig]) => [name, Object.freeze({ name, senderDomains: t.senderDomains, pools: t.pools ?? null, rate: t.rate ?? null, dailyQuota: t.dailyQuota ?? null })]));
  }

  /** The tenant of that name; undefined for one the config does not have (resolution refuses such references). */
  get(name: string): Tenant | undefined {
    return this.tenants.get(name);
  }

  names(): string[] {
    return [...this.tenants.keys()];
  }
}

/** Whether `tenant` may send with this envelope sender: its domain is one of the tenant's. The null sender never is. */
export function tenantMaySend(tenant: Tenant, sender: string): boolean {
  const domain = domainOf(sender);
  return domain !== '' && tenant.senderDomains.some((pattern) => domainMatches(domain, pattern));
}

/**
 * The first From or Sender address of `header` outside the tenant's sender domains, or null when
 * every one is the tenant's. Receivers show the From, and the signer signs with d= of its domain:
 * a tenant bound only in its envelope could send as another tenant, signed with that tenant's
 * key. A header that cannot be read one way only is refused by the author check before this.
 */
export function foreignAuthor(tenant: Tenant, header: string): string | null {
  const authors = readAuthors(header);
  if (!authors.ok) return null;
  for (const field of authors.fields) {
    for (const address of [...field.addresses, ...field.written]) {
      if (!tenantMaySend(tenant, address)) return address;
    }
  }
  return null;
}
