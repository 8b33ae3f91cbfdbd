import { orDash, table, utc } from './text-table.ts';

/** GET /v1/domains as `rookery domains` prints it: one line per DKIM key (a domain without keys has one line too). */

interface Key {
  selector: string;
  algorithm: string;
  bits: number | null;
  signing: boolean;
  published: boolean | null;
  loadedAt: string;
  error: string | null;
}

interface Domain {
  domain: string;
  subdomains: boolean;
  fallback: boolean;
  returnPath: string | null;
  keys: Key[];
}

export interface DomainListJson {
  domains: Domain[];
}

interface Row {
  domain: Domain;
  key: Key | null;
}

const yesNo = (value: boolean | null) => (value === null ? '-' : value ? 'yes' : 'no');

export function domainListText(list: DomainListJson): string {
  if (list.domains.length === 0) return 'No sender domains configured (dkim.domains, returnPath.domains).\n';
  const rows = list.domains.flatMap((domain): Row[] => (domain.keys.length === 0 ? [{ domain, key: null }] : domain.keys.map((key) => ({ domain, key }))));
  return table(
    [
      { title: 'DOMAIN', value: (r: Row) => r.domain.domain + (r.domain.subdomains ? ' (+subdomains)' : '') + (r.domain.fallback ? ' (fallback)' : '') },
      { title: 'RETURN PATH', value: (r) => orDash(r.domain.returnPath) },
      { title: 'SELECTOR', value: (r) => r.key?.selector ?? '-' },
      { title: 'ALGORITHM', value: (r) => (r.key ? `${r.key.algorithm}${r.key.bits === null ? '' : ` ${r.key.bits}`}` : '-') },
      { title: 'SIGNING', value: (r) => (r.key ? yesNo(r.key.signing) : '-') },
      { title: 'IN DNS', value: (r) => (r.key ? yesNo(r.key.published) : '-') },
      { title: 'LOADED', value: (r) => (r.key ? utc(r.key.loadedAt) : '-') },
      { title: 'ERROR', value: (r) => orDash(r.key?.error) },
    ],
    rows,
  );
}
