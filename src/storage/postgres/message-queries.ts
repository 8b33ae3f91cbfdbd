import {
  dsnQueueIdLine,
  type BacklogDbRow,
  type MessageInfoDbRow,
  type MessageQueryBounds,
  type MessageStateDbRow,
} from '../message-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of the control API's reads (MessageReads), one function per query.
 * Kept apart from queries.ts (the queue's own statements). The filtered listing is unnamed, so
 * each call is planned with its values: a filter left out (NULL) drops from the plan.
 */

export async function selectMessageInfo(db: Db, id: string): Promise<MessageInfoDbRow | undefined> {
  const { rows } = await db.query<MessageInfoDbRow>({
    name: 'rookery_select_message_info_v3',
    text: `
      SELECT id, sender, message_id_header, size, submitter, source, client_address, created_at, pool, tenant,
             send_at, array_to_json(tags)::text AS tags, metadata
      FROM messages WHERE id = $1`,
    values: [id],
  });
  return rows[0];
}

/**
 * A page newest first: messages_created_at walked back from the cursor, each message tested
 * against the filters (recipients through recipients_message; one recipient must match every
 * recipient filter), then the page's recipient states.
 */
export async function selectMessagePage(db: Db, b: MessageQueryBounds): Promise<MessageStateDbRow[]> {
  const { rows } = await db.query<MessageStateDbRow>({
    text: `
      SELECT p.id, p.sender, p.message_id_header, p.size, p.submitter, p.source, p.client_address, p.created_at, p.pool, p.tenant,
             p.send_at, array_to_json(p.tags)::text AS tags, p.metadata, r.state, count(*)::int AS n
      FROM (
        SELECT m.id, m.sender, m.message_id_header, m.size, m.submitter, m.source, m.client_address, m.created_at, m.pool, m.tenant,
               m.send_at, m.tags, m.metadata
        FROM messages m
        WHERE m.created_at >= $1 AND m.created_at <= $2
          AND ($11::text IS NULL OR m.tenant = $11::text)
          AND ($3::text IS NULL OR m.created_at < $2 OR m.id < $3::text)
          AND ($4::text IS NULL OR lower(m.sender) = lower($4::text))
          AND ($5::text IS NULL OR m.pool = $5::text)
          AND ($12::text IS NULL OR $12::text = ANY (m.tags))
          AND (NOT $9::boolean OR EXISTS (
            SELECT 1 FROM recipients x
            WHERE x.message_id = m.id AND ($6::text IS NULL OR x.state = $6::text)
              AND ($7::text IS NULL OR lower(x.recipient) = lower($7::text)) AND ($8::text IS NULL OR x.domain = $8::text)))
        ORDER BY m.created_at DESC, m.id DESC
        LIMIT $10
      ) AS p
      JOIN recipients r ON r.message_id = p.id
      GROUP BY p.id, p.sender, p.message_id_header, p.size, p.submitter, p.source, p.client_address, p.created_at, p.pool, p.tenant,
               p.send_at, p.tags, p.metadata, r.state
      ORDER BY p.created_at DESC, p.id DESC`,
    values: [b.since, b.latest, b.beforeId, b.sender, b.pool, b.state, b.recipient, b.domain, b.byRecipient, b.limit, b.tenant, b.tag],
  });
  return rows;
}

/** messages_created_at bounds the search to the window; the body is read for DSNs only. */
export async function selectDsns(db: Db, messageId: string, from: number, to: number): Promise<{ id: string; created_at: number; body: Uint8Array }[]> {
  const { rows } = await db.query<{ id: string; created_at: number; body: Uint8Array }>({
    name: 'rookery_select_dsns',
    text: `
      SELECT id, created_at, body FROM messages
      WHERE created_at BETWEEN $2 AND $3 AND source = 'dsn' AND position($1::bytea IN body) > 0
      ORDER BY created_at, id`,
    values: [dsnQueueIdLine(messageId), from, to],
  });
  return rows;
}

/** Deferred: queued with a recorded result (recipients_due gives the queued rows; each is read for its group). */
const DEFERRED = `r.state = 'queued' AND r.last_disposition IS NOT NULL`;

function groupedBacklog(name: string, key: string, from: string): string {
  return `
    SELECT '${name}' AS grouping, ${key} AS key, count(*)::int AS n, min(r.created_at) AS oldest, (count(*) OVER ())::int AS groups
    FROM ${from} WHERE ${DEFERRED}
    GROUP BY ${key} ORDER BY n DESC, coalesce(${key}, '') LIMIT $1`;
}

/**
 * The deferred backlog in one round trip and one snapshot: the total and the `top` largest groups
 * by domain, pool (through messages' primary key) and last egress IP.
 */
export async function selectBacklog(db: Db, top: number): Promise<{ n: number; oldest: number | null; byDomain: BacklogDbRow[]; byPool: BacklogDbRow[]; byIp: BacklogDbRow[] }> {
  const { rows } = await db.query<BacklogDbRow & { grouping: string }>({
    name: 'rookery_select_backlog',
    text: `
      SELECT 'total' AS grouping, NULL AS key, count(*)::int AS n, min(r.created_at) AS oldest, 1 AS groups FROM recipients r WHERE ${DEFERRED}
      UNION ALL (${groupedBacklog('domain', 'r.domain', 'recipients r')})
      UNION ALL (${groupedBacklog('pool', 'm.pool', 'recipients r JOIN messages m ON m.id = r.message_id')})
      UNION ALL (${groupedBacklog('ip', 'r.last_egress_ip', 'recipients r')})`,
    values: [top],
  });
  const total = rows.find((r) => r.grouping === 'total')!;
  // Sorted again here: UNION ALL promises no order between or within its branches.
  const of = (grouping: string) =>
    rows
      .filter((r) => r.grouping === grouping)
      .map(({ grouping: _, ...row }) => row)
      .sort((a, b) => b.n - a.n || ((a.key ?? '') < (b.key ?? '') ? -1 : (a.key ?? '') > (b.key ?? '') ? 1 : 0));
  return { n: total.n, oldest: total.oldest, byDomain: of('domain'), byPool: of('pool'), byIp: of('ip') };
}
