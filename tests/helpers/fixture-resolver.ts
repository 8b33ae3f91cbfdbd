import type { DomainCheckResolver } from '../../src/sender-domains/domain-check-dns.ts';

/**
 * DNS from a table, answering like node:dns/promises: a name absent from the table is
 * NXDOMAIN (ENOTFOUND), a name without records of the asked type is NODATA (ENODATA), an
 * error code given in place of records (e.g. 'ETIMEOUT', 'ESERVFAIL') is thrown as that error,
 * and SILENT is a server that never answers: the query never settles, so only the caller's own
 * time limit ends it. No network. Every query is recorded, as "TYPE name".
 */

/** In place of records: the query never settles. */
export const SILENT = 'SILENT';

type Answer<T> = T[] | string;

export interface FixtureRecords {
  /** A string is one record, split into 255-byte strings as DNS servers return long records; an array is the strings as given. */
  txt?: Answer<string | string[]>;
  mx?: Answer<{ exchange: string; priority: number }>;
  a?: Answer<string>;
  aaaa?: Answer<string>;
  ptr?: Answer<string>;
  cname?: Answer<string>;
}

export type FixtureZone = Record<string, FixtureRecords>;

export interface FixtureResolver extends Required<DomainCheckResolver> {
  queries: string[];
  /** Adds or replaces a name's records. */
  set(name: string, records: FixtureRecords): void;
}

export function createFixtureResolver(zone: FixtureZone = {}): FixtureResolver {
  const names = new Map<string, FixtureRecords>();
  const key = (name: string) => name.toLowerCase().replace(/\.$/, '');
  for (const [name, records] of Object.entries(zone)) names.set(key(name), records);
  const queries: string[] = [];

  function answer<T>(type: string, field: keyof FixtureRecords, name: string): Promise<T[]> {
    queries.push(`${type} ${name}`);
    const records = names.get(key(name));
    if (!records) return Promise.reject(dnsError('ENOTFOUND', type, name));
    const value = records[field] as Answer<T> | undefined;
    if (value === SILENT) return new Promise<never>(() => undefined);
    if (typeof value === 'string') return Promise.reject(dnsError(value, type, name));
    if (!value || value.length === 0) return Promise.reject(dnsError('ENODATA', type, name));
    return Promise.resolve(structuredClone(value));
  }

  return {
    queries,
    set: (name, records) => void names.set(key(name), records),
    resolveTxt: async (name) => (await answer<string | string[]>('TXT', 'txt', name)).map((r) => (typeof r === 'string' ? splitTxt(r) : r)),
    resolveMx: (name) => answer('MX', 'mx', name),
    resolve4: (name) => answer('A', 'a', name),
    resolve6: (name) => answer('AAAA', 'aaaa', name),
    resolvePtr: (name) => answer('PTR', 'ptr', name),
    resolveCname: (name) => answer('CNAME', 'cname', name),
  };
}

function splitTxt(record: string): string[] {
  const strings: string[] = [];
  for (let i = 0; i < record.length || strings.length === 0; i += 255) strings.push(record.slice(i, i + 255));
  return strings;
}

const SYSCALL: Record<string, string> = { TXT: 'queryTxt', MX: 'queryMx', A: 'queryA', AAAA: 'queryAaaa', PTR: 'queryPtr', CNAME: 'queryCname' };

function dnsError(code: string, type: string, name: string): Error {
  const syscall = SYSCALL[type] ?? 'query';
  return Object.assign(new Error(`${syscall} ${code} ${name}`), { code, errno: undefined, syscall, hostname: name });
}
