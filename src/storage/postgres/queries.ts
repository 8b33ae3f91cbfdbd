import type pg from 'pg';
import type { AttemptResult, Lease, LeaseToken, NewMessage, PoolStateEntry, UsageChange, UsageWindow } from '../store.ts';
import { domainOf } from '../../mail/address.ts';
import { CLAIMED_ROW_COLUMNS, eventTls, type ClaimedRow, type EventDbRow, type MessageDbRow, type RecipientDbRow } from '../store-rows.ts';
import { anyPaused, type PausedScopes } from '../queue-control.ts';
import { movedDueAt, PARKED_DUE_AT, pausedLists, waitsPastItsTime } from '../queue-control-rows.ts';
import { messageExtras } from '../message-rows.ts';
import { settleSuppressedRecipients } from './suppression-queries.ts';
import { webhookEventOfResult } from '../webhook-rows.ts';
import { NEW_WEBHOOK_DELIVERY_ID, WEBHOOK_INSERT_COLUMNS, WEBHOOK_WINDOW } from './webhook-queries.ts';

/**
 * Every SQL statement of the PostgreSQL backend, one function per query. Statements with a
 * fixed text are named, so each pooled connection parses and plans them once. Table names are
 * unqualified and resolve through the connection's search_path (the store's schema). Over 300
 * lines on purpose: the backend's whole SQL in one place, read against its migrations.
 */

export type Db = pg.Pool | pg.PoolClient;

/** The LISTEN/NOTIFY channel; the payload is the schema, so stores on other schemas ignore it. */
export const WORK_CHANNEL = 'rookery_work';

const MESSAGE_COLUMNS = 14;
/** Messages per statement, well under PostgreSQL's 65535 bind parameters. */
const MESSAGES_PER_INSERT = 1000;

/**
 * Inserts messages and their queued recipient rows with one statement per chunk (one round
 * trip for the usual single message): a multi-row VALUES for the messages in a data-modifying
 * CTE, and the recipients from arrays. Foreign keys are checked at the end of the statement,
 * when the messages exist. The same statement writes the message.accepted events of the
 * messages an endpoint of their tenant subscribes to (none for DSNs), so nobody listening costs
 * nothing but the join.
 */
export async function insertMessages(db: Db, messages: readonly NewMessage[]): Promise<void> {
  for (let start = 0; start < messages.length; start += MESSAGES_PER_INSERT) {
    const chunk = messages.slice(start, start + MESSAGES_PER_INSERT);
    const values: unknown[] = [];
    const rows = chunk.map((m, i) => {
      // Buffers are sent as binary parameters: the body crosses the wire unescaped.
      const { sendAt, tags, metadata } = messageExtras(m);
      values.push(m.id, m.sender, m.messageIdHeader, m.body.length, m.body, m.submitter, m.source, m.clientAddress, m.createdAt, m.pool, m.tenant ?? null, sendAt, tags, metadata);
      const base = i * MESSAGE_COLUMNS;
      return `(${Array.from({ length: MESSAGE_COLUMNS }, (_, k) => `$${base + k + 1}`).join(', ')})`;
    });
    const messageIds: string[] = [];
    const recipients: string[] = [];
    const domains: string[] = [];
    const dueAts: number[] = [];
    const createdAts: number[] = [];
    for (const m of chunk) {
      for (const rcpt of m.recipients) {
        messageIds.push(m.id);
        recipients.push(rcpt);
        domains.push(domainOf(rcpt));
        dueAts.push(m.dueAt);
        createdAts.push(m.createdAt);
      }
    }
    const p = values.length;
    values.push(messageIds, recipients, domains, dueAts, createdAts);
    await db.query({
      // Named for the common small sizes (one message per SMTP transaction): parsed once per connection.
      name: chunk.length <= 4 ? `rookery_insert_messages_v6_${chunk.length}` : undefined,
      // ORDER BY ordinality: recipient ids follow the order of the recipients as given.
      text: `
        WITH new_messages AS (
          INSERT INTO messages (id, sender, message_id_header, size, body, submitter, source, client_address, created_at, pool, tenant, send_at, tags, metadata)
          VALUES ${rows.join(', ')}
          RETURNING id, sender, tenant, source, created_at, tags, metadata
        ), accepted AS (
          INSERT INTO webhook_deliveries (${WEBHOOK_INSERT_COLUMNS})
          SELECT ${NEW_WEBHOOK_DELIVERY_ID}, s.webhook_id, 'message.accepted', s.tenant, nm.id, NULL, nm.created_at, NULL, NULL, NULL, NULL,
                 NULL, NULL, NULL, nm.tags, nm.metadata,
                 json_build_object('sender', nm.sender, 'recipients', (
                   SELECT json_agg(r.recipient ORDER BY r.ordinality)
                   FROM unnest($${p + 1}::text[], $${p + 2}::text[]) WITH ORDINALITY AS r(message_id, recipient, ordinality)
                   WHERE r.message_id = nm.id))::text,
                 'pending', 0, nm.created_at, nm.created_at + ${WEBHOOK_WINDOW}, nm.created_at
          FROM new_messages nm JOIN webhook_subscriptions s ON s.tenant = coalesce(nm.tenant, '') AND s.event_type = 'message.accepted'
          WHERE nm.source <> 'dsn'
        )
        INSERT INTO recipients (message_id, recipient, domain, state, attempts, next_attempt_at, created_at, updated_at)
        SELECT message_id, recipient, domain, 'queued', 0, due_at, created_at, created_at
        FROM unnest($${p + 1}::text[], $${p + 2}::text[], $${p + 3}::text[], $${p + 4}::bigint[], $${p + 5}::bigint[])
          WITH ORDINALITY AS t(message_id, recipient, domain, due_at, created_at, ordinality)
        ORDER BY ordinality`,
      values,
    });
    await settleSuppressedRecipients(db, chunk);
  }
}

