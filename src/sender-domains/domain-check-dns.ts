/**
 * The DNS queries domain checks make. `node:dns/promises` (its Resolver, or the module itself)
 * satisfies this interface; tests pass a fixture resolver. Errors carry node:dns codes:
 * ENODATA (the name exists, not with this type), ENOTFOUND (no such name), others are failures.
 */
export interface DomainCheckResolver {
  resolveTxt(name: string): Promise<string[][]>;
  resolveMx(name: string): Promise<Array<{ exchange: string; priority: number }>>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** Used by SPF's deprecated ptr mechanism only; without it such records evaluate to temperror. */
  resolvePtr?(name: string): Promise<string[]>;
  /** Used by DMARC's domain existence test only. */
  resolveCname?(name: string): Promise<string[]>;
}

/** A query outcome: the records, none (ENODATA / ENOTFOUND), or a lookup failure to report. */
export type Lookup<T> = { ok: true; records: T[] } | { ok: false; missing: 'nodata' | 'nxdomain' } | { ok: false; missing: null; error: string };

export function errorCode(err: unknown): string | undefined {
  return err && typeof err === 'object' && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

export async function lookup<T>(query: () => Promise<T[]>): Promise<Lookup<T>> {
  try {
    return { ok: true, records: await query() };
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENODATA') return { ok: false, missing: 'nodata' };
    if (code === 'ENOTFOUND') return { ok: false, missing: 'nxdomain' };
    return { ok: false, missing: null, error: code ?? (err as Error).message ?? String(err) };
  }
}

/** TXT records as whole strings: a record's character strings are one value (RFC 7208 3.3, RFC 6376 3.6.2.2). */
export async function lookupTxt(resolver: DomainCheckResolver, name: string): Promise<Lookup<string>> {
  const result = await lookup(() => resolver.resolveTxt(name));
  return result.ok ? { ok: true, records: result.records.map((chunks) => chunks.join('')) } : result;
}

/**
 * The resolver as the single function mailauth calls, `(name, type)` like `dns.promises.resolve`.
 * A type the resolver cannot answer is an error, which mailauth turns into temperror rather than
 * mistaking it for an empty answer. DKIM verification asks for TXT records only, so a TXT lookup
 * alone will do there.
 */
export function mailauthResolver(resolver: Pick<DomainCheckResolver, 'resolveTxt'> & Partial<DomainCheckResolver>): (name: string, type: string) => Promise<unknown[]> {
  return async (name, type) => {
    switch (type.toUpperCase()) {
      case 'TXT':
        return resolver.resolveTxt(name);
      case 'MX':
        if (resolver.resolveMx) return resolver.resolveMx(name);
        break;
      case 'A':
        if (resolver.resolve4) return resolver.resolve4(name);
        break;
      case 'AAAA':
        if (resolver.resolve6) return resolver.resolve6(name);
        break;
      case 'PTR':
        if (resolver.resolvePtr) return resolver.resolvePtr(name);
        break;
      case 'CNAME':
        if (resolver.resolveCname) return resolver.resolveCname(name);
        break;
    }
    throw Object.assign(new Error(`query ${type} ${name}: not supported by this resolver`), { code: 'ENOTIMP' });
  };
}

/** "lookup failed (ETIMEOUT)" style wording for a failed query. */
export function describeFailure(name: string, type: string, error: string): string {
  return `the ${type} lookup for ${name} failed (${error}); check the DNS servers and run the check again`;
}
