import type { DatabaseSync } from 'node:sqlite';
import type { AuditDbRow, AuditInsertValues, AuditQueryBounds } from '../audit-rows.ts';

/**
 * The SQLite statements of the audit log, prepared once. The insert and the purge run inside
 * the store's write batches (WriteBatcher), like every other write; the listing reads on the
 * one connection.
 */
export function prepareAuditQueries(db: DatabaseSync) {
  const insert = db.prepare(`
    INSERT INTO audit (at, actor, tenant, client_address, method, route, target, change, status, outcome)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  // audit_at walked newest first from the cursor (audit_actor when an actor is given); the other
  // filters test each entry on the way.
  const selectPage = db.prepare(`
    SELECT id, at, actor, tenant, client_address, method, route, target, change, status, outcome
    FROM audit
    WHERE at >= ?1 AND at <= ?2
      AND (?3 IS NULL OR at < ?2 OR id < ?3)
      AND (?4 IS NULL OR actor = ?4)
      AND (?5 IS NULL OR route = ?5)
      AND (?6 IS NULL OR status = ?6)
      AND (?7 IS NULL OR outcome = ?7)
      AND (?9 IS NULL OR tenant = ?9)
    ORDER BY at DESC, id DESC
    LIMIT ?8`);

  // The oldest first through audit_at, a chunk per transaction.
  const purge = db.prepare(`
    DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at, id LIMIT ?)`);

  return {
    insert(values: AuditInsertValues): void {
      insert.run(...values);
    },

    selectPage(b: AuditQueryBounds): AuditDbRow[] {
      return selectPage.all(b.since, b.latest, b.beforeId, b.actor, b.route, b.status, b.outcome, b.limit, b.tenant) as unknown as AuditDbRow[];
    },

    purge(before: number, limit: number): number {
      return Number(purge.run(before, limit).changes);
    },
  };
}

export type SqliteAuditQueries = ReturnType<typeof prepareAuditQueries>;
