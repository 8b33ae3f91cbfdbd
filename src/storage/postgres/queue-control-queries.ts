import type { LeaseToken } from '../store.ts';
import type { ParkedRelease, QueueScopeKind, QueueSelection } from '../queue-control.ts';
import { claimableQueued, heldByPause, movedDueAt, PARKED_DUE_AT, retryWaiting, scopePausedAt, selectionPredicate, type PauseDbRow } from '../queue-control-rows.ts';
import { CLAIMED_ROW_COLUMNS, type ClaimedRow } from '../store-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of queue control (QueueControl): pauses, and the bulk moves and
 * claims of a selection's queued rows. Each is one statement on the pool, like claims: a bulk
 * update holds its rows' locks for one statement only, and skips the rows a claim holds locked
 * (they are being delivered). A selection's statements are named per kind (one text each).
 */

const PAUSE_COLUMNS = 'kind, value, reason, paused_by, created_at, ends_at';

/** Creates or replaces the pause of a scope; returns the one replaced when it was in force at `now`. */
export async function upsertPause(db: Db, values: [string, string, string, string, number, number | null], now: number): Promise<PauseDbRow | undefined> {
  const { rows } = await db.query<PauseDbRow>({
    name: 'rookery_upsert_pause',
    // Every part of the statement reads one snapshot: `replaced` is the row as it was before the upsert.
    text: `
      WITH replaced AS (
        SELECT ${PAUSE_COLUMNS} FROM queue_pauses WHERE kind = $1 AND value = $2
      ), written AS (
        INSERT INTO queue_pauses (${PAUSE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (kind, value) DO UPDATE SET
          reason = excluded.reason, paused_by = excluded.paused_by, created_at = excluded.created_at, ends_at = excluded.ends_at
      )
      SELECT ${PAUSE_COLUMNS} FROM replaced WHERE ends_at IS NULL OR ends_at > $7`,
    values: [...values, now],
  });
  return rows[0];
}

/** Deletes the pause of a scope; returns it when it was in force at `now`. */
export async function deletePause(db: Db, kind: string, value: string, now: number): Promise<PauseDbRow | undefined> {
  const { rows } = await db.query<PauseDbRow>({
    name: 'rookery_delete_pause',
    text: `
      WITH ended AS (DELETE FROM queue_pauses WHERE kind = $1 AND value = $2 RETURNING ${PAUSE_COLUMNS})
      SELECT ${PAUSE_COLUMNS} FROM ended WHERE ends_at IS NULL OR ends_at > $3`,
    values: [kind, value, now],
  });
  return rows[0];
}

/** Ordered by bytes (COLLATE "C") after the time, as SQLite orders text. */
export async function listPauses(db: Db, now: number): Promise<PauseDbRow[]> {
  const { rows } = await db.query<PauseDbRow>({
    name: 'rookery_list_pauses',
    text: `
      SELECT ${PAUSE_COLUMNS} FROM queue_pauses
      WHERE ends_at IS NULL OR ends_at > $1
      ORDER BY created_at, kind COLLATE "C", value COLLATE "C"`,
    values: [now],
  });
  return rows;
}

export async function purgeEndedPauses(db: Db, now: number): Promise<number> {
  const { rowCount } = await db.query({ name: 'rookery_purge_ended_pauses', text: 'DELETE FROM queue_pauses WHERE ends_at <= $1', values: [now] });
  return rowCount ?? 0;
}

/**
 * Makes up to `limit` queued rows of the selection that wait past their time due at `now` (a first
 * attempt scheduled for later at its send time), so the next chunk does not pick them again. `due`
 * is the time moved: next_attempt_at of the rows in the due order (parked rows are past the
 * range), or parked_due_at of parked rows (found at PARKED_DUE_AT by the scope's index), which stay parked.
 */
export async function retryQueued(db: Db, kind: QueueSelection['kind'], value: string, now: number, limit: number, due: 'next_attempt_at' | 'parked_due_at'): Promise<number> {
  const { rowCount } = await db.query({
    name: `rookery_retry_${due === 'next_attempt_at' ? 'queued_v2' : 'parked_v2'}_${kind}`,
    text: `
      WITH picked AS (
        SELECT r.id, ${movedDueAt('$2::bigint')} AS due FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE ${selectionPredicate(kind, '$1')} AND r.state = 'queued' AND ${retryWaiting(due, '$2::bigint')}
        LIMIT $3
        FOR UPDATE OF r SKIP LOCKED
      )
      UPDATE recipients r SET ${due} = p.due, updated_at = $2
      FROM picked p WHERE r.id = p.id`,
    values: [value, now, limit],
  });
  return rowCount ?? 0;
}

/**
 * Parks up to `limit` queued rows of a scope due before `before` while its pause is in force at
 * `now` (a parked row is past `before`, so not picked again). Rows a claim holds locked are passed
 * over: a claim that took one is delivering it.
 */
