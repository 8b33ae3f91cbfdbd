import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import { WEBHOOK_RETRY_WINDOW_MS, type NewWebhookEndpoint, type WebhookEvent, type WebhookEventType, type WebhookLeaseToken } from '../webhook-outbox.ts';
import { compareWebhookDue, webhookEventValues, type ClaimedWebhookDbRow, type WebhookDbRow, type WebhookDeliveryDbRow, type WebhookEventDbRow } from '../webhook-rows.ts';

/**
 * The SQLite statements of webhooks, prepared once, one function per query. The writes run
 * inside the store's write batches (WriteBatcher), so the events an enqueue or a recorded
 * attempt emits commit with it. Over 300 lines on purpose: the outbox's whole SQL in one place.
 */

/**
 * A delivery's id, its webhook-id header: the time in ms (12 hex digits) then 80 random bits, so no
 * two nodes make the same, and new rows go to the end of the primary key's index instead of a
 * random page of it (each commit then writes a few pages of the index, not one per row).
 */
const NEW_ID = `'msg_' || printf('%012x', CAST(unixepoch('subsec') * 1000 AS INTEGER)) || lower(hex(randomblob(10)))`;
const WINDOW = String(WEBHOOK_RETRY_WINDOW_MS);

const INSERT_COLUMNS = `id, webhook_id, event_type, tenant, message_id, recipient, occurred_at, egress_ip, reply_code, reply_enhanced,
  reply_text, remote_host, bounce_class, attempt, tags, metadata, data, state, attempts, next_attempt_at, retry_until, created_at`;

const EVENT_COLUMNS = `d.event_type, d.tenant, d.message_id, d.recipient, d.occurred_at, d.egress_ip, d.reply_code, d.reply_enhanced,
  d.reply_text, d.remote_host, d.bounce_class, d.attempt, d.tags, d.metadata, d.data`;

/** A pending row of a disabled endpoint is shown as held: claims never take it, and enabling makes it pending again. */
const SHOWN_STATE = `CASE WHEN d.state = 'pending' AND w.enabled = 0 THEN 'held' ELSE d.state END`;

/** A waiting row's retry window runs at least until the window from its endpoint's last enabling (the claim makes it so). */
const SHOWN_RETRY_UNTIL = `CASE WHEN d.state = 'pending' THEN max(d.retry_until, coalesce(w.enabled_at, 0) + ${WINDOW}) ELSE d.retry_until END`;

const DELIVERY_COLUMNS = `d.id, d.webhook_id, ${EVENT_COLUMNS}, ${SHOWN_STATE} AS state, d.attempts, d.next_attempt_at, ${SHOWN_RETRY_UNTIL} AS retry_until, d.last_attempt_at,
  d.last_status, d.last_error, d.finished_at, d.created_at`;

const WEBHOOK_COLUMNS = `id, tenant, url, event_types, description, max_events_per_request, secret, enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at`;


interface ClaimableEndpoint {
  id: string;
  url: string;
  secret: string;
  max_events_per_request: number;
  enabled_at: number;
}

/** A row a claim leased, with its endpoint's URL and secret, before its event is read. */
export type LeasedWebhookRow = Omit<ClaimedWebhookDbRow, keyof WebhookEventDbRow>;

interface Candidate {
  id: string;
  webhook_id: string;
  next_attempt_at: number;
}

/** A row a claim means to lease, with its endpoint. */
export interface PickedWebhookRow extends Candidate {
  endpoint: ClaimableEndpoint;
}

