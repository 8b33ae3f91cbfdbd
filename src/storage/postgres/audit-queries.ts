import type { AuditDbRow, AuditInsertValues, AuditQueryBounds } from '../audit-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of the audit log, one function per query. The insert runs inside
 * the store's write batches; the listing is unnamed, so each call is planned with its values (a
 * filter left out drops from the plan).
 */

export async function insertAudit(db: Db, values: AuditInsertValues): Promise<void> {
  await db.query({
    name: 'rookery_insert_audit',
    text: `INSERT INTO audit (at, actor, tenant, client_address, method, route, target, change, status, outcome)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    values,
  });
}

/** Newest first: audit_at walked back from the cursor (audit_actor with an actor). */
export async function selectAuditPage(db: Db, b: AuditQueryBounds): Promise<AuditDbRow[]> {
  const { rows } = await db.query<AuditDbRow>({
    text: `
      SELECT id, at, actor, tenant, client_address, method, route, target, change, status, outcome
      FROM audit
      WHERE at >= $1 AND at <= $2
        AND ($3::bigint IS NULL OR at < $2 OR id < $3::bigint)
        AND ($4::text IS NULL OR actor = $4::text)
        AND ($5::text IS NULL OR route = $5::text)
        AND ($6::integer IS NULL OR status = $6::integer)
        AND ($7::text IS NULL OR outcome = $7::text)
        AND ($9::text IS NULL OR tenant = $9::text)
      ORDER BY at DESC, id DESC
      LIMIT $8`,
    values: [b.since, b.latest, b.beforeId, b.actor, b.route, b.status, b.outcome, b.limit, b.tenant],
  });
  return rows;
}

/** Deletes up to `limit` entries older than `before`, oldest first; returns how many. */
export async function purgeAudit(db: Db, before: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_purge_audit',
    text: `DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY at, id LIMIT $2)`,
    values: [before, limit],
  });
  return rowCount ?? 0;
}
