import type { UnfinishedScan } from '../queue-age.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements behind the oldest-queued gauge (see ../queue-age.ts), one function
 * per query. Each reads a bounded range of the primary key.
 */

export async function firstUnfinishedRecipient(db: Db, fromId: number, toId: number): Promise<number | null> {
  const { rows } = await db.query<{ id: number }>({
    name: 'rookery_first_unfinished_recipient',
    text: `
      SELECT id FROM recipients
      WHERE id >= $1 AND id < $2 AND state IN ('queued', 'delivering')
      ORDER BY id LIMIT 1`,
    values: [fromId, toId],
  });
  return rows[0]?.id ?? null;
}

/** A scheduled send is in the queue from its send time; until then it is not waiting. */
export async function oldestWaitingRecipient(db: Db, fromId: number, toId: number, now: number): Promise<UnfinishedScan['oldest']> {
  const { rows } = await db.query<{ id: number; since: number }>({
    name: 'rookery_oldest_waiting_recipient',
    text: `
      SELECT r.id, greatest(r.created_at, coalesce(m.send_at, 0))::bigint AS since
      FROM recipients r JOIN messages m ON m.id = r.message_id
      WHERE r.id >= $1 AND r.id < $2 AND r.state IN ('queued', 'delivering') AND coalesce(m.send_at, 0) <= $3
      ORDER BY r.id LIMIT 1`,
    values: [fromId, toId, now],
  });
  return rows[0] ?? null;
}

/** The unfinished recipients of the range scheduled for later than `now`: lowest id, earliest send time. */
export async function scheduledRecipients(db: Db, fromId: number, toId: number, now: number): Promise<UnfinishedScan['scheduled']> {
  const { rows } = await db.query<{ first_id: number | null; send_at: number | null }>({
    name: 'rookery_scheduled_unfinished_recipients',
    text: `
      SELECT min(r.id)::bigint AS first_id, min(m.send_at)::bigint AS send_at
      FROM recipients r JOIN messages m ON m.id = r.message_id
      WHERE r.id >= $1 AND r.id < $2 AND r.state IN ('queued', 'delivering') AND m.send_at > $3`,
    values: [fromId, toId, now],
  });
  const row = rows[0];
  return row?.first_id == null || row.send_at == null ? null : { firstId: row.first_id, sendAt: row.send_at };
}
