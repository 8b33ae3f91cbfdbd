import { DataRefusedError } from './store.ts';
import { TLS_FAILURE_TYPES, type StoredStsPolicy, type TlsSessionCount, type StsMode, type TlsPolicyType } from './tls-reports.ts';

/* Rows of the outbound TLS tables (tls-reports.ts) shared by the SQLite and PostgreSQL backends. */

export interface StsPolicyDbRow {
  domain: string;
  policy_id: string;
  mode: string;
  mx: string;
  max_age: number | string;
  lines: string;
  fetched_at: number | string;
  expires_at: number | string;
}

/** Column order of the INSERTs. */
export type StsPolicyValues = [string, string, string, string, number, string, number, number];

export interface TlsCountDbRow {
  day: string;
  policy_domain: string;
  policy_type: string;
  policy_id: string;
  result: string;
  sending_ip: string;
  receiving_ip: string;
  receiving_mx: string;
  policy_lines: string;
  policy_mx: string;
  sessions: number | string;
}

/** Column order of the INSERTs: the key's eight, then policy_lines, policy_mx, sessions. */
export type TlsCountValues = [string, string, string, string, string, string, string, string, string, string, number];

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function checkDay(day: string): string {
  if (typeof day !== 'string' || !DAY.test(day)) throw new DataRefusedError(`TLS report day must be YYYY-MM-DD, not ${JSON.stringify(day)}`);
  return day;
}

function text(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.includes('\u0000')) throw new DataRefusedError(`${name} must be a string without NUL`);
  return value;
}

export function stsPolicyValues(p: StoredStsPolicy): StsPolicyValues {
  if (!['enforce', 'testing', 'none'].includes(p.mode)) throw new DataRefusedError(`MTA-STS mode ${JSON.stringify(p.mode)} is not enforce, testing or none`);
  if (!Number.isSafeInteger(p.fetchedAt) || !Number.isSafeInteger(p.expiresAt) || !Number.isSafeInteger(p.maxAge)) throw new DataRefusedError('MTA-STS policy: times must be integers');
  return [text(p.domain, 'domain').toLowerCase(), text(p.id, 'id'), p.mode, JSON.stringify(p.mx.map((m) => text(m, 'mx'))), p.maxAge, JSON.stringify(p.lines.map((l) => text(l, 'line'))), p.fetchedAt, p.expiresAt];
}

export function toStsPolicy(row: StsPolicyDbRow): StoredStsPolicy {
  return {
    domain: row.domain,
    id: row.policy_id,
    mode: row.mode as StsMode,
    mx: JSON.parse(row.mx) as string[],
    maxAge: Number(row.max_age),
    lines: JSON.parse(row.lines) as string[],
    fetchedAt: Number(row.fetched_at),
    expiresAt: Number(row.expires_at),
  };
}

/** The counts as rows, those with the same key added up (one statement may not touch a row twice). */
export function tlsCountValues(counts: readonly TlsSessionCount[]): TlsCountValues[] {
  const byKey = new Map<string, TlsCountValues>();
  for (const c of counts) {
    if (!Number.isSafeInteger(c.count) || c.count < 0) throw new DataRefusedError('TLS session count must be a non-negative integer');
    if (c.result !== 'success' && !(TLS_FAILURE_TYPES as readonly string[]).includes(c.result)) throw new DataRefusedError(`TLS result ${JSON.stringify(c.result)} is not an RFC 8460 result type`);
    if (c.policy.type !== 'sts' && c.policy.type !== 'no-policy-found') throw new DataRefusedError(`TLS policy type ${JSON.stringify(c.policy.type)} is not sts or no-policy-found`);
    const key: string[] = [checkDay(c.day), text(c.policy.domain, 'policy domain').toLowerCase(), c.policy.type, text(c.policy.id, 'policy id'), c.result, text(c.sendingIp, 'sending ip'), text(c.receivingIp, 'receiving ip'), text(c.receivingMx, 'receiving mx')];
    const id = JSON.stringify(key);
    const existing = byKey.get(id);
    if (existing) existing[10] += c.count;
    else byKey.set(id, [...key, JSON.stringify(c.policy.lines), JSON.stringify(c.policy.mx), c.count] as TlsCountValues);
  }
  return [...byKey.values()];
}

export function toTlsCount(row: TlsCountDbRow): TlsSessionCount {
  return {
    day: row.day,
    policy: { type: row.policy_type as TlsPolicyType, domain: row.policy_domain, id: row.policy_id, lines: JSON.parse(row.policy_lines) as string[], mx: JSON.parse(row.policy_mx) as string[] },
    result: row.result as TlsSessionCount['result'],
    sendingIp: row.sending_ip,
    receivingIp: row.receiving_ip,
    receivingMx: row.receiving_mx,
    count: Number(row.sessions),
  };
}