/**
 * Paused domains, pools and tenants as arrays, tested on each row a claim's scan passes: the scan
 * stays the index walk in due order that stops at the limit (a join with the pauses table could
 * be planned as a hash anti-join, which reads and sorts every due row). Paused mail is parked out
 * of that order (parkPaused), so the filter only meets the rows not parked yet (accepted or
 * deferred since the last park, on any node) and keeps them from being claimed meanwhile. The pool and the tenant are scalar subqueries, so each is read per row through the messages'
 * primary key (as an anti-join, the planner may read every message of the table instead), and
 * only when one of its kind is paused. The tenant is coalesced: mail of no tenant (NULL) would
 * fail `<> ALL` and be held by every tenant's pause. Returns the filter, the statement name's suffix and the values it binds.
 */
function unpaused(paused: PausedScopes, first: number): { filter: string; suffix: string; values: string[][] } {
  const { domains, pools, tenants } = pausedLists(paused);
  const parts: string[] = [];
  const values: string[][] = [];
  let suffix = '';
  const add = (list: string[], letter: string, test: (param: string) => string) => {
    if (list.length === 0) return;
    values.push(list);
    parts.push(`AND ${test(`$${first + values.length - 1}::text[]`)}`);
    suffix += letter;
  };
  add(domains, 'd', (param) => `NOT (domain = ANY(${param}))`);
  add(pools, 'p', (param) => `(SELECT pm.pool FROM messages pm WHERE pm.id = recipients.message_id) <> ALL(${param})`);
  add(tenants, 't', (param) => `coalesce((SELECT tm.tenant FROM messages tm WHERE tm.id = recipients.message_id), '') <> ALL(${param})`);
  return { filter: parts.join(' '), suffix, values };
}

/**
 * Claims due rows. Each candidate set is locked with FOR UPDATE SKIP LOCKED, so concurrent
 * claimers (other daemons) skip each other's rows instead of waiting or double-claiming; a row
 * changed by a committed claim after this statement's snapshot is re-checked and dropped.
 * Two limited scans (expired leases, due queued rows in order) avoid sorting a whole backlog.
 * Rows of `paused` scopes are left alone (see unpaused).
 */
