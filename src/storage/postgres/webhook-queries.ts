import { WEBHOOK_RETRY_WINDOW_MS, type NewWebhookEndpoint, type WebhookAttemptResult, type WebhookEvent, type WebhookLease, type WebhookLeaseToken } from '../webhook-outbox.ts';
import { webhookEventValues, type ClaimedWebhookDbRow, type WebhookDbRow, type WebhookDeliveryDbRow } from '../webhook-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of webhooks, one function per query. The events a change emits are
 * inserted in its transaction (the enqueue's and the attempts' statements in queries.ts carry
 * theirs); claims are single statements with FOR UPDATE SKIP LOCKED, like the queue's. Over 300
 * lines on purpose: the outbox's whole SQL in one place.
 */

/**
 * A delivery's id, its webhook-id header: the time in ms (12 hex digits) then 72 random bits of a
 * v4 UUID, so no two nodes make the same, and new rows go to the end of the primary key's index
 * instead of a random page of it.
 */
export const NEW_WEBHOOK_DELIVERY_ID = `'msg_' || lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || substr(replace(gen_random_uuid()::text, '-', ''), 1, 20)`;
export const WEBHOOK_WINDOW = String(WEBHOOK_RETRY_WINDOW_MS);

export const WEBHOOK_INSERT_COLUMNS = `id, webhook_id, event_type, tenant, message_id, recipient, occurred_at, egress_ip, reply_code, reply_enhanced,
  reply_text, remote_host, bounce_class, attempt, tags, metadata, data, state, attempts, next_attempt_at, retry_until, created_at`;

const EVENT_COLUMNS = `d.event_type, d.tenant, d.message_id, d.recipient, d.occurred_at, d.egress_ip, d.reply_code, d.reply_enhanced,
  d.reply_text, d.remote_host, d.bounce_class, d.attempt, array_to_json(d.tags)::text AS tags, d.metadata, d.data`;

/** A pending row of a disabled endpoint is shown as held: claims never take it, and enabling makes it pending again. */
const SHOWN_STATE = `CASE WHEN d.state = 'pending' AND NOT w.enabled THEN 'held' ELSE d.state END`;

/** A waiting row's retry window runs at least until the window from its endpoint's last enabling (the claim makes it so). */
const SHOWN_RETRY_UNTIL = `CASE WHEN d.state = 'pending' THEN greatest(d.retry_until, coalesce(w.enabled_at, 0) + ${WEBHOOK_WINDOW}) ELSE d.retry_until END`;

const DELIVERY_COLUMNS = `d.id, d.webhook_id, ${EVENT_COLUMNS}, ${SHOWN_STATE} AS state, d.attempts, d.next_attempt_at, ${SHOWN_RETRY_UNTIL} AS retry_until, d.last_attempt_at,
  d.last_status, d.last_error, d.finished_at, d.created_at`;

const WEBHOOK_COLUMNS = `id, tenant, url, event_types, description, max_events_per_request, secret, enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at`;

/**
 * Fans `events` out to their subscribers in one statement: call with the transaction's client
 * inside a write op of the PostgreSQL store, so they commit or roll back with the change that
 * caused them. Throws DataRefusedError for an event no backend could store (before any query).
 */
export async function insertWebhookEvents(db: Db, events: readonly WebhookEvent[], now: number): Promise<void> {
  const values = webhookEventValues(events);
  if (values.length === 0) return;
  const column = (i: number) => values.map((v) => v[i]);
  await db.query({
    name: 'rookery_insert_webhook_events',
    text: `
      INSERT INTO webhook_deliveries (${WEBHOOK_INSERT_COLUMNS})
      SELECT ${NEW_WEBHOOK_DELIVERY_ID}, s.webhook_id, e.type, s.tenant, e.message_id, e.recipient, e.at, e.egress_ip, e.code, e.enhanced,
             e.text, e.remote_host, NULL, NULL, m.tags, m.metadata, e.data, 'pending', 0, $12::bigint, $12::bigint + ${WEBHOOK_WINDOW}, $12::bigint
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::integer[], $8::text[], $9::text[],
                  $10::text[], $11::text[])
        AS e(type, tenant, message_id, recipient, at, egress_ip, code, enhanced, text, remote_host, data)
      JOIN webhook_subscriptions s ON s.tenant = e.tenant AND s.event_type = e.type
      LEFT JOIN messages m ON m.id = e.message_id`,
    values: [...Array.from({ length: 11 }, (_, i) => column(i)), now],
  });
}