export function prepareWebhookQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);

  // After the message and its recipients are inserted: one row per subscribed endpoint of its
  // tenant, none for a DSN (Rookery's own mail) or when nobody listens.
  const insertAccepted = stmt(`
    INSERT INTO webhook_deliveries (${INSERT_COLUMNS})
    SELECT ${NEW_ID}, s.webhook_id, 'message.accepted', s.tenant, m.id, NULL, m.created_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           m.tags, m.metadata,
           json_object('sender', m.sender, 'recipients',
             json((SELECT json_group_array(recipient) FROM (SELECT recipient FROM recipients WHERE message_id = m.id ORDER BY id)))),
           'pending', 0, m.created_at, m.created_at + ${WINDOW}, m.created_at
    FROM messages m JOIN webhook_subscriptions s ON s.tenant = coalesce(m.tenant, '') AND s.event_type = 'message.accepted'
    WHERE m.id = ? AND m.source <> 'dsn'`);

  // After an attempt's result is applied to its recipient row (which holds the last egress IP).
  const insertAttemptEvent = stmt(`
    INSERT INTO webhook_deliveries (${INSERT_COLUMNS})
    SELECT ${NEW_ID}, s.webhook_id, ?2, s.tenant, m.id, r.recipient, ?3, r.last_egress_ip, ?4, ?5, ?6, ?7, ?8, r.attempts,
           m.tags, m.metadata, NULL, 'pending', 0, ?3, ?3 + ${WINDOW}, ?3
    FROM recipients r JOIN messages m ON m.id = r.message_id
    JOIN webhook_subscriptions s ON s.tenant = coalesce(m.tenant, '') AND s.event_type = ?2
    WHERE r.id = ?1 AND m.source <> 'dsn'`);

  // An event another part emits; tags and metadata from its message while that is stored.
  const insertEvent = stmt(`
    INSERT INTO webhook_deliveries (${INSERT_COLUMNS})
    SELECT ${NEW_ID}, s.webhook_id, ?1, s.tenant, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, NULL,
           m.tags, m.metadata, ?11, 'pending', 0, ?12, ?12 + ${WINDOW}, ?12
    FROM webhook_subscriptions s LEFT JOIN messages m ON m.id = ?3
    WHERE s.tenant = ?2 AND s.event_type = ?1`);

  const insertWebhook = stmt(`INSERT INTO webhooks (${WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  const selectWebhook = stmt(`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?`);

  const listWebhooks = stmt(`
    SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE (?1 IS NULL OR tenant = ?1) AND id > ?2 ORDER BY id LIMIT ?3`);

  const updateWebhook = stmt(`
    UPDATE webhooks SET url = ?, event_types = ?, description = ?, max_events_per_request = ?, secret = ?, enabled = ?, disabled_reason = ?,
      disabled_at = ?, failing_since = ?, updated_at = ?
    WHERE id = ?`);

  const deleteWebhook = stmt(`DELETE FROM webhooks WHERE id = ?`);

  const deleteSubscriptions = stmt(`DELETE FROM webhook_subscriptions WHERE webhook_id = ?`);

  const insertSubscription = stmt(`INSERT INTO webhook_subscriptions (tenant, event_type, webhook_id) VALUES (?, ?, ?)`);

  const markEnabled = stmt(`UPDATE webhooks SET enabled_at = ? WHERE id = ?`);

  // Enabling: the endpoint's rows waiting for a later retry come due now, a chunk at a time
  // (each chunk leaves the rows it changed behind, so none is read twice).
  const dueNow = stmt(`
    UPDATE webhook_deliveries SET next_attempt_at = ?2
    WHERE id IN (
      SELECT id FROM webhook_deliveries INDEXED BY webhook_deliveries_endpoint_due
      WHERE webhook_id = ?1 AND state = 'pending' AND next_attempt_at > ?2 ORDER BY next_attempt_at LIMIT ?3
    )`);

  const deleteDeliveries = stmt(`
    DELETE FROM webhook_deliveries WHERE id IN (
      SELECT id FROM webhook_deliveries INDEXED BY webhook_deliveries_webhook WHERE webhook_id = ? LIMIT ?)`);

  // A claim's candidates: per enabled endpoint, its oldest due rows (its own index range, so a
  // disabled endpoint's backlog is never read), and the leases that ran out.
  const claimableEndpoints = stmt(`SELECT id, url, secret, max_events_per_request, coalesce(enabled_at, 0) AS enabled_at FROM webhooks WHERE enabled = 1`);

  const endpointDue = stmt(`
    SELECT id, webhook_id, next_attempt_at FROM webhook_deliveries INDEXED BY webhook_deliveries_endpoint_due
    WHERE webhook_id = ?1 AND state = 'pending' AND next_attempt_at <= ?2
    ORDER BY next_attempt_at, id LIMIT ?3`);

  const leasesEnded = stmt(`
    SELECT id, webhook_id, next_attempt_at FROM webhook_deliveries INDEXED BY webhook_deliveries_lease_end
    WHERE state = 'delivering' AND locked_until < ?1 ORDER BY locked_until LIMIT ?2`);

  // A lease that ran out on a row of an endpoint disabled since: back to waiting.
  const releaseEnded = stmt(`
    UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
    WHERE id = ?1 AND state = 'delivering' AND locked_until < ?2`);

  // Claimed after its endpoint was enabled again, a delivery has a retry window from then at least.
  const leaseOne = stmt(`
    UPDATE webhook_deliveries SET state = 'delivering', locked_by = ?2, locked_until = ?3, lease_token = ?4, retry_until = max(retry_until, ?5)
    WHERE id = ?1 AND ((state = 'pending' AND next_attempt_at <= ?6) OR (state = 'delivering' AND locked_until < ?6))
    RETURNING id, webhook_id, attempts, retry_until, next_attempt_at`);

  // Read after the claim commits: the write lock is held for the leases alone.
  const selectEvents = stmt(`SELECT d.id, ${EVENT_COLUMNS} FROM webhook_deliveries d WHERE d.id IN (SELECT value FROM json_each(?))`);

  const renewLease = stmt(`
    UPDATE webhook_deliveries SET locked_until = ? WHERE id = ? AND state = 'delivering' AND lease_token = ?`);

  const carriesToken = stmt(`SELECT 1 AS yes FROM webhook_deliveries WHERE id = ? AND lease_token = ?`);

  // The token stays, so recording the same result again is recognised (recordedUnder).
  const applyResult = stmt(`
    UPDATE webhook_deliveries SET
      state = CASE WHEN ?1 = 1 THEN 'delivered' WHEN ?5 IS NULL THEN 'failed' ELSE 'pending' END,
      attempts = attempts + 1,
      next_attempt_at = CASE WHEN ?1 = 0 AND ?5 IS NOT NULL THEN ?5 ELSE next_attempt_at END,
      locked_by = NULL, locked_until = NULL,
      last_attempt_at = ?4, last_status = ?2, last_error = ?3,
      finished_at = CASE WHEN ?1 = 1 OR ?5 IS NULL THEN ?4 END
    WHERE id = ?6 AND state = 'delivering' AND lease_token = ?7
    RETURNING webhook_id`);

  const recordedUnder = stmt(`SELECT 1 AS yes FROM webhook_deliveries WHERE id = ? AND lease_token = ? AND state <> 'delivering'`);

  const clearFailing = stmt(`UPDATE webhooks SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL`);

  const markFailing = stmt(`UPDATE webhooks SET failing_since = coalesce(failing_since, ?2) WHERE id = ?1`);

  const disableFailing = stmt(`
    UPDATE webhooks SET enabled = 0, disabled_reason = ?3, disabled_at = ?4, updated_at = ?4
    WHERE id = ?1 AND enabled = 1 AND failing_since <= ?2
    RETURNING id, tenant, url, failing_since`);

  const releaseOne = stmt(`
    UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
    WHERE id = ? AND state = 'delivering' AND lease_token = ?`);

  const releaseOwner = stmt(`
    UPDATE webhook_deliveries SET state = 'pending', locked_by = NULL, locked_until = NULL, lease_token = NULL
    WHERE state = 'delivering' AND locked_by = ?`);

  // Newest first through webhook_deliveries_webhook, from the cursor; the state is tested on the way.
  const selectDeliveries = stmt(`
    SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
    WHERE d.webhook_id = ?1 AND (?2 IS NULL OR ${SHOWN_STATE} = ?2)
      AND (?3 IS NULL OR d.created_at < ?3 OR (d.created_at = ?3 AND d.id < ?4))
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT ?5`);

  const selectDelivery = stmt(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.webhook_id = ? AND d.id = ?`);

  // Due now, tried for the window from now; a row in flight is its claim's.
  const replayOne = stmt(`
    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?3, retry_until = ?3 + ${WINDOW}, finished_at = NULL,
      lease_token = NULL
    WHERE webhook_id = ?1 AND id = ?2 AND state <> 'delivering'`);

  const replayRange = stmt(`
    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?5, retry_until = ?5 + ${WINDOW}, finished_at = NULL,
      lease_token = NULL
    WHERE id IN (
      SELECT id FROM webhook_deliveries
      WHERE webhook_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state <> 'delivering' AND (?4 IS NULL OR state = ?4)
      ORDER BY created_at, id LIMIT ?6
    )`);

  const purge = stmt(`
    DELETE FROM webhook_deliveries WHERE id IN (
      SELECT id FROM webhook_deliveries WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?)`);

  // Counted per endpoint through its range of webhook_deliveries_endpoint_due.
  const stats = stmt(`
    SELECT (SELECT count(*) FROM webhooks w JOIN webhook_deliveries d INDEXED BY webhook_deliveries_endpoint_due ON d.webhook_id = w.id AND d.state = 'pending'
            WHERE w.enabled = 1) AS pending,
           (SELECT count(*) FROM webhooks w JOIN webhook_deliveries d INDEXED BY webhook_deliveries_endpoint_due ON d.webhook_id = w.id AND d.state = 'pending'
            WHERE w.enabled = 0) AS held,
           (SELECT count(*) FROM webhooks WHERE enabled = 0) AS disabled`);

  return {
    insertAccepted(messageId: string): void {
      insertAccepted.run(messageId);
    },

    insertAttemptEvent(recipientId: number, type: WebhookEventType, now: number, o: DeliveryOutcome): void {
      insertAttemptEvent.run(recipientId, type, now, o.code, o.enhanced, o.response, o.remoteHost, o.bounceClass);
    },

    insertEvent(values: ReturnType<typeof webhookEventValues>[number], now: number): void {
      insertEvent.run(...values, now);
    },

    insertWebhook(e: NewWebhookEndpoint): void {
      insertWebhook.run(e.id, e.tenant ?? '', e.url, JSON.stringify(e.eventTypes), e.description, e.maxEventsPerRequest ?? 1, e.secret, 1, null, null, null, e.createdAt, e.createdAt);
    },

    selectWebhook(id: string): WebhookDbRow | undefined {
      return selectWebhook.get(id) as WebhookDbRow | undefined;
    },

    listWebhooks(tenant: string | null, after: string, limit: number): WebhookDbRow[] {
      return listWebhooks.all(tenant, after, limit) as unknown as WebhookDbRow[];
    },

    updateWebhook(row: WebhookDbRow): void {
      updateWebhook.run(row.url, row.event_types, row.description, row.max_events_per_request, row.secret, row.enabled ? 1 : 0, row.disabled_reason, row.disabled_at, row.failing_since, row.updated_at, row.id);
    },

    deleteWebhook(id: string): boolean {
      return Number(deleteWebhook.run(id).changes) > 0;
    },

    /** Replaces the endpoint's subscriptions with one per event type (none while disabled). */
    subscribe(webhookId: string, tenant: string, types: readonly string[]): void {
      deleteSubscriptions.run(webhookId);
      for (const type of types) insertSubscription.run(tenant, type, webhookId);
    },

    markEnabled(webhookId: string, now: number): void {
      markEnabled.run(now, webhookId);
    },

    /** One chunk of making an enabled endpoint's waiting rows due now; the rows it changed. */
    dueNow(webhookId: string, now: number, limit: number): number {
      return Number(dueNow.run(webhookId, now, limit).changes);
    },

    /** One chunk of an endpoint's deliveries deleted; how many. */
    deleteDeliveries(webhookId: string, limit: number): number {
      return Number(deleteDeliveries.run(webhookId, limit).changes);
    },

    /**
     * What a claim would take, read outside any write transaction (a WAL read): the leases that
     * ran out, then from the endpoints whose oldest due row is oldest, at most `perWebhook` rows
     * each, until `limit`; none of the endpoints in `skip` or of a disabled one. Each endpoint is
     * looked at once for its oldest due row, and rows are read only from those picked, so the
     * cost follows `limit`, not the endpoints' backlogs. `giveBack`: leases that ran out on rows
     * of disabled endpoints.
     */
    pick(o: { now: number; limit: number; perWebhook: number; skip: readonly string[] }): { picked: PickedWebhookRow[]; giveBack: string[] } {
      const skip = new Set(o.skip);
      const endpoints = new Map((claimableEndpoints.all() as unknown as ClaimableEndpoint[]).filter((e) => !skip.has(e.id)).map((e) => [e.id, e]));
      const picked: PickedWebhookRow[] = [];
      const giveBack: string[] = [];
      const taken = new Map<string, number>();
      const take = (row: Candidate, e: ClaimableEndpoint) => {
        taken.set(e.id, (taken.get(e.id) ?? 0) + 1);
        picked.push({ ...row, endpoint: e });
      };
      for (const row of leasesEnded.all(o.now, o.limit) as unknown as Candidate[]) {
        const e = endpoints.get(row.webhook_id);
        if (e && (taken.get(e.id) ?? 0) < o.perWebhook) take(row, e);
        else if (!e && !skip.has(row.webhook_id)) giveBack.push(row.id);
      }
      const heads = [...endpoints.values()].flatMap((e) => {
        const head = endpointDue.get(e.id, o.now, 1) as Candidate | undefined;
        return head ? [{ e, head }] : [];
      });
      heads.sort((a, b) => compareWebhookDue(a.head, b.head));
      for (const { e } of heads) {
        const room = Math.min(o.limit - picked.length, o.perWebhook - (taken.get(e.id) ?? 0));
        if (room <= 0) continue;
        for (const row of endpointDue.all(e.id, o.now, room) as unknown as Candidate[]) take(row, e);
      }
      return { picked: picked.sort(compareWebhookDue).slice(0, o.limit), giveBack };
    },

    /**
     * Leases the picked rows still as they were read (pending and due, or their lease run out)
     * under `token`, with their endpoint's URL, secret and batch size; gives back the ones `pick` found on
     * disabled endpoints.
     */
    lease(pick: { picked: readonly PickedWebhookRow[]; giveBack: readonly string[] }, o: { now: number; owner: string; lockedUntil: number; token: WebhookLeaseToken }): LeasedWebhookRow[] {
      for (const id of pick.giveBack) releaseEnded.run(id, o.now);
      return pick.picked.flatMap(({ id, endpoint: e }) => {
        const row = leaseOne.get(id, o.owner, o.lockedUntil, o.token, e.enabled_at + WEBHOOK_RETRY_WINDOW_MS, o.now) as unknown as Omit<LeasedWebhookRow, 'url' | 'secret' | 'max_events_per_request'> | undefined;
        return row ? [{ ...row, url: e.url, secret: e.secret, max_events_per_request: e.max_events_per_request }] : [];
      });
    },

    /** The events of leased rows (a read, after the claim's commit); a row gone since (erased) is left out. */
    withEvents(rows: readonly LeasedWebhookRow[]): ClaimedWebhookDbRow[] {
      if (rows.length === 0) return [];
      const events = new Map((selectEvents.all(JSON.stringify(rows.map((r) => r.id))) as unknown as Array<WebhookEventDbRow & { id: string }>).map((e) => [e.id, e]));
      return rows.flatMap((row) => {
        const event = events.get(row.id);
        return event ? [{ ...event, ...row }] : [];
      });
    },

    /** False when the row no longer carries `token`. */
    renewLease(id: string, token: WebhookLeaseToken, lockedUntil: number): boolean {
      renewLease.run(lockedUntil, id, token);
      return carriesToken.get(id, token) !== undefined;
    },

    /** The endpoint of the row the result applied to; undefined when it no longer carries the token. */
    applyResult(r: { id: string; token: WebhookLeaseToken; ok: boolean; status: number | null; error: string | null; at: number; nextAttemptAt: number | null }): string | undefined {
      const row = applyResult.get(r.ok ? 1 : 0, r.status, r.error, r.at, r.nextAttemptAt, r.id, r.token) as { webhook_id: string } | undefined;
      return row?.webhook_id;
    },

    recordedUnder(id: string, token: WebhookLeaseToken): boolean {
      return recordedUnder.get(id, token) !== undefined;
    },

    clearFailing(webhookId: string): void {
      clearFailing.run(webhookId);
    },

    markFailing(webhookId: string, at: number): void {
      markFailing.run(webhookId, at);
    },

    disableFailing(webhookId: string, cutoff: number, reason: string, now: number): { id: string; tenant: string; url: string; failing_since: number } | undefined {
      return disableFailing.get(webhookId, cutoff, reason, now) as { id: string; tenant: string; url: string; failing_since: number } | undefined;
    },

    releaseOne(id: string, token: WebhookLeaseToken): void {
      releaseOne.run(id, token);
    },

    releaseOwner(owner: string): number {
      return Number(releaseOwner.run(owner).changes);
    },

    selectDeliveries(webhookId: string, state: string | null, after: { createdAt: number; id: string } | null, limit: number): WebhookDeliveryDbRow[] {
      return selectDeliveries.all(webhookId, state, after?.createdAt ?? null, after?.id ?? null, limit) as unknown as WebhookDeliveryDbRow[];
    },

    selectDelivery(webhookId: string, id: string): WebhookDeliveryDbRow | undefined {
      return selectDelivery.get(webhookId, id) as WebhookDeliveryDbRow | undefined;
    },

    replayOne(webhookId: string, id: string, now: number): void {
      replayOne.run(webhookId, id, now);
    },

    replayRange(webhookId: string, since: number, until: number, state: string | null, now: number, limit: number): number {
      return Number(replayRange.run(webhookId, since, until, state, now, limit).changes);
    },

    purge(before: number, limit: number): number {
      return Number(purge.run(before, limit).changes);
    },

    stats(): { pending: number; held: number; disabled: number } {
      return stats.get() as { pending: number; held: number; disabled: number };
    },
  };
}

export type SqliteWebhookQueries = ReturnType<typeof prepareWebhookQueries>;

/**
 * Fans `events` out to their subscribers: call inside a write op of the SQLite store, so they
 * commit or roll back with the change that caused them. Throws DataRefusedError for an event no
 * backend could store (checked before anything is written).
 */
export function insertWebhookEvents(w: SqliteWebhookQueries, events: readonly WebhookEvent[], now: number): void {
  for (const values of webhookEventValues(events)) w.insertEvent(values, now);
}