export async function claimDue(db: Db, now: number, limit: number, owner: string, lockedUntil: number, token: LeaseToken, paused?: PausedScopes): Promise<ClaimedRow[]> {
  const { filter, suffix, values } = anyPaused(paused) ? unpaused(paused, 6) : { filter: '', suffix: '', values: [] };
  const { rows } = await db.query<ClaimedRow>({
    name: suffix ? `rookery_claim_due_unpaused_v3_${suffix}` : 'rookery_claim_due_v4',
    text: `
      WITH expired AS (
        SELECT id, next_attempt_at FROM recipients
        WHERE state = 'delivering' AND locked_until < $1 ${filter}
        ORDER BY next_attempt_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), queued AS (
        SELECT id, next_attempt_at FROM recipients
        WHERE state = 'queued' AND next_attempt_at <= $1 ${filter}
        ORDER BY next_attempt_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), picked AS (
        SELECT id FROM (SELECT * FROM expired UNION ALL SELECT * FROM queued) AS candidates
        ORDER BY next_attempt_at, id
        LIMIT $2
      )
      UPDATE recipients r
      SET state = 'delivering', locked_by = $3, locked_until = $4, lease_token = $5, updated_at = $1
      FROM picked p, messages m
      WHERE r.id = p.id AND m.id = r.message_id
      RETURNING ${CLAIMED_ROW_COLUMNS}`,
    values: [now, limit, owner, lockedUntil, token, ...values],
  });
  return rows;
}

/**
 * Extends the leases still held under their tokens; returns the ids of rows that no longer carry
 * their token. That check reads the statement's snapshot: a take-over committed while this
 * statement runs shows up at the next renewal.
 */
export async function renewLeases(db: Db, leases: readonly Lease[], lockedUntil: number): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>({
    name: 'rookery_renew_leases',
    text: `
      WITH leases AS (
        SELECT * FROM unnest($1::bigint[], $2::text[]) AS l(id, token)
      ), renewed AS (
        UPDATE recipients r SET locked_until = $3
        FROM leases l
        WHERE r.id = l.id AND r.state = 'delivering' AND r.lease_token = l.token
        RETURNING r.id
      )
      SELECT l.id FROM leases l
      WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.id = l.id AND r.lease_token = l.token)`,
    values: [leases.map((l) => l.recipientId), leases.map((l) => l.token), lockedUntil],
  });
  return rows.map((r) => r.id);
}

/**
 * Locks the rows that still carry the leases' tokens, until the transaction ends (a claim by
 * another node waits), and says of each whether it is still being delivered (a result under the
 * token would apply) or its result is recorded already.
 */
export async function lockLeases(db: Db, leases: readonly Lease[]): Promise<{ id: number; delivering: boolean }[]> {
  const { rows } = await db.query<{ id: number; delivering: boolean }>({
    name: 'rookery_lock_leases',
    text: `
      SELECT r.id, r.state = 'delivering' AS delivering
      FROM recipients r JOIN unnest($1::bigint[], $2::text[]) AS l(id, token) ON r.id = l.id AND r.lease_token = l.token
      FOR UPDATE OF r`,
    values: [leases.map((l) => l.recipientId), leases.map((l) => l.token)],
  });
  return rows;
}

/**
 * Applies attempt results to rows still delivering under the result's token and writes an event
 * for each row updated (a stale result leaves no trace). The token stays on the row, so a result
 * recorded by an earlier run of the same call (an uncertain commit) is found again: the last
 * SELECT reads the statement's snapshot, from before this update. The webhook events of the
 * rows updated (webhookEventOfResult) are fanned out to their subscribers in the same statement.
 * Returns each recorded id, and whether this call applied it.
 */
