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

  // The unfinished rows scheduled for later: lowest id, earliest send time.
  const scheduled = db.prepare(`
    SELECT min(r.id) AS first_id, min(m.send_at) AS send_at
    FROM recipients AS r NOT INDEXED JOIN messages AS m ON m.id = r.message_id
    WHERE r.id >= ?1 AND r.id < ?2 AND r.state IN ('queued', 'delivering') AND m.send_at > ?3`);

  return {
    scanUnfinished(fromId: number, toId: number, now: number): UnfinishedScan {
      // The cheap read first: most ranges the walk meets hold only finished rows.
      const first = firstUnfinished.get(fromId, toId) as { id: number } | undefined;
      if (!first) return { oldest: null, scheduled: null };
      const row = oldest.get(first.id, toId, now) as { id: number; since: number } | undefined;
      const below = row?.id ?? toId;
      const later = first.id < below ? (scheduled.get(first.id, below, now) as { first_id: number | null; send_at: number | null }) : null;
      return {
        oldest: row ? { id: row.id, since: row.since } : null,
        scheduled: later?.first_id != null && later.send_at != null ? { firstId: later.first_id, sendAt: later.send_at } : null,
      };
    },
  };
}

export type SqliteQueueAgeQueries = ReturnType<typeof prepareQueueAgeQueries>;
