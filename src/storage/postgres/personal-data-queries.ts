import { dsnQueueIdLine } from '../message-rows.ts';
import { addressPattern } from '../personal-data-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of personal data (personal-data.ts), one function per query. `tenant`
 * is null for every tenant's data, else a tenant key ('' for mail of no tenant). The address is
 * matched as lower(column) containing lower(address), as findInPostgres looks for it; a message
 * body (bytea) through its escape form (byteaEscapeText). What has no index to find the address
 * by (DSN bodies, webhook deliveries, audit entries, idempotency answers) is read whole by each
 * statement: the server does that off this process, and the writes take their rows a chunk at a
 * time.
 */

/**
 * The address as encode(body, 'escape') writes its UTF-8 bytes: a byte over 0x7f as \ooo, a
 * backslash doubled, so a body is searched in any encoding without being decoded.
 */
export function byteaEscapeText(address: string): string {
  return [...Buffer.from(address, 'utf8')]
    .map((b) => (b === 0x5c ? '\\\\' : b >= 0x80 || b === 0 ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b)))
    .join('');
}

/** The messages `address` is a recipient of, newest first: its final rows through recipients_final_address, the live ones through recipients_due. */
export async function selectAddressMessages(db: Db, address: string, tenant: string | null, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'rookery_select_address_messages',
    text: `
      SELECT m.id FROM messages m
      WHERE m.id IN (
          SELECT r.message_id FROM recipients r WHERE lower(r.recipient) = lower($1) AND r.state IN ('delivered', 'bounced')
          UNION
          SELECT r.message_id FROM recipients r WHERE r.state IN ('queued', 'delivering') AND lower(r.recipient) = lower($1))
        AND ($2::text IS NULL OR coalesce(m.tenant, '') = $2)
      ORDER BY m.created_at DESC, m.id DESC
      LIMIT $3`,
    values: [address, tenant, limit],
  });
  return rows.map((r) => r.id);
}

/** Recipients of the message still waiting or in flight, other than `except` (null: any). */
export async function countLive(db: Db, messageId: string, except: string | null): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: 'rookery_count_live_recipients',
    text: `
      SELECT count(*)::int AS n FROM recipients
      WHERE message_id = $1 AND state IN ('queued', 'delivering') AND ($2::text IS NULL OR lower(recipient) <> lower($2))`,
    values: [messageId, except],
  });
  return rows[0]!.n;
}

/** Deletes the address's rows of the message (their events and feedback cascade); the states they had. */
export async function deleteAddressRows(db: Db, messageId: string, address: string): Promise<string[]> {
  const { rows } = await db.query<{ state: string }>({
    name: 'rookery_delete_address_rows',
    text: `DELETE FROM recipients WHERE message_id = $1 AND lower(recipient) = lower($2) RETURNING state`,
    values: [messageId, address],
  });
  return rows.map((r) => r.state);
}

/** Deletes messages whole: recipients, events, feedback events and a pending mark cascade. */
export async function deleteMessages(db: Db, ids: readonly string[]): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_delete_messages',
    text: `DELETE FROM messages WHERE id = ANY ($1::text[])`,
    values: [ids],
  });
  return rowCount ?? 0;
}

export async function insertPending(db: Db, messageId: string, at: number): Promise<void> {
  await db.query({
    name: 'rookery_insert_erasure_pending',
    text: `INSERT INTO erasure_pending (message_id, erased_at) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING`,
    values: [messageId, at],
  });
}

export async function selectPending(db: Db, after: string, limit: number): Promise<{ message_id: string; erased_at: number }[]> {
  const { rows } = await db.query<{ message_id: string; erased_at: number }>({
    name: 'rookery_select_erasure_pending',
    text: `SELECT message_id, erased_at FROM erasure_pending WHERE message_id > $1 ORDER BY message_id LIMIT $2`,
    values: [after, limit],
  });
  return rows;
}

/**
 * DSNs whose body quotes the address (given as byteaEscapeText), or that report on one of
 * `reportingOn` (queue ids: one whose quoted headers are quoted-printable may hold the address
 * split across lines, where no search finds it), at most `limit`.
 */