export async function applyAttempts(db: Db, now: number, results: readonly AttemptResult[]): Promise<{ id: number; applied: boolean }[]> {
  const { rows } = await db.query<{ id: number; applied: boolean }>({
    name: 'rookery_apply_attempts_v6',
    text: `
      WITH input AS (
        SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::integer[], $6::bigint[], $7::text[], $8::integer[],
                             $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
          AS t(id, token, state, increment, next_attempt_at, disposition, code, enhanced, response, stage, bounce_class,
               remote_host, egress_ip, event_type, tls)
      ), updated AS (
        UPDATE recipients r SET
          state = i.state, attempts = r.attempts + i.increment, next_attempt_at = i.next_attempt_at,
          locked_by = NULL, locked_until = NULL,
          last_disposition = i.disposition, last_code = i.code, last_enhanced = i.enhanced,
          last_response = i.response, last_stage = i.stage, last_bounce_class = i.bounce_class,
          -- A result with no egress IP (a wait) keeps the last one: the row stays in that IP's
          -- queue scope and a retry still prefers it.
          last_remote_host = i.remote_host, last_egress_ip = COALESCE(i.egress_ip, r.last_egress_ip), updated_at = $1,
          parked_due_at = NULL
        FROM input i
        WHERE r.id = i.id AND r.state = 'delivering' AND r.lease_token = i.token
        RETURNING r.id, r.message_id, r.attempts, i.disposition, i.code, i.enhanced, i.response, i.stage,
                  i.bounce_class, i.remote_host, i.egress_ip, i.event_type, r.recipient, r.last_egress_ip, i.tls
      ), hooks AS (
        INSERT INTO webhook_deliveries (${WEBHOOK_INSERT_COLUMNS})
        SELECT ${NEW_WEBHOOK_DELIVERY_ID}, s.webhook_id, u.event_type, s.tenant, u.message_id, u.recipient, $1, u.last_egress_ip, u.code,
               u.enhanced, u.response, u.remote_host, u.bounce_class, u.attempts, m.tags, m.metadata, NULL, 'pending', 0, $1,
               $1 + ${WEBHOOK_WINDOW}, $1
        FROM updated u JOIN messages m ON m.id = u.message_id AND m.source <> 'dsn'
        JOIN webhook_subscriptions s ON s.tenant = coalesce(m.tenant, '') AND s.event_type = u.event_type
      ), events AS (
        INSERT INTO events (recipient_id, message_id, attempt, at, disposition, code, enhanced, response, stage,
                            bounce_class, remote_host, egress_ip, tls)
        SELECT id, message_id, attempts, $1, disposition, code, enhanced, response, stage, bounce_class,
               remote_host, egress_ip, tls
        FROM updated
        ORDER BY id
      )
      SELECT id, true AS applied FROM updated
      UNION ALL
      SELECT r.id, false FROM recipients r JOIN input i ON r.id = i.id AND r.lease_token = i.token
      WHERE r.state <> 'delivering'`,
    values: [
      now,
      results.map((r) => r.recipientId),
      results.map((r) => r.token),
      results.map((r) => r.newState),
      results.map((r) => (r.countsAsAttempt ? 1 : 0)),
      results.map((r) => (r.newState === 'queued' ? r.nextAttemptAt! : null)),
      results.map((r) => r.outcome.disposition),
      results.map((r) => r.outcome.code),
      results.map((r) => r.outcome.enhanced),
      results.map((r) => r.outcome.response),
      results.map((r) => r.outcome.stage),
      results.map((r) => r.outcome.bounceClass),
      results.map((r) => r.outcome.remoteHost),
      results.map((r) => r.outcome.egressIp),
      results.map((r) => webhookEventOfResult(r)),
      results.map((r) => eventTls(r.outcome)),
    ],
  });
  return rows;
}

/** A row a cancellation claimed out of the park comes back unparked, at its own time (its claim's dueAt). */
export async function releaseRecipients(db: Db, leases: readonly Lease[], dueAt: number, now: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_release_recipients_v3',
    text: `
      UPDATE recipients r SET state = 'queued', next_attempt_at = $3, locked_by = NULL, locked_until = NULL,
        lease_token = NULL, parked_due_at = NULL, updated_at = $4
      FROM unnest($1::bigint[], $2::text[]) AS l(id, token)
      WHERE r.id = l.id AND r.state = 'delivering' AND r.lease_token = l.token`,
    values: [leases.map((l) => l.recipientId), leases.map((l) => l.token), dueAt, now],
  });
  return result.rowCount ?? 0;
}