export async function insertWebhook(db: Db, e: NewWebhookEndpoint): Promise<void> {
  await db.query({
    name: 'rookery_insert_webhook',
    text: `INSERT INTO webhooks (${WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, true, NULL, NULL, NULL, $8, $8)`,
    values: [e.id, e.tenant ?? '', e.url, JSON.stringify(e.eventTypes), e.description, e.maxEventsPerRequest ?? 1, e.secret, e.createdAt],
  });
}

/** The endpoint; `lock` holds its row until the transaction ends (a change reads and writes it). */
export async function selectWebhook(db: Db, id: string, lock = false): Promise<WebhookDbRow | undefined> {
  const { rows } = await db.query<WebhookDbRow>({
    name: lock ? 'rookery_select_webhook_for_update' : 'rookery_select_webhook',
    text: `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    values: [id],
  });
  return rows[0];
}

/** By id (COLLATE "C": bytes, as SQLite orders), of one tenant or, with null, of all. */
export async function listWebhooks(db: Db, tenant: string | null, after: string, limit: number): Promise<WebhookDbRow[]> {
  const { rows } = await db.query<WebhookDbRow>({
    name: 'rookery_list_webhooks',
    text: `
      SELECT ${WEBHOOK_COLUMNS} FROM webhooks
      WHERE ($1::text IS NULL OR tenant = $1::text) AND id COLLATE "C" > $2
      ORDER BY id COLLATE "C" LIMIT $3`,
    values: [tenant, after, limit],
  });
  return rows;
}

export async function updateWebhook(db: Db, row: WebhookDbRow): Promise<void> {
  await db.query({
    name: 'rookery_update_webhook',
    text: `
      UPDATE webhooks SET url = $2, event_types = $3, description = $4, max_events_per_request = $5, secret = $6, enabled = $7,
        disabled_reason = $8, disabled_at = $9, failing_since = $10, updated_at = $11
      WHERE id = $1`,
    values: [
      row.id, row.url, row.event_types, row.description, row.max_events_per_request, row.secret, Boolean(row.enabled), row.disabled_reason, row.disabled_at,
      row.failing_since, row.updated_at,
    ],
  });
}

export async function deleteWebhook(db: Db, id: string): Promise<boolean> {
  const { rowCount } = await db.query({ name: 'rookery_delete_webhook', text: `DELETE FROM webhooks WHERE id = $1`, values: [id] });
  return (rowCount ?? 0) > 0;
}

/** Replaces the endpoints' subscriptions with one per event type of `types` (none: unsubscribed). */
export async function subscribe(db: Db, webhookIds: readonly string[], tenant: string, types: readonly string[]): Promise<void> {
  await db.query({
    name: 'rookery_delete_webhook_subscriptions',
    text: `DELETE FROM webhook_subscriptions WHERE webhook_id = ANY($1::text[])`,
    values: [webhookIds],
  });
  if (types.length === 0) return;
  await db.query({
    name: 'rookery_insert_webhook_subscriptions',
    text: `INSERT INTO webhook_subscriptions (tenant, event_type, webhook_id) SELECT $1, t, w FROM unnest($2::text[]) t, unnest($3::text[]) w`,
    values: [tenant, types, webhookIds],
  });
}

export async function markEnabled(db: Db, webhookId: string, now: number): Promise<void> {
  await db.query({ name: 'rookery_mark_webhook_enabled', text: `UPDATE webhooks SET enabled_at = $2 WHERE id = $1`, values: [webhookId, now] });
}

/** One chunk of making an enabled endpoint's waiting rows due now (each chunk leaves the rows it changed behind). */
export async function webhookDueNow(db: Db, webhookId: string, now: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_webhook_due_now',
    text: `
      UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id IN (
        SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending' AND next_attempt_at > $2
        ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)`,
    values: [webhookId, now, limit],
  });
  return rowCount ?? 0;
}

/** One chunk of an endpoint's deliveries deleted. */
export async function deleteWebhookDeliveries(db: Db, webhookId: string, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_delete_webhook_deliveries',
    text: `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 LIMIT $2)`,
    values: [webhookId, limit],
  });
  return rowCount ?? 0;
}

/**
 * Claims due deliveries in one statement. The candidates are read without locks: per enabled
 * endpoint not skipped, its oldest due rows (at most `perWebhook`, through its own range of
 * webhook_deliveries_endpoint_due, so a disabled endpoint's backlog is never read), and leases
 * that ran out; then oldest due first up to `limit`. Only those picked are locked, FOR UPDATE SKIP
 * LOCKED, and taken if they are still as read (another node's claim skips them or finds them
 * changed), so a claim locks the rows it leases and no others. A lease that ran out on a row of
 * an endpoint disabled since gives the row back. A delivery claimed after its endpoint was
 * enabled again has its retry window from then at least.
 */
export async function claimWebhookDeliveries(
  db: Db,
  o: { now: number; limit: number; perWebhook: number; skip: readonly string[]; owner: string; lockedUntil: number; token: WebhookLeaseToken },
): Promise<ClaimedWebhookDbRow[]> {
  const { rows } = await db.query<ClaimedWebhookDbRow>({
    name: 'rookery_claim_webhook_deliveries',
    text: `
      WITH endpoints AS (
        SELECT id FROM webhooks WHERE enabled AND id <> ALL($4::text[])
      ), given_back AS (
        UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
        WHERE id IN (
          SELECT id FROM webhook_deliveries
          WHERE state = 'delivering' AND locked_until < $1 AND webhook_id IN (SELECT id FROM webhooks WHERE NOT enabled)
          ORDER BY locked_until LIMIT $5
          FOR UPDATE SKIP LOCKED)
      ), expired AS (
        SELECT id, webhook_id, next_attempt_at FROM webhook_deliveries
        WHERE state = 'delivering' AND locked_until < $1 AND webhook_id IN (SELECT id FROM endpoints)
        ORDER BY locked_until LIMIT $5
      ), due AS (
        SELECT c.* FROM endpoints e CROSS JOIN LATERAL (
          SELECT id, webhook_id, next_attempt_at FROM webhook_deliveries
          WHERE webhook_id = e.id AND state = 'pending' AND next_attempt_at <= $1
          ORDER BY next_attempt_at, id LIMIT $3
        ) c
      ), ranked AS (
        SELECT id, next_attempt_at, row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS n
        FROM (SELECT * FROM expired UNION ALL SELECT * FROM due) AS candidates
      ), picked AS (
        SELECT id FROM ranked WHERE n <= $3 ORDER BY next_attempt_at, id LIMIT $2
      ), locked AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.id IN (SELECT id FROM picked)
          AND ((d.state = 'pending' AND d.next_attempt_at <= $1) OR (d.state = 'delivering' AND d.locked_until < $1))
        FOR UPDATE SKIP LOCKED
      )
      UPDATE webhook_deliveries d SET state = 'delivering', locked_by = $6, locked_until = $7, lease_token = $8,
        retry_until = greatest(d.retry_until, coalesce(w.enabled_at, 0) + ${WEBHOOK_WINDOW})
      FROM locked p, webhooks w
      WHERE d.id = p.id AND w.id = d.webhook_id AND w.enabled
      RETURNING d.id, d.webhook_id, w.url, w.secret, w.max_events_per_request, d.attempts, d.retry_until, d.next_attempt_at, ${EVENT_COLUMNS}`,
    values: [o.now, o.limit, o.perWebhook, o.skip, o.limit * 2, o.owner, o.lockedUntil, o.token],
  });
  return rows;
}

/** Extends the leases still held; returns the ids that no longer carry their token. */
export async function renewWebhookLeases(db: Db, leases: readonly WebhookLease[], lockedUntil: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'rookery_renew_webhook_leases',
    text: `
      WITH leases AS (
        SELECT * FROM unnest($1::text[], $2::text[]) AS l(id, token)
      ), renewed AS (
        UPDATE webhook_deliveries d SET locked_until = $3
        FROM leases l
        WHERE d.id = l.id AND d.state = 'delivering' AND d.lease_token = l.token
        RETURNING d.id
      )
      SELECT l.id FROM leases l
      WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = l.id AND d.lease_token = l.token)`,
    values: [leases.map((l) => l.id), leases.map((l) => l.token), lockedUntil],
  });
  return rows.map((r) => r.id);
}

/**
 * Applies results to rows still delivering under their tokens (the token stays, so a result
 * recorded by an earlier run of the same call is found again), and ends the run of failures of
 * each endpoint a result of the batch reached. Returns each recorded id and whether this call
 * applied it.
 */
export async function applyWebhookResults(db: Db, results: readonly (WebhookAttemptResult & { error: string | null })[]): Promise<Array<{ id: string; webhook_id: string; ok: boolean; at: number; applied: boolean }>> {
  const { rows } = await db.query<{ id: string; webhook_id: string; ok: boolean; at: number; applied: boolean }>({
    name: 'rookery_apply_webhook_results',
    text: `
      WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::integer[], $5::text[], $6::bigint[], $7::bigint[])
          AS t(id, token, ok, status, error, at, next_attempt_at)
      ), updated AS (
        UPDATE webhook_deliveries d SET
          state = CASE WHEN i.ok THEN 'delivered' WHEN i.next_attempt_at IS NULL THEN 'failed' ELSE 'pending' END,
          attempts = d.attempts + 1,
          next_attempt_at = CASE WHEN NOT i.ok AND i.next_attempt_at IS NOT NULL THEN i.next_attempt_at ELSE d.next_attempt_at END,
          locked_by = NULL, locked_until = NULL,
          last_attempt_at = i.at, last_status = i.status, last_error = i.error,
          finished_at = CASE WHEN i.ok OR i.next_attempt_at IS NULL THEN i.at END
        FROM input i, webhooks w
        WHERE d.id = i.id AND d.state = 'delivering' AND d.lease_token = i.token AND w.id = d.webhook_id
        RETURNING d.id, d.webhook_id, i.ok, i.at
      )
      SELECT id, webhook_id, ok, at, true AS applied FROM updated
      UNION ALL
      SELECT d.id, d.webhook_id, i.ok, i.at, false FROM webhook_deliveries d JOIN input i ON d.id = i.id AND d.lease_token = i.token
      WHERE d.state <> 'delivering'`,
    values: [
      results.map((r) => r.id),
      results.map((r) => r.token),
      results.map((r) => r.ok),
      results.map((r) => r.status),
      results.map((r) => r.error),
      results.map((r) => r.at),
      results.map((r) => (r.ok ? null : r.nextAttemptAt)),
    ],
  });
  return rows;
}

/**
 * Locks the endpoints' rows in id order. Taken before their failure runs change: two nodes
 * recording results of the same endpoints (one's success, the other's failure) would otherwise
 * lock them in opposite orders and deadlock.
 */
export async function lockWebhooks(db: Db, webhookIds: readonly string[]): Promise<void> {
  await db.query({
    name: 'rookery_lock_webhooks',
    text: `SELECT id FROM webhooks WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
    values: [webhookIds],
  });
}

