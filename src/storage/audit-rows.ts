import type { AuditCursor, AuditEntry, AuditFilters, AuditRecord } from './store.ts';

/*
 * Rows of the audit log shared by the SQLite and PostgreSQL backends: the checked values both
 * store, and the bounds both derive from a query, so the two answer the same page.
 */

export interface AuditDbRow {
  id: number;
  at: number;
  actor: string | null;
  tenant: string | null;
  client_address: string;
  method: string;
  route: string;
  target: string | null;
  change: string | null;
  status: number;
  outcome: string;
}

/** The values of one audit row, in the column order of the INSERT statements. */
export type AuditInsertValues = [number, string | null, string | null, string, string, string, string | null, string | null, number, string];

/** Longest target kept: it comes from the request path, which a client chooses. */
const MAX_TARGET = 1000;

/**
 * The entry as stored. Text that came from the request is cut to a sane length and loses NUL
 * characters (PostgreSQL text cannot hold them, and both backends must store the same); the
 * change is JSON text, in which JSON.stringify escapes a NUL.
 */
export function auditInsertValues(e: AuditEntry): AuditInsertValues {
  if (!Number.isSafeInteger(e.at) || !Number.isInteger(e.status)) throw new Error('audit entry: at and status must be integers');
  return [
    e.at,
    clean(e.actor, 200),
    clean(e.tenant, 200),
    clean(e.clientAddress, 100) ?? '',
    clean(e.method, 20) ?? '',
    clean(e.route, 500) ?? '',
    clean(e.target, MAX_TARGET),
    e.change === null ? null : JSON.stringify(e.change),
    e.status,
    clean(e.outcome, 100) ?? '',
  ];
}

function clean(value: string | null, max: number): string | null {
  return value === null ? null : value.replaceAll('\u0000', '\uFFFD').slice(0, max);
}

export function toAuditRecord(row: AuditDbRow): AuditRecord {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    tenant: row.tenant,
    clientAddress: row.client_address,
    method: row.method,
    route: row.route,
    target: row.target,
    change: row.change === null ? null : (JSON.parse(row.change) as AuditRecord['change']),
    status: row.status,
    outcome: row.outcome,
  };
}

/** Positional values both backends bind for a listing: every bound explicit, no NULL range. */
export interface AuditQueryBounds {
  since: number;
  /** At or before. */
  latest: number;
  /** With `latest` the cursor's time: the entries of that time sort after this id only. */
  beforeId: number | null;
  actor: string | null;
  route: string | null;
  status: number | null;
  outcome: string | null;
  tenant: string | null;
  limit: number;
}

export function auditQueryBounds(f: AuditFilters, after: AuditCursor | null, limit: number): AuditQueryBounds {
  const untilLatest = f.until === null ? Number.MAX_SAFE_INTEGER : f.until - 1;
  // The cursor binds when it is older than `until`; else the page starts at `until`.
  const cursorBinds = after !== null && after.at <= untilLatest;
  return {
    since: f.since ?? 0,
    latest: cursorBinds ? after!.at : untilLatest,
    beforeId: cursorBinds ? after!.id : null,
    actor: f.actor,
    route: f.route,
    status: f.status,
    outcome: f.outcome,
    tenant: f.tenant,
    limit,
  };
}

/** Audit rows deleted per transaction by purgeAudit. */
export const AUDIT_PURGE_CHUNK = 1000;