export async function releaseOwner(db: Db, owner: string, dueAt: number, now: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_release_owner_v2',
    text: `
      UPDATE recipients SET state = 'queued', next_attempt_at = $2, locked_by = NULL, locked_until = NULL,
        lease_token = NULL, parked_due_at = NULL, updated_at = $3
      WHERE state = 'delivering' AND locked_by = $1`,
    values: [owner, dueAt, now],
  });
  return result.rowCount ?? 0;
}

/**
 * A bulk deferral of up to `limit` queued rows of `domains` (recipients_domain). Rows a claim holds
 * locked are skipped (they are being delivered); a row already at its target time is not picked
 * again, so repeating the statement until it moves fewer than `limit` ends.
 */
export async function holdDomains(db: Db, domains: readonly string[], until: number, maxAgeMs: number, now: number, limit: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_hold_domains',
    text: `
      WITH picked AS (
        SELECT id FROM recipients
        WHERE domain = ANY($1::text[]) AND state = 'queued' AND next_attempt_at < $2 AND next_attempt_at < created_at + $3
        LIMIT $5
        FOR UPDATE SKIP LOCKED
      )
      UPDATE recipients r SET next_attempt_at = least($2, r.created_at + $3), updated_at = $4
      FROM picked p WHERE r.id = p.id`,
    values: [domains, until, maxAgeMs, now, limit],
  });
  return result.rowCount ?? 0;
}

/** Held mail due again, but a first attempt scheduled for later only at its send time (movedDueAt). */
export async function resumeDomains(db: Db, domains: readonly string[], until: number, now: number, limit: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_resume_domains',
    text: `
      WITH picked AS (
        SELECT r.id, ${movedDueAt('$3::bigint')} AS due FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE r.domain = ANY($1::text[]) AND r.state = 'queued' AND r.next_attempt_at <= $2 AND ${waitsPastItsTime('$3::bigint')}
        LIMIT $4
        FOR UPDATE OF r SKIP LOCKED
      )
      UPDATE recipients r SET next_attempt_at = p.due, updated_at = $3
      FROM picked p WHERE r.id = p.id`,
    values: [domains, until, now, limit],
  });
  return result.rowCount ?? 0;
}

export async function notifyWork(db: Db, schema: string): Promise<void> {
  await db.query({ name: 'rookery_notify_work', text: 'SELECT pg_notify($1, $2)', values: [WORK_CHANNEL, schema] });
}

/**
 * The earliest queued due time, or 1 ms after the earliest lease end (claimable once locked_until
 * < now); rows of `paused` scopes do not count, nor parked rows (never due by time). With pauses,
 * each side is the first row its index walk finds that a claim would take.
 */
export async function nextDueAt(db: Db, paused?: PausedScopes): Promise<number | null> {
  if (anyPaused(paused)) {
    const { filter, suffix, values } = unpaused(paused, 1);
    const { rows } = await db.query<{ at: number | null }>({
      name: `rookery_next_due_at_unpaused_v2_${suffix}`,
      text: `
        SELECT least(
          (SELECT next_attempt_at FROM recipients WHERE state = 'queued' AND next_attempt_at < ${PARKED_DUE_AT} ${filter} ORDER BY next_attempt_at LIMIT 1),
          (SELECT locked_until + 1 FROM recipients WHERE state = 'delivering' ${filter} ORDER BY locked_until LIMIT 1)
        ) AS at`,
      values,
    });
    return rows[0]?.at ?? null;
  }
  const { rows } = await db.query<{ at: number | null }>({
    name: 'rookery_next_due_at_v3',
    text: `
      SELECT least(
        (SELECT min(next_attempt_at) FROM recipients WHERE state = 'queued' AND next_attempt_at < ${PARKED_DUE_AT}),
        (SELECT min(locked_until) + 1 FROM recipients WHERE state = 'delivering')
      ) AS at`,
  });
  return rows[0]?.at ?? null;
}

export async function selectMessage(db: Db, id: string): Promise<MessageDbRow | undefined> {
  const { rows } = await db.query<MessageDbRow>({
    name: 'rookery_select_message_v2',
    text: `SELECT id, sender, message_id_header, body, submitter, source, created_at, pool, tenant FROM messages WHERE id = $1`,
    values: [id],
  });
  return rows[0];
}

