import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import { NEW_WEBHOOK_DELIVERY_ID, WEBHOOK_INSERT_COLUMNS, WEBHOOK_WINDOW } from './webhook-queries.ts';
import type { NewMessage } from '../store.ts';
import type { RecipientDbRow } from '../store-rows.ts';
import { SUPPRESSION_SALT, type SuppressionDbRow, type SuppressionInsertValues, type SuppressionQueryBounds } from '../suppression-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of the suppression list, one function per query. Each is a single
 * statement on the pool (its own transaction), like the pool counters: a chunk of an import holds
 * its rows' locks for one statement only, never for a whole write batch.
 */

const COLUMNS = 'tenant, address_hash, address, reason, source, created_at, expires_at';

export async function selectSalt(db: Db): Promise<string | undefined> {
  const { rows } = await db.query<{ value: string }>({
    name: 'rookery_select_store_secret',
    text: 'SELECT value FROM store_secrets WHERE name = $1',
    values: [SUPPRESSION_SALT],
  });
  return rows[0]?.value;
}

/**
 * Writes one chunk with one statement (the rows as arrays, so any number fits the bind limit);
 * the newer entry wins (suppressions.ts). Returns how many rows were added or replaced. The rows
 * must be distinct keys: one statement cannot upsert a row twice (suppressionChunks sees to it).
 */
export async function upsertSuppressions(db: Db, rows: readonly SuppressionInsertValues[], keepPermanent = false): Promise<number> {
  const { rowCount } = await db.query({
    name: keepPermanent ? 'rookery_upsert_suppressions_keeping_permanent' : 'rookery_upsert_suppressions',
    text: `
      INSERT INTO suppressions (${COLUMNS})
      SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
      ON CONFLICT (tenant, address_hash) DO UPDATE SET
        address = excluded.address, reason = excluded.reason, source = excluded.source,
        created_at = excluded.created_at, expires_at = excluded.expires_at
      WHERE excluded.created_at >= suppressions.created_at
        -- Never weakened: an entry that ends replaces one that never does (or ends later) only
        -- once that one has run out.
        AND (excluded.expires_at IS NULL
          OR (suppressions.expires_at IS NOT NULL
            AND (excluded.expires_at >= suppressions.expires_at OR suppressions.expires_at <= excluded.created_at)))
        ${keepPermanent ? 'AND suppressions.expires_at IS NOT NULL' : ''}`,
    values: [0, 1, 2, 3, 4, 5, 6].map((column) => rows.map((row) => row[column])),
  });
  return rowCount ?? 0;
}

/** Primary-key lookups of every hash in one round trip; the hashes (hex) in force at `now`. */
export async function selectSuppressedAmong(db: Db, tenant: string, hashes: readonly Buffer[], now: number): Promise<string[]> {
  const { rows } = await db.query<{ address_hash: Buffer }>({
    name: 'rookery_select_suppressed_among',
    text: `
      SELECT address_hash FROM suppressions
      WHERE tenant = $1 AND address_hash = ANY($2::bytea[]) AND (expires_at IS NULL OR expires_at > $3)`,
    values: [tenant, hashes, now],
  });
  return rows.map((r) => r.address_hash.toString('hex'));
}

export async function selectSuppression(db: Db, tenant: string, hash: Buffer, now: number): Promise<SuppressionDbRow | undefined> {
  const { rows } = await db.query<SuppressionDbRow>({
    name: 'rookery_select_suppression',
    text: `SELECT ${COLUMNS} FROM suppressions WHERE tenant = $1 AND address_hash = $2 AND (expires_at IS NULL OR expires_at > $3)`,
    values: [tenant, hash, now],
  });
  return rows[0];
}

/**
 * A page, newest first: one tenant's walks suppressions_listing from the bound; across tenants
 * the row comparison walks it by tenant and the time bounds test each entry; with an address,
 * its few entries come through suppressions_address. Unnamed, so each is planned with its values.
 */
export async function selectSuppressionPage(db: Db, b: SuppressionQueryBounds): Promise<SuppressionDbRow[]> {
  const filters = `
    AND ($5::text IS NULL OR reason = $5::text)
    AND ($6::bytea IS NULL OR address_hash = $6::bytea)
    AND ($7::bigint IS NULL OR expires_at IS NULL OR expires_at > $7::bigint)
    AND created_at >= $4 AND created_at < $9
    AND ($10::text IS NULL OR tenant = $10::text)`;
  const text =
    b.tenant !== null && b.addressHash === null
      ? `SELECT ${COLUMNS} FROM suppressions
         WHERE tenant = $1 AND (created_at, address_hash) < ($2, $3) ${filters}
         ORDER BY created_at DESC, address_hash DESC LIMIT $8`
      : `SELECT ${COLUMNS} FROM suppressions
         WHERE (tenant, created_at, address_hash) < ($1, $2, $3) ${filters}
         ORDER BY tenant DESC, created_at DESC, address_hash DESC LIMIT $8`;
  const { rows } = await db.query<SuppressionDbRow>({
    text,
    values: [b.belowTenant, b.belowCreatedAt, Buffer.from(b.belowHash), b.since, b.reason, b.addressHash, b.now, b.limit, b.until, b.tenant],
  });
  return rows;
}

