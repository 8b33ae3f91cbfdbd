import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { ParkedRelease, QueueScopeKind, QueueSelection } from '../queue-control.ts';
import { claimableQueued, heldByPause, movedDueAt, PARKED_DUE_AT, retryWaiting, scopePausedAt, selectionPredicate, type PauseDbRow } from '../queue-control-rows.ts';
import { CLAIMED_ROW_COLUMNS, type ClaimedRow } from '../store-rows.ts';

/**
 * The SQLite statements of queue control (QueueControl): pauses, and the bulk moves and claims
 * of a selection's queued rows. Writes run inside the store's write batches. A selection's
 * statements are prepared per kind on first use (one text per kind keeps each on its index).
 */
export function prepareQueueControlQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);

  const selectPause = stmt(`
    SELECT kind, value, reason, paused_by, created_at, ends_at FROM queue_pauses
    WHERE kind = ?1 AND value = ?2 AND (ends_at IS NULL OR ends_at > ?3)`);

  const upsertPause = stmt(`
    INSERT INTO queue_pauses (kind, value, reason, paused_by, created_at, ends_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (kind, value) DO UPDATE SET
      reason = excluded.reason, paused_by = excluded.paused_by, created_at = excluded.created_at, ends_at = excluded.ends_at`);

  const deletePause = stmt(`DELETE FROM queue_pauses WHERE kind = ? AND value = ?`);

  const listPauses = stmt(`
    SELECT kind, value, reason, paused_by, created_at, ends_at FROM queue_pauses
    WHERE ends_at IS NULL OR ends_at > ?
    ORDER BY created_at, kind, value`);

  const purgeEnded = stmt(`DELETE FROM queue_pauses WHERE ends_at <= ?`);

  const lastRecipientId = stmt(`SELECT coalesce(max(id), 0) AS id FROM recipients`);

  // A chunk of a release: the parked rows after an id (recipients_due: they share one due time,
  // so they are read in id order), then those of them no pause in force holds given their time back.
  const parkedAfter = stmt(`
    SELECT id FROM recipients INDEXED BY recipients_due
    WHERE state = 'queued' AND next_attempt_at = ${PARKED_DUE_AT} AND id > ?1
    ORDER BY id LIMIT ?2`);
  const release = stmt(`
    UPDATE recipients AS r SET next_attempt_at = ${movedDueAt('coalesce(r.parked_due_at, ?3)')}, parked_due_at = NULL
    FROM messages m
    WHERE m.id = r.message_id AND r.id IN (
      SELECT id FROM recipients INDEXED BY recipients_due
      WHERE state = 'queued' AND next_attempt_at = ${PARKED_DUE_AT} AND id > ?1 AND id <= ?2)
      AND NOT ${heldByPause('?3')}`);

  /** A retry's move of `due` for the rows `picks` selects that wait past their time (now at ?2, limit ?3). */
  const retrySql = (picks: string, due: 'next_attempt_at' | 'parked_due_at') => `
    UPDATE recipients AS r SET ${due} = ${movedDueAt('?2')}, updated_at = ?2
    FROM messages m
    WHERE m.id = r.message_id AND r.id IN (
      SELECT r.id FROM recipients r JOIN messages m ON m.id = r.message_id
      WHERE ${picks} AND r.state = 'queued' AND ${retryWaiting(due, '?2')} LIMIT ?3)`;

  const bySelection = new Map<QueueSelection['kind'], { retry: StatementSync; retryParked: StatementSync; park: StatementSync; claim: StatementSync; delivering: StatementSync }>();
  const selection = (kind: QueueSelection['kind']) => {
    let statements = bySelection.get(kind);
    if (!statements) {
      const picks = selectionPredicate(kind, '?1');
      statements = {
        // A moved row is at its earliest time, so the next chunk does not pick it again. Parked
        // rows are past the range of `retry`; `retryParked` moves their own due time (the scope's
        // rows at PARKED_DUE_AT) and they stay parked.
        retry: stmt(retrySql(picks, 'next_attempt_at')),
        retryParked: stmt(retrySql(picks, 'parked_due_at')),
        // Due before ?2 (a parked row is past it, so not picked again), while the scope's pause
        // (kind ?3) is in force at ?4. A domain reads recipients_domain; a pool or a tenant walks
        // recipients_due up to ?2, where parked rows no longer are.
        park: stmt(`
          UPDATE recipients SET parked_due_at = next_attempt_at, next_attempt_at = ${PARKED_DUE_AT}
          WHERE id IN (
            SELECT r.id FROM recipients r
            WHERE ${picks} AND r.state = 'queued' AND r.next_attempt_at < ?2 AND ${scopePausedAt('?3', '?1', '?4')}
            LIMIT ?5)`),
        // Queued rows, and rows whose lease ran out (?3: now), in the id range (?4, ?5]. A kind
        // with no index of its own walks the ids from ?4 (`+r.state` keeps recipients_due out):
        // through recipients_due, each chunk would read and sort every queued row of the queue.
        claim: stmt(`
          SELECT ${CLAIMED_ROW_COLUMNS}
          FROM recipients r JOIN messages m ON m.id = r.message_id
          WHERE ${picks} AND ${claimableQueued('?3', kind === 'domain' || kind === 'message' ? 'r.state' : '+r.state')} AND r.id > ?4 AND r.id <= ?5
          ORDER BY r.id LIMIT ?2`),
        delivering: stmt(`SELECT count(*) AS n FROM recipients r WHERE ${picks} AND r.state = 'delivering'`),
      };
      bySelection.set(kind, statements);
    }
    return statements;
  };

  return {
    selectPause(kind: string, value: string, now: number): PauseDbRow | undefined {
      return selectPause.get(kind, value, now) as PauseDbRow | undefined;
    },

    upsertPause(values: [string, string, string, string, number, number | null]): void {
      upsertPause.run(...values);
    },

    deletePause(kind: string, value: string): void {
      deletePause.run(kind, value);
    },

    listPauses(now: number): PauseDbRow[] {
      return listPauses.all(now) as unknown as PauseDbRow[];
    },

    purgeEnded(now: number): number {
      return Number(purgeEnded.run(now).changes);
    },

    /** Parked rows first (their own due time), then the others, `limit` in all. */
    retry(kind: QueueSelection['kind'], value: string, now: number, limit: number): number {
      const statements = selection(kind);
      const parked = Number(statements.retryParked.run(value, now, limit).changes);
      return parked < limit ? parked + Number(statements.retry.run(value, now, limit - parked).changes) : parked;
    },

    park(kind: QueueScopeKind, value: string, before: number, now: number, limit: number): number {
      return Number(selection(kind).park.run(value, before, kind, now, limit).changes);
    },

    /** One chunk of a release (see releaseParked): how many were released, and the last id read when a full chunk was read. */
    release(now: number, limit: number, after: number): ParkedRelease {
      const ids = parkedAfter.all(after, limit) as { id: number }[];
      const last = ids.at(-1)?.id;
      if (last === undefined) return { released: 0, next: null, skipped: 0 };
      const released = Number(release.run(after, last, now).changes);
      // One writer: no row is held by another statement.
      return { released, next: ids.length === limit ? last : null, skipped: 0 };
    },

    selectQueued(kind: QueueSelection['kind'], value: string, limit: number, now: number, after: number, through: number): ClaimedRow[] {
      return selection(kind).claim.all(value, limit, now, after, through) as unknown as ClaimedRow[];
    },

    lastRecipientId(): number {
      return (lastRecipientId.get() as { id: number }).id;
    },

    countDelivering(kind: QueueSelection['kind'], value: string): number {
      return (selection(kind).delivering.get(value) as { n: number }).n;
    },
  };
}

export type SqliteQueueControlQueries = ReturnType<typeof prepareQueueControlQueries>;