export async function countByState(db: Db): Promise<{ state: string; n: number }[]> {
  const { rows } = await db.query<{ state: string; n: number }>({
    name: 'rookery_count_by_state',
    text: `SELECT state, count(*) AS n FROM recipients GROUP BY state`,
  });
  return rows;
}

export async function selectRecipients(db: Db, messageId: string): Promise<RecipientDbRow[]> {
  const { rows } = await db.query<RecipientDbRow>({
    name: 'rookery_select_recipients_v2',
    // A parked row shows its own due time.
    text: `
      SELECT id, message_id, recipient, domain, state, attempts, coalesce(parked_due_at, next_attempt_at) AS next_attempt_at, last_disposition, last_code,
             last_enhanced, last_response, last_stage, last_bounce_class, last_remote_host, last_egress_ip, updated_at
      FROM recipients WHERE message_id = $1 ORDER BY id`,
    values: [messageId],
  });
  return rows;
}

export async function selectEvents(db: Db, messageId: string): Promise<EventDbRow[]> {
  const { rows } = await db.query<EventDbRow>({
    name: 'rookery_select_events_v2',
    text: `
      SELECT recipient_id, message_id, attempt, at, disposition, code, enhanced, response, stage, bounce_class,
             remote_host, egress_ip, tls
      FROM events WHERE message_id = $1 ORDER BY at, id`,
    values: [messageId],
  });
  return rows;
}

/**
 * Deletes up to `limit` finished messages (cascading to recipients and events). A message is
 * finished when no recipient is waiting or in flight, and old enough when its last recipient
 * changed before the cut-off (a message cannot change before it was created).
 */
export async function purgeFinished(db: Db, before: number, limit: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_purge_finished',
    text: `
      DELETE FROM messages WHERE id IN (
        SELECT m.id FROM messages m
        WHERE m.created_at < $1
          AND NOT EXISTS (
            SELECT 1 FROM recipients r
            WHERE r.message_id = m.id AND (r.state IN ('queued', 'delivering') OR r.updated_at >= $1)
          )
        LIMIT $2
      )`,
    values: [before, limit],
  });
  return result.rowCount ?? 0;
}

/**
 * Empties the body of up to `limit` finished messages older than the cut-off (as purgeFinished
 * decides it) that still have one. Rows another statement holds are left for the next chunk.
 */
export async function dropFinishedBodies(db: Db, before: number, limit: number): Promise<number> {
  const result = await db.query({
    name: 'rookery_drop_finished_bodies',
    text: `
      UPDATE messages SET body = ''::bytea WHERE id IN (
        SELECT m.id FROM messages m
        WHERE octet_length(m.body) > 0 AND m.created_at < $1
          AND NOT EXISTS (
            SELECT 1 FROM recipients r
            WHERE r.message_id = m.id AND (r.state IN ('queued', 'delivering') OR r.updated_at >= $1)
          )
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      )`,
    values: [before, limit],
  });
  return result.rowCount ?? 0;
}

/**
 * Adds to a usage counter only when the total stays within the limit, in one statement: the
 * SELECT ... WHERE refuses a first insert above the limit, and DO UPDATE ... WHERE (evaluated on
 * the latest row version, under its row lock) refuses an addition that would pass it. A counter
 * expired at `now` starts again from the amount. Returns the new total, or undefined when refused.
 */
export async function reserveUsage(db: Db, c: UsageChange, limit: number): Promise<number | undefined> {
  const { rows } = await db.query<{ count: number }>({
    name: 'rookery_reserve_usage',
    text: `
      INSERT INTO usage_counters AS u (key, window_start, count, expires_at)
      SELECT $1::text, $2::bigint, $3::bigint, $4::bigint WHERE $3::bigint <= $5::bigint
      ON CONFLICT (key, window_start) DO UPDATE SET
        count = CASE WHEN u.expires_at > $6::bigint THEN u.count + excluded.count ELSE excluded.count END,
        expires_at = greatest(u.expires_at, excluded.expires_at)
      WHERE CASE WHEN u.expires_at > $6::bigint THEN u.count + excluded.count ELSE excluded.count END <= $5::bigint
      RETURNING count`,
    values: [c.key, c.windowStart, c.amount, c.expiresAt, limit, c.now],
  });
  return rows[0]?.count;
}