export async function deleteSuppression(db: Db, tenant: string, hash: Buffer): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'rookery_delete_suppression',
    text: 'DELETE FROM suppressions WHERE tenant = $1 AND address_hash = $2',
    values: [tenant, hash],
  });
  return (rowCount ?? 0) > 0;
}

/** Deletes up to `limit` entries expired at `now`, soonest expired first; returns how many. */
export async function purgeExpiredSuppressions(db: Db, now: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_purge_expired_suppressions',
    text: `
      DELETE FROM suppressions WHERE (tenant, address_hash) IN (
        SELECT tenant, address_hash FROM suppressions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)`,
    values: [now, limit],
  });
  return rowCount ?? 0;
}

/** The address's final results, newest first (recipients_final_address), each joined to its message's tenant. */
export async function selectFinalResults(db: Db, tenant: string, address: string, limit: number): Promise<RecipientDbRow[]> {
  const { rows } = await db.query<RecipientDbRow>({
    name: 'rookery_select_final_results',
    text: `
      SELECT r.id, r.message_id, r.recipient, r.domain, r.state, r.attempts, r.next_attempt_at, r.last_disposition, r.last_code,
             r.last_enhanced, r.last_response, r.last_stage, r.last_bounce_class, r.last_remote_host, r.last_egress_ip, r.updated_at
      FROM recipients r JOIN messages m ON m.id = r.message_id
      WHERE lower(r.recipient) = lower($1) AND r.state IN ('delivered', 'bounced') AND coalesce(m.tenant, '') = $2
        AND coalesce(r.last_bounce_class, '') NOT IN ('cancelled', 'suppressed')
      ORDER BY r.updated_at DESC, r.id DESC
      LIMIT $3`,
    values: [address, tenant, limit],
  });
  return rows;
}

/**
 * Stores the recipients of `messages` suppressed at acceptance under the drop action
 * (NewMessage.suppressed) bounced with their outcome, an event and their recipient.suppressed
 * webhook events, in the transaction that inserted them queued: final at once, never claimed.
 * One statement for the chunk.
 */
export async function settleSuppressedRecipients(db: Db, messages: readonly NewMessage[]): Promise<void> {
  const settled = messages.flatMap((m) => (m.suppressed ?? []).map((s) => ({ messageId: m.id, at: m.createdAt, ...s })));
  if (settled.length === 0) return;
  const column = <T>(get: (o: DeliveryOutcome) => T) => settled.map((s) => get(s.outcome));
  await db.query({
    name: 'rookery_settle_suppressed_recipients_v2',
    text: `
      WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::text[], $11::text[])
          AS t(message_id, recipient, at, disposition, code, enhanced, response, stage, bounce_class, remote_host, egress_ip)
      ), settled AS (
        UPDATE recipients r SET state = 'bounced', next_attempt_at = NULL,
          last_disposition = i.disposition, last_code = i.code, last_enhanced = i.enhanced, last_response = i.response,
          last_stage = i.stage, last_bounce_class = i.bounce_class, last_remote_host = i.remote_host,
          last_egress_ip = i.egress_ip, updated_at = i.at
        FROM input i
        WHERE r.message_id = i.message_id AND r.recipient = i.recipient AND r.state = 'queued'
        RETURNING r.id, r.message_id, r.recipient, i.at, i.disposition, i.code, i.enhanced, i.response, i.stage, i.bounce_class,
                  i.remote_host, i.egress_ip
      ), hooks AS (
        INSERT INTO webhook_deliveries (${WEBHOOK_INSERT_COLUMNS})
        SELECT ${NEW_WEBHOOK_DELIVERY_ID}, s.webhook_id, 'recipient.suppressed', s.tenant, st.message_id, st.recipient, st.at, NULL, st.code,
               st.enhanced, st.response, st.remote_host, st.bounce_class, 0, m.tags, m.metadata, NULL, 'pending', 0, st.at,
               st.at + ${WEBHOOK_WINDOW}, st.at
        FROM settled st JOIN messages m ON m.id = st.message_id
        JOIN webhook_subscriptions s ON s.tenant = coalesce(m.tenant, '') AND s.event_type = 'recipient.suppressed'
      )
      INSERT INTO events (recipient_id, message_id, attempt, at, disposition, code, enhanced, response, stage,
                          bounce_class, remote_host, egress_ip)
      SELECT id, message_id, 0, at, disposition, code, enhanced, response, stage, bounce_class, remote_host, egress_ip
      FROM settled ORDER BY id`,
    values: [
      settled.map((s) => s.messageId),
      settled.map((s) => s.recipient),
      settled.map((s) => s.at),
      column((o) => o.disposition),
      column((o) => o.code),
      column((o) => o.enhanced),
      column((o) => o.response),
      column((o) => o.stage),
      column((o) => o.bounceClass),
      column((o) => o.remoteHost),
      column((o) => o.egressIp),
    ],
  });
}