export async function clearFailing(db: Db, webhookIds: readonly string[]): Promise<void> {
  await db.query({
    name: 'rookery_clear_webhook_failing',
    text: `UPDATE webhooks SET failing_since = NULL WHERE id = ANY($1::text[]) AND failing_since IS NOT NULL`,
    values: [webhookIds],
  });
}

/** Starts each endpoint's run of failures at its first failure here, unless one runs already. */
export async function markFailing(db: Db, failed: ReadonlyMap<string, number>): Promise<void> {
  await db.query({
    name: 'rookery_mark_webhook_failing',
    text: `
      UPDATE webhooks w SET failing_since = coalesce(w.failing_since, f.at)
      FROM unnest($1::text[], $2::bigint[]) AS f(id, at) WHERE w.id = f.id`,
    values: [[...failed.keys()], [...failed.values()]],
  });
}

/** Disables the endpoints among `webhookIds` failing since `cutoff` or before; returns those. */
export async function disableFailing(db: Db, webhookIds: readonly string[], cutoff: number, reason: string, now: number): Promise<Array<{ id: string; tenant: string; url: string; failing_since: number }>> {
  const { rows } = await db.query<{ id: string; tenant: string; url: string; failing_since: number }>({
    name: 'rookery_disable_failing_webhooks',
    text: `
      UPDATE webhooks SET enabled = false, disabled_reason = $3, disabled_at = $4, updated_at = $4
      WHERE id = ANY($1::text[]) AND enabled AND failing_since <= $2
      RETURNING id, tenant, url, failing_since`,
    values: [webhookIds, cutoff, reason, now],
  });
  return rows;
}

