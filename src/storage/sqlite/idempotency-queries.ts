import type { DatabaseSync } from 'node:sqlite';
import type { IdempotencyDbRow, IdempotencyInsertValues } from '../idempotency-rows.ts';

/**
 * The SQLite statements of the idempotency keys, prepared once. The claim and the purge run
 * inside the store's write batches (one transaction with the messages a claim stores).
 */
export function prepareIdempotencyQueries(db: DatabaseSync) {
  // Inserts the key, or replaces a record older than ?7 (past its 24 hours); a younger one stays.
  const claim = db.prepare(`
    INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (scope, key) DO UPDATE SET
      request_hash = excluded.request_hash, status = excluded.status, response = excluded.response, created_at = excluded.created_at
    WHERE idempotency_keys.created_at < ?7`);

  const select = db.prepare(`
    SELECT scope, key, request_hash, status, response, created_at FROM idempotency_keys
    WHERE scope = ? AND key = ? AND created_at >= ?`);

  // The oldest first through idempotency_keys_created_at, a chunk per transaction.
  const purge = db.prepare(`
    DELETE FROM idempotency_keys WHERE (scope, key) IN (
      SELECT scope, key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`);

  return {
    /** True when the key is now this record's; false when a record at or after `notBefore` holds it. */
    claim(values: IdempotencyInsertValues, notBefore: number): boolean {
      return Number(claim.run(...values, notBefore).changes) > 0;
    },

    select(scope: string, key: string, notBefore: number): IdempotencyDbRow | undefined {
      return select.get(scope, key, notBefore) as IdempotencyDbRow | undefined;
    },

    purge(before: number, limit: number): number {
      return Number(purge.run(before, limit).changes);
    },
  };
}

export type SqliteIdempotencyQueries = ReturnType<typeof prepareIdempotencyQueries>;