export async function selectDsnsQuoting(db: Db, escaped: string, tenant: string | null, limit: number, reportingOn: readonly string[] = []): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'rookery_select_dsns_quoting_v2',
    text: `
      SELECT id FROM messages
      WHERE source = 'dsn' AND ($2::text IS NULL OR coalesce(tenant, '') = $2)
        AND (encode(body, 'escape') ~* $1 OR EXISTS (SELECT 1 FROM unnest($4::bytea[]) AS l(line) WHERE position(l.line IN body) > 0))
      LIMIT $3`,
    values: [addressPattern(escaped), tenant, limit, reportingOn.map((id) => dsnQueueIdLine(id))],
  });
  return rows.map((r) => r.id);
}

export async function countDsnsQuoting(db: Db, escaped: string, tenant: string | null): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: 'rookery_count_dsns_quoting',
    text: `
      SELECT count(*)::int AS n FROM messages
      WHERE source = 'dsn' AND ($2::text IS NULL OR coalesce(tenant, '') = $2)
        AND encode(body, 'escape') ~* $1`,
    values: [addressPattern(escaped), tenant],
  });
  return rows[0]!.n;
}

const NAMES_IN_DELIVERY = `
        ($2::text IS NULL OR tenant = $2)
        AND (recipient ~* $1 OR reply_text ~* $1 OR data ~* $1 OR array_to_string(tags, ' ') ~* $1 OR metadata ~* $1)`;

export async function countDeliveriesNaming(db: Db, address: string, tenant: string | null): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: 'rookery_count_deliveries_naming',
    text: `SELECT count(*)::int AS n FROM webhook_deliveries WHERE ${NAMES_IN_DELIVERY}`,
    values: [addressPattern(address), tenant],
  });
  return rows[0]!.n;
}

/** Deletes up to `limit` webhook deliveries naming the address; returns how many. */
export async function deleteDeliveriesNaming(db: Db, address: string, tenant: string | null, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_delete_deliveries_naming',
    text: `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE ${NAMES_IN_DELIVERY} LIMIT $3)`,
    values: [addressPattern(address), tenant, limit],
  });
  return rowCount ?? 0;
}

/**
 * Audit entries after `afterId` whose target or change names the address, by id, at most `limit`:
 * of a tenant's erasure, its tokens' entries and those of tokens of no tenant (personal-data.ts).
 */
export async function selectAuditNaming(
  db: Db,
  address: string,
  tenant: string | null,
  afterId: number,
  limit: number,
): Promise<{ id: number; target: string | null; change: string | null }[]> {
  const { rows } = await db.query<{ id: string; target: string | null; change: string | null }>({
    name: 'rookery_select_audit_naming_v2',
    text: `
      SELECT id, target, change FROM audit
      WHERE id > $3 AND ($2::text IS NULL OR tenant IS NULL OR tenant = $2)
        AND (target ~* $1 OR change ~* $1)
      ORDER BY id LIMIT $4`,
    values: [addressPattern(address), tenant, afterId, limit],
  });
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

export async function updateAudit(db: Db, id: number, target: string | null, change: string | null): Promise<void> {
  await db.query({
    name: 'rookery_update_audit',
    text: `UPDATE audit SET target = $2, change = $3 WHERE id = $1`,
    values: [id, target, change],
  });
}

/** The idempotency records whose stored answer names the address (the table holds a day of them). */
export async function selectAnswersNaming(db: Db, address: string): Promise<{ scope: string; key: string; response: string }[]> {
  const { rows } = await db.query<{ scope: string; key: string; response: string }>({
    name: 'rookery_select_answers_naming',
    text: `SELECT scope, key, response FROM idempotency_keys WHERE response ~* $1`,
    values: [addressPattern(address)],
  });
  return rows;
}

export async function deleteAnswer(db: Db, scope: string, key: string): Promise<void> {
  await db.query({
    name: 'rookery_delete_idempotency_answer',
    text: `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2`,
    values: [scope, key],
  });
}

/** Nulls the address of its entries (through suppressions_address); the hash keeps them in force. */
export async function forgetSuppressedAddress(db: Db, hash: Buffer, tenant: string | null): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_forget_suppressed_address',
    text: `UPDATE suppressions SET address = NULL WHERE address_hash = $1 AND ($2::text IS NULL OR tenant = $2) AND address IS NOT NULL`,
    values: [hash, tenant],
  });
  return rowCount ?? 0;
}