export async function addUsage(db: Db, c: UsageChange): Promise<number> {
  const { rows } = await db.query<{ count: number }>({
    name: 'rookery_add_usage',
    text: `
      INSERT INTO usage_counters AS u (key, window_start, count, expires_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (key, window_start) DO UPDATE SET
        count = CASE WHEN u.expires_at > $5::bigint THEN u.count + excluded.count ELSE excluded.count END,
        expires_at = greatest(u.expires_at, excluded.expires_at)
      RETURNING count`,
    values: [c.key, c.windowStart, c.amount, c.expiresAt, c.now],
  });
  return rows[0]!.count;
}

/** Totals of the windows, in order (0 for a missing or expired counter), in one round trip. */
export async function selectUsage(db: Db, windows: readonly UsageWindow[], now: number): Promise<number[]> {
  const { rows } = await db.query<{ i: number; count: number }>({
    name: 'rookery_select_usage',
    text: `
      SELECT w.i, u.count
      FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS w(key, window_start, i)
      JOIN usage_counters u ON u.key = w.key AND u.window_start = w.window_start AND u.expires_at > $3`,
    values: [windows.map((w) => w.key), windows.map((w) => w.windowStart), now],
  });
  const totals = windows.map(() => 0);
  for (const row of rows) totals[row.i - 1] = row.count;
  return totals;
}

export async function upsertPoolState(db: Db, e: PoolStateEntry): Promise<void> {
  await db.query({
    name: 'rookery_upsert_pool_state',
    text: `
      INSERT INTO pool_state (key, value, expires_at) VALUES ($1, $2, $3)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
    values: [e.key, e.value, e.expiresAt],
  });
}

export async function selectPoolState(db: Db, key: string, now: number): Promise<string | null> {
  const { rows } = await db.query<{ value: string }>({
    name: 'rookery_select_pool_state',
    text: `SELECT value FROM pool_state WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)`,
    values: [key, now],
  });
  return rows[0]?.value ?? null;
}

export async function deletePoolState(db: Db, key: string): Promise<void> {
  await db.query({ name: 'rookery_delete_pool_state', text: `DELETE FROM pool_state WHERE key = $1`, values: [key] });
}

/** Ordered by bytes (COLLATE "C"), as SQLite orders text, whatever the database's collation. */
export async function listPoolState(db: Db, prefix: string, now: number): Promise<PoolStateEntry[]> {
  const { rows } = await db.query<{ key: string; value: string; expires_at: number | null }>({
    name: 'rookery_list_pool_state',
    text: `
      SELECT key, value, expires_at FROM pool_state
      WHERE starts_with(key, $1) AND (expires_at IS NULL OR expires_at > $2)
      ORDER BY key COLLATE "C"`,
    values: [prefix, now],
  });
  return rows.map((r) => ({ key: r.key, value: r.value, expiresAt: r.expires_at }));
}

export async function purgeExpiredPoolData(db: Db, now: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: 'rookery_purge_expired_pool_data',
    text: `
      WITH usage AS (DELETE FROM usage_counters WHERE expires_at <= $1 RETURNING 1),
           state AS (DELETE FROM pool_state WHERE expires_at <= $1 RETURNING 1)
      SELECT (SELECT count(*) FROM usage) + (SELECT count(*) FROM state) AS n`,
    values: [now],
  });
  return rows[0]!.n;
}

export async function ping(db: Db): Promise<void> {
  await db.query('SELECT 1');
}

/** How many of `ids` are stored messages. */
export async function countMessages(db: Db, ids: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: 'rookery_count_messages',
    text: `SELECT count(*) AS n FROM messages WHERE id = ANY($1::text[])`,
    values: [ids],
  });
  return rows[0]!.n;
}

export async function touchWriteProbe(db: Db, now: number): Promise<void> {
  await db.query({
    name: 'rookery_touch_write_probe',
    text: `INSERT INTO write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
    values: [now],
  });
}