export async function releaseWebhookDeliveries(db: Db, leases: readonly WebhookLease[]): Promise<void> {
  await db.query({
    name: 'rookery_release_webhook_deliveries',
    text: `
      UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
      FROM unnest($1::text[], $2::text[]) AS l(id, token)
      WHERE webhook_deliveries.id = l.id AND webhook_deliveries.state = 'delivering' AND webhook_deliveries.lease_token = l.token`,
    values: [leases.map((l) => l.id), leases.map((l) => l.token)],
  });
}

export async function releaseOwnerWebhookDeliveries(db: Db, owner: string): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_release_owner_webhook_deliveries',
    text: `
      UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
      WHERE state = 'delivering' AND locked_by = $1`,
    values: [owner],
  });
  return rowCount ?? 0;
}

/** Newest first through webhook_deliveries_webhook, from the cursor; the state is tested on the way. */
export async function selectWebhookDeliveries(db: Db, webhookId: string, state: string | null, after: { createdAt: number; id: string } | null, limit: number): Promise<WebhookDeliveryDbRow[]> {
  const { rows } = await db.query<WebhookDeliveryDbRow>({
    name: 'rookery_select_webhook_deliveries',
    text: `
      SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
      WHERE d.webhook_id = $1 AND ($2::text IS NULL OR ${SHOWN_STATE} = $2::text)
        AND ($3::bigint IS NULL OR d.created_at < $3::bigint OR (d.created_at = $3::bigint AND d.id COLLATE "C" < $4::text))
      ORDER BY d.created_at DESC, d.id COLLATE "C" DESC
      LIMIT $5`,
    values: [webhookId, state, after?.createdAt ?? null, after?.id ?? null, limit],
  });
  return rows;
}

