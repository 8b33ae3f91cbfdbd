import type { IdempotencyDbRow, IdempotencyInsertValues } from '../idempotency-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of the idempotency keys, one function per query. The claim runs
 * inside the store's write batches, in the transaction that stores the messages.
 */

/**
 * Inserts the key, or replaces a record older than `notBefore` (past its 24 hours); true when the
 * key is now this record's. Another transaction inserting the same key makes this one wait for
 * its COMMIT or ROLLBACK (the primary key), so of two daemons given one key only one stores.
 */
export async function claimIdempotencyKey(db: Db, values: IdempotencyInsertValues, notBefore: number): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'rookery_claim_idempotency_key',
    text: `
      INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at)
      VALUES ($1, $2, $3, $4, $5, $6)
      ON CONFLICT (scope, key) DO UPDATE SET
        request_hash = excluded.request_hash, status = excluded.status, response = excluded.response, created_at = excluded.created_at
      WHERE idempotency_keys.created_at < $7`,
    values: [...values, notBefore],
  });
  return (rowCount ?? 0) > 0;
}

/** A new statement, so in READ COMMITTED it sees the record a transaction it waited for committed. */
export async function selectIdempotencyKey(db: Db, scope: string, key: string, notBefore: number): Promise<IdempotencyDbRow | undefined> {
  const { rows } = await db.query<IdempotencyDbRow>({
    name: 'rookery_select_idempotency_key',
    text: `SELECT scope, key, request_hash, status, response, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at >= $3`,
    values: [scope, key, notBefore],
  });
  return rows[0];
}

/** Deletes up to `limit` records created before `before`, oldest first; returns how many. */
export async function purgeIdempotencyKeys(db: Db, before: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_purge_idempotency_keys',
    text: `
      DELETE FROM idempotency_keys WHERE (scope, key) IN (
        SELECT scope, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)`,
    values: [before, limit],
  });
  return rowCount ?? 0;
}
