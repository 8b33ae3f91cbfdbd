import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import type { RecipientDbRow } from '../store-rows.ts';
import type { SuppressionDbRow, SuppressionInsertValues, SuppressionQueryBounds } from '../suppression-rows.ts';

const COLUMNS = 'tenant, address_hash, address, reason, source, created_at, expires_at';

/**
 * The SQLite statements of the suppression list, prepared once. Writes run inside the store's
 * write batches; reads on the one connection, each on an index (see the comments), so none
 * holds the event loop for long.
 */
export function prepareSuppressionQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);

  // The newer entry wins (suppressions.ts): an older one given leaves the row as it is. One row a
  // run, a chunk per transaction: in-process, a prepared single-row statement is faster than a
  // multi-row VALUES (measured: binding hundreds of parameters per call costs more than it saves).
  const UPSERT = `
    INSERT INTO suppressions (${COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (tenant, address_hash) DO UPDATE SET
      address = excluded.address, reason = excluded.reason, source = excluded.source,
      created_at = excluded.created_at, expires_at = excluded.expires_at
    WHERE excluded.created_at >= suppressions.created_at
      -- Never weakened: an entry that ends replaces one that never does (or ends later) only once
      -- that one has run out.
      AND (excluded.expires_at IS NULL
        OR (suppressions.expires_at IS NOT NULL
          AND (excluded.expires_at >= suppressions.expires_at OR suppressions.expires_at <= excluded.created_at)))`;
  const upsert = stmt(UPSERT);
  // keepPermanent: an entry that never expires stays as it is.
  const upsertKeepingPermanent = stmt(`${UPSERT} AND suppressions.expires_at IS NOT NULL`);

  // Primary-key lookups, one per hash of the JSON list (hex), in one statement.
  const selectAmong = stmt(`
    SELECT address_hash FROM suppressions
    WHERE tenant = ?1 AND address_hash IN (SELECT unhex(value) FROM json_each(?2))
      AND (expires_at IS NULL OR expires_at > ?3)`);

  const selectOne = stmt(`
    SELECT ${COLUMNS} FROM suppressions
    WHERE tenant = ? AND address_hash = ? AND (expires_at IS NULL OR expires_at > ?)`);

  // suppressions_listing walked newest first from the bound; the other filters test each entry.
  const FILTERS = `
      AND (?5 IS NULL OR reason = ?5)
      AND (?6 IS NULL OR address_hash = ?6)
      AND (?7 IS NULL OR expires_at IS NULL OR expires_at > ?7)`;
  const selectTenantPage = stmt(`
    SELECT ${COLUMNS} FROM suppressions INDEXED BY suppressions_listing
    WHERE tenant = ?1 AND (created_at, address_hash) < (?2, ?3) AND created_at >= ?4 ${FILTERS}
    ORDER BY created_at DESC, address_hash DESC
    LIMIT ?8`);
  // Across tenants the time bounds are tested per entry: the walk is by tenant first.
  const selectAllPage = stmt(`
    SELECT ${COLUMNS} FROM suppressions INDEXED BY suppressions_listing
    WHERE (tenant, created_at, address_hash) < (?1, ?2, ?3) AND created_at >= ?4 AND created_at < ?9 ${FILTERS}
    ORDER BY tenant DESC, created_at DESC, address_hash DESC
    LIMIT ?8`);
  // With an address, its few entries through suppressions_address.
  const selectAddressPage = stmt(`
    SELECT ${COLUMNS} FROM suppressions INDEXED BY suppressions_address
    WHERE address_hash = ?6 AND (tenant, created_at, address_hash) < (?1, ?2, ?3) AND created_at >= ?4 AND created_at < ?9
      AND (?10 IS NULL OR tenant = ?10)
      AND (?5 IS NULL OR reason = ?5)
      AND (?7 IS NULL OR expires_at IS NULL OR expires_at > ?7)
    ORDER BY tenant DESC, created_at DESC
    LIMIT ?8`);

  const deleteOne = stmt(`DELETE FROM suppressions WHERE tenant = ? AND address_hash = ?`);

  // Through suppressions_expires_at, a chunk per transaction.
  const purge = stmt(`
    DELETE FROM suppressions WHERE (tenant, address_hash) IN (
      SELECT tenant, address_hash FROM suppressions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`);

  // A recipient suppressed at acceptance under the drop action: final at once, never attempted.
  const settleRecipient = stmt(`
    UPDATE recipients SET state = 'bounced', next_attempt_at = NULL,
      last_disposition = ?3, last_code = ?4, last_enhanced = ?5, last_response = ?6, last_stage = ?7,
      last_bounce_class = ?8, last_remote_host = ?9, last_egress_ip = ?10, updated_at = ?11
    WHERE message_id = ?1 AND recipient = ?2 AND state = 'queued'
    RETURNING id`);

  // recipients_final_address: the address's few final rows, each joined to its message's tenant.
  const selectFinalResults = stmt(`
    SELECT r.id, r.message_id, r.recipient, r.domain, r.state, r.attempts, r.next_attempt_at, r.last_disposition, r.last_code,
           r.last_enhanced, r.last_response, r.last_stage, r.last_bounce_class, r.last_remote_host, r.last_egress_ip, r.updated_at
    FROM recipients r INDEXED BY recipients_final_address JOIN messages m ON m.id = r.message_id
    WHERE lower(r.recipient) = lower(?1) AND r.state IN ('delivered', 'bounced') AND coalesce(m.tenant, '') = ?2
      AND coalesce(r.last_bounce_class, '') NOT IN ('cancelled', 'suppressed')
    ORDER BY r.updated_at DESC, r.id DESC
    LIMIT ?3`);

  return {
    /** Writes the rows (one chunk, inside a write batch); returns how many were added or replaced. */
    upsert(rows: readonly SuppressionInsertValues[], keepPermanent = false): number {
      const statement = keepPermanent ? upsertKeepingPermanent : upsert;
      let written = 0;
      for (const row of rows) written += Number(statement.run(...row).changes);
      return written;
    },

    /** The hashes (hex) among `hashes` the tenant's list holds in force at `now`. */
    selectAmong(tenant: string, hashes: readonly string[], now: number): string[] {
      const rows = selectAmong.all(tenant, JSON.stringify(hashes), now) as Array<{ address_hash: Uint8Array }>;
      return rows.map((r) => Buffer.from(r.address_hash).toString('hex'));
    },

    selectOne(tenant: string, hash: Buffer, now: number): SuppressionDbRow | undefined {
      return selectOne.get(tenant, hash, now) as SuppressionDbRow | undefined;
    },

    selectPage(b: SuppressionQueryBounds): SuppressionDbRow[] {
      const args = [b.belowTenant, b.belowCreatedAt, b.belowHash, b.since, b.reason, b.addressHash, b.now, b.limit] as const;
      if (b.addressHash !== null) return selectAddressPage.all(...args, b.until, b.tenant) as unknown as SuppressionDbRow[];
      if (b.tenant !== null) return selectTenantPage.all(b.tenant, ...args.slice(1)) as unknown as SuppressionDbRow[];
      return selectAllPage.all(...args, b.until) as unknown as SuppressionDbRow[];
    },

    deleteOne(tenant: string, hash: Buffer): boolean {
      return Number(deleteOne.run(tenant, hash).changes) > 0;
    },

    purge(now: number, limit: number): number {
      return Number(purge.run(now, limit).changes);
    },

    selectFinalResults(address: string, tenant: string, limit: number): RecipientDbRow[] {
      return selectFinalResults.all(address, tenant, limit) as unknown as RecipientDbRow[];
    },

    /** Stores the queued row of `recipient` bounced with `outcome`; the ids of the rows settled. */
    settleRecipient(messageId: string, recipient: string, o: DeliveryOutcome, at: number): number[] {
      const rows = settleRecipient.all(messageId, recipient, o.disposition, o.code, o.enhanced, o.response, o.stage, o.bounceClass, o.remoteHost, o.egressIp, at);
      return (rows as Array<{ id: number }>).map((r) => r.id);
    },
  };
}

export type SqliteSuppressionQueries = ReturnType<typeof prepareSuppressionQueries>;