export async function parkPaused(db: Db, kind: QueueScopeKind, value: string, before: number, now: number, limit: number): Promise<number> {
  const { rowCount } = await db.query({
    name: `rookery_park_paused_v2_${kind}`,
    text: `
      WITH picked AS (
        SELECT r.id FROM recipients r
        WHERE ${selectionPredicate(kind, '$1')} AND r.state = 'queued' AND r.next_attempt_at < $2
          AND ${scopePausedAt('$3', '$1', '$4::bigint')}
        -- In due order: a pool or a tenant, which has no index of its own, walks recipients_due
        -- up to $2 instead of the whole table with its history.
        ORDER BY r.next_attempt_at
        LIMIT $5
        FOR UPDATE OF r SKIP LOCKED
      )
      UPDATE recipients r SET parked_due_at = r.next_attempt_at, next_attempt_at = ${PARKED_DUE_AT}
      FROM picked p WHERE r.id = p.id`,
    values: [value, before, kind, now, limit],
  });
  return rowCount ?? 0;
}

/**
 * One chunk of a release: the parked rows after an id that no pause in force at `now` holds, up
 * to `limit`, given their own due time back (recipients_due: parked rows share one due time, so
 * they are walked in id order). Held rows on the way are passed over in the same walk, which is
 * not on the daemon's thread here. Rows another statement holds locked are passed over too, and
 * counted as skipped, so the caller knows the release is not done.
 */
export async function releaseParked(db: Db, now: number, limit: number, after: number): Promise<ParkedRelease> {
  const { rows } = await db.query<{ wanted: number; released: number; last: number | null }>({
    name: 'rookery_release_parked_v2',
    text: `
      WITH wanted AS (
        SELECT r.id, ${movedDueAt('coalesce(r.parked_due_at, $3::bigint)')} AS due
        FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE r.state = 'queued' AND r.next_attempt_at = ${PARKED_DUE_AT} AND r.id > $1 AND NOT ${heldByPause('$3::bigint')}
        ORDER BY r.id
        LIMIT $2
      ), picked AS (
        SELECT w.id, w.due FROM wanted w JOIN recipients r ON r.id = w.id
        WHERE r.state = 'queued' AND r.next_attempt_at = ${PARKED_DUE_AT}
        FOR UPDATE OF r SKIP LOCKED
      ), released AS (
        UPDATE recipients r SET next_attempt_at = p.due, parked_due_at = NULL
        FROM picked p WHERE r.id = p.id
        RETURNING r.id
      )
      SELECT (SELECT count(*)::int FROM wanted) AS wanted, (SELECT max(id) FROM wanted) AS last, count(*)::int AS released FROM released`,
    values: [after, limit, now],
  });
  const { wanted, released, last } = rows[0]!;
  return { released, next: wanted === limit && last !== null ? last : null, skipped: wanted - released };
}

/**
 * Claims up to `limit` queued rows of the selection, due or not, and rows whose lease ran out, in
 * the id range (after, through], lowest id first (see claimDue for the locking).
 */
export async function claimQueued(db: Db, kind: QueueSelection['kind'], value: string, range: { after: number; through: number }, now: number, limit: number, owner: string, lockedUntil: number, token: LeaseToken): Promise<ClaimedRow[]> {
  const { rows } = await db.query<ClaimedRow>({
    name: `rookery_claim_queued_v2_${kind}`,
    text: `
      WITH picked AS (
        SELECT r.id FROM recipients r
        WHERE ${selectionPredicate(kind, '$1')} AND ${claimableQueued('$6')} AND r.id > $7 AND r.id <= $8
        ORDER BY r.id
        LIMIT $2
        FOR UPDATE OF r SKIP LOCKED
      )
      UPDATE recipients r
      SET state = 'delivering', locked_by = $3, locked_until = $4, lease_token = $5, updated_at = $6
      FROM picked p, messages m
      WHERE r.id = p.id AND m.id = r.message_id
      RETURNING ${CLAIMED_ROW_COLUMNS}`,
    values: [value, limit, owner, lockedUntil, token, now, range.after, range.through],
  });
  return rows.sort((a, b) => a.id - b.id);
}

export async function lastRecipientId(db: Db): Promise<number> {
  const { rows } = await db.query<{ id: number }>({ name: 'rookery_last_recipient_id', text: 'SELECT coalesce(max(id), 0) AS id FROM recipients' });
  return rows[0]!.id;
}

export async function countDelivering(db: Db, kind: QueueSelection['kind'], value: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>({
    name: `rookery_count_delivering_${kind}`,
    text: `SELECT count(*) AS n FROM recipients r WHERE ${selectionPredicate(kind, '$1')} AND r.state = 'delivering'`,
    values: [value],
  });
  return rows[0]!.n;
}
