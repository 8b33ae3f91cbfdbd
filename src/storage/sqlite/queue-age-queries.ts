import type { DatabaseSync } from 'node:sqlite';
import type { UnfinishedScan } from '../queue-age.ts';

/**
 * The SQLite statements behind the oldest-queued gauge (see ../queue-age.ts), prepared once.
 * NOT INDEXED keeps the planner on the rowid range: through recipients_due it would read every
 * queued row to find the one with the lowest id.
 */
export function prepareQueueAgeQueries(db: DatabaseSync) {
  const firstUnfinished = db.prepare(`
    SELECT id FROM recipients NOT INDEXED
    WHERE id >= ?1 AND id < ?2 AND state IN ('queued', 'delivering')
    ORDER BY id LIMIT 1`);

  // A scheduled send is in the queue from its send time; until then it is not waiting.
  const oldest = db.prepare(`
    SELECT r.id, max(r.created_at, coalesce(m.send_at, 0)) AS since
    FROM recipients AS r NOT INDEXED JOIN messages AS m ON m.id = r.message_id
    WHERE r.id >= ?1 AND r.id < ?2 AND r.state IN ('queued', 'delivering') AND coalesce(m.send_at, 0) <= ?3
    ORDER BY r.id LIMIT 1`);

  return {
    scanUnfinished(fromId: number, toId: number, now: number): UnfinishedScan {
      const first = firstUnfinished.get(fromId, toId) as { id: number } | undefined;
      if (!first) return { firstUnfinished: null, oldest: null };
      const row = oldest.get(fromId, toId, now) as { id: number; since: number } | undefined;
      return { firstUnfinished: first.id, oldest: row ? { id: row.id, since: row.since } : null };
    },
  };
}

export type SqliteQueueAgeQueries = ReturnType<typeof prepareQueueAgeQueries>;
