import type { DatabaseSync, StatementSync } from 'node:sqlite';
import {
  dsnQueueIdLine,
  type BacklogDbRow,
  type MessageInfoDbRow,
  type MessageQueryBounds,
  type MessageStateDbRow,
} from '../message-rows.ts';

/**
 * The SQLite statements of the control API's reads (MessageReads), prepared once. Kept apart
 * from queries.ts (the queue's own statements) so that file stays about the hot path. Reads run
 * on the one connection, synchronously: a scan of a large backlog holds the event loop for its
 * length, which is why each one stays on an index (see the comments).
 */
export function prepareMessageQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);

  const selectInfo = stmt(`
    SELECT id, sender, message_id_header, size, submitter, source, client_address, created_at, pool, tenant, send_at, tags, metadata
    FROM messages WHERE id = ?`);

  // messages_created_at, walked newest first from the cursor; the filters test each message on
  // the way (recipients through recipients_message), so a filter matching few messages reads
  // back until it fills the page or reaches `since`. One recipient must match every recipient
  // filter. The page's recipient states come from recipients_message. Never the body column:
  // reading it would load every scanned message.
  // A tenant's page walks messages_tenant_created_at instead: its messages only, in the same order.
  const pageSql = (from: string, tenant: string) => `
    SELECT p.id, p.sender, p.message_id_header, p.size, p.submitter, p.source, p.client_address, p.created_at, p.pool, p.tenant,
           p.send_at, p.tags, p.metadata, r.state, count(*) AS n
    FROM (
      SELECT m.id, m.sender, m.message_id_header, m.size, m.submitter, m.source, m.client_address, m.created_at, m.pool, m.tenant,
             m.send_at, m.tags, m.metadata
      FROM ${from}
      WHERE ${tenant} m.created_at >= ?1 AND m.created_at <= ?2
        AND (?3 IS NULL OR m.created_at < ?2 OR m.id < ?3)
        AND (?4 IS NULL OR lower(m.sender) = lower(?4))
        AND (?5 IS NULL OR m.pool = ?5)
        AND (?11 IS NULL OR EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?11))
        AND (?9 = 0 OR EXISTS (
          SELECT 1 FROM recipients x
          WHERE x.message_id = m.id AND (?6 IS NULL OR x.state = ?6)
            AND (?7 IS NULL OR lower(x.recipient) = lower(?7)) AND (?8 IS NULL OR x.domain = ?8)))
      ORDER BY m.created_at DESC, m.id DESC
      LIMIT ?10
    ) AS p
    JOIN recipients r ON r.message_id = p.id
    GROUP BY p.id, r.state
    ORDER BY p.created_at DESC, p.id DESC`;
  const selectPage = stmt(pageSql('messages m INDEXED BY messages_created_at', ''));
  const selectTenantPage = stmt(pageSql('messages m INDEXED BY messages_tenant_created_at', 'm.tenant = ?12 AND'));

  // messages_created_at bounds the search to the window; the body is read for DSNs only.
  const selectDsns = stmt(`
    SELECT id, created_at, body FROM messages INDEXED BY messages_created_at
    WHERE created_at BETWEEN ?2 AND ?3 AND source = 'dsn' AND instr(body, ?1) > 0
    ORDER BY created_at, id`);

  // Deferred: queued with a recorded result. recipients_due gives the queued rows; each is read
  // for its group (no index holds the group key with the state, so this reads every queued row).
  const DEFERRED = `r.state = 'queued' AND r.last_disposition IS NOT NULL`;
  const selectBacklogTotal = stmt(`
    SELECT count(*) AS n, min(r.created_at) AS oldest FROM recipients r WHERE ${DEFERRED}`);
  const grouped = (key: string, from: string) =>
    stmt(`
      SELECT ${key} AS key, count(*) AS n, min(r.created_at) AS oldest, count(*) OVER () AS groups
      FROM ${from} WHERE ${DEFERRED}
      GROUP BY ${key} ORDER BY n DESC, coalesce(${key}, '') LIMIT ?`);
  const selectBacklogByDomain = grouped('r.domain', 'recipients r');
  const selectBacklogByIp = grouped('r.last_egress_ip', 'recipients r');
  const selectBacklogByPool = grouped('m.pool', 'recipients r JOIN messages m ON m.id = r.message_id');

  return {
    selectInfo(id: string): MessageInfoDbRow | undefined {
      return selectInfo.get(id) as MessageInfoDbRow | undefined;
    },

    selectPage(b: MessageQueryBounds): MessageStateDbRow[] {
      const args = [b.since, b.latest, b.beforeId, b.sender, b.pool, b.state, b.recipient, b.domain, b.byRecipient ? 1 : 0, b.limit, b.tag];
      const rows = b.tenant === null ? selectPage.all(...args) : selectTenantPage.all(...args, b.tenant);
      return rows as unknown as MessageStateDbRow[];
    },

    selectDsns(messageId: string, from: number, to: number): { id: string; created_at: number; body: Uint8Array }[] {
      return selectDsns.all(dsnQueueIdLine(messageId), from, to) as unknown as { id: string; created_at: number; body: Uint8Array }[];
    },

    selectBacklog(top: number): { n: number; oldest: number | null; byDomain: BacklogDbRow[]; byPool: BacklogDbRow[]; byIp: BacklogDbRow[] } {
      const total = selectBacklogTotal.get() as { n: number; oldest: number | null };
      return {
        ...total,
        byDomain: selectBacklogByDomain.all(top) as unknown as BacklogDbRow[],
        byPool: selectBacklogByPool.all(top) as unknown as BacklogDbRow[],
        byIp: selectBacklogByIp.all(top) as unknown as BacklogDbRow[],
      };
    },
  };
}

export type SqliteMessageQueries = ReturnType<typeof prepareMessageQueries>;
