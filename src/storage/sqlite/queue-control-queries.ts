import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { QueueSelection } from '../queue-control.ts';
import { claimableQueued, movedDueAt, selectionPredicate, waitsPastItsTime, type PauseDbRow } from '../queue-control-rows.ts';
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

  const bySelection = new Map<QueueSelection['kind'], { retry: StatementSync; claim: StatementSync; delivering: StatementSync }>();
  const selection = (kind: QueueSelection['kind']) => {
    let statements = bySelection.get(kind);
    if (!statements) {
      const picks = selectionPredicate(kind, '?1');
      statements = {
        // A moved row is at its earliest time, so the next chunk does not pick it again.
        retry: stmt(`
          UPDATE recipients AS r SET next_attempt_at = ${movedDueAt('?2')}, updated_at = ?2
          FROM messages m
          WHERE m.id = r.message_id AND r.id IN (
            SELECT r.id FROM recipients r JOIN messages m ON m.id = r.message_id
            WHERE ${picks} AND r.state = 'queued' AND ${waitsPastItsTime('?2')} LIMIT ?3)`),
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

    retry(kind: QueueSelection['kind'], value: string, now: number, limit: number): number {
      return Number(selection(kind).retry.run(value, now, limit).changes);
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