export async function selectWebhookDelivery(db: Db, webhookId: string, id: string): Promise<WebhookDeliveryDbRow | undefined> {
  const { rows } = await db.query<WebhookDeliveryDbRow>({
    name: 'rookery_select_webhook_delivery',
    text: `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.webhook_id = $1 AND d.id = $2`,
    values: [webhookId, id],
  });
  return rows[0];
}

/** Due now, tried for the window from now; a row in flight is its claim's. */
export async function replayWebhookDelivery(db: Db, webhookId: string, id: string, now: number): Promise<void> {
  await db.query({
    name: 'rookery_replay_webhook_delivery',
    text: `
      UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $3::bigint, retry_until = $3::bigint + ${WEBHOOK_WINDOW}, finished_at = NULL,
        lease_token = NULL
      WHERE webhook_id = $1 AND id = $2 AND state <> 'delivering'`,
    values: [webhookId, id, now],
  });
}

export async function replayWebhookRange(db: Db, webhookId: string, since: number, until: number, state: string | null, now: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_replay_webhook_range',
    text: `
      WITH picked AS (
        SELECT id FROM webhook_deliveries
        WHERE webhook_id = $1 AND created_at >= $2 AND created_at < $3 AND state <> 'delivering' AND ($4::text IS NULL OR state = $4::text)
        ORDER BY created_at, id LIMIT $6
        FOR UPDATE SKIP LOCKED
      )
      UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $5::bigint, retry_until = $5::bigint + ${WEBHOOK_WINDOW}, finished_at = NULL,
        lease_token = NULL
      FROM picked p WHERE webhook_deliveries.id = p.id`,
    values: [webhookId, since, until, state, now, limit],
  });
  return rowCount ?? 0;
}

export async function purgeWebhookDeliveries(db: Db, before: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: 'rookery_purge_webhook_deliveries',
    text: `
      DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries WHERE finished_at IS NOT NULL AND finished_at < $1 ORDER BY finished_at LIMIT $2)`,
    values: [before, limit],
  });
  return rowCount ?? 0;
}

/** Counted per endpoint through its range of webhook_deliveries_endpoint_due. */
export async function webhookStats(db: Db): Promise<{ pending: number; held: number; disabled: number }> {
  const { rows } = await db.query<{ pending: number; held: number; disabled: number }>({
    name: 'rookery_webhook_stats',
    text: `
      SELECT coalesce(sum(n) FILTER (WHERE w.enabled), 0)::integer AS pending,
             coalesce(sum(n) FILTER (WHERE NOT w.enabled), 0)::integer AS held,
             count(*) FILTER (WHERE NOT w.enabled)::integer AS disabled
      FROM webhooks w
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending') c`,
  });
  return rows[0]!;
}
