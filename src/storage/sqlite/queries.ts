import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import type { LeaseToken, NewMessage, PoolStateEntry, UsageChange } from '../store.ts';
import { CLAIMED_ROW_COLUMNS, eventTls, type ClaimedRow, type EventDbRow, type MessageDbRow, type RecipientDbRow } from '../store-rows.ts';
import { anyPaused, type PausedScopes } from '../queue-control.ts';
import { movedDueAt, PARKED_DUE_AT, pausedLists, waitsPastItsTime } from '../queue-control-rows.ts';
import { messageExtras } from '../message-rows.ts';

/**
 * Every SQL statement of the SQLite backend, prepared once, one function per query. The write
 * functions are only called from inside a write-batcher transaction. Over 300 lines on purpose:
 * the backend's whole SQL in one place, read against its migrations.
 */
export function prepareQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);

  const insertMessage = stmt(`
    INSERT INTO messages (id, sender, message_id_header, size, body, submitter, source, client_address, created_at, pool, tenant, send_at, tags, metadata)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  const insertRecipient = stmt(`
    INSERT INTO recipients (message_id, recipient, domain, state, attempts, next_attempt_at, created_at, updated_at)
    VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)`);

  // Two range scans of recipients_due, each limited, merged: expired leases (the few rows in
  // flight) and due queued rows in next_attempt_at order. A single OR query would have to sort
  // every due row of a backlog to take the first n. `filter` narrows both scans (see unpaused below).
  const dueSql = (filter: string) => `
    SELECT ${CLAIMED_ROW_COLUMNS}
    FROM (
      SELECT id, next_attempt_at FROM (
        SELECT id, next_attempt_at FROM recipients INDEXED BY recipients_lease_end
        WHERE state = 'delivering' AND locked_until < ?1 ${filter}
        ORDER BY next_attempt_at, id LIMIT ?2
      )
      UNION ALL
      SELECT id, next_attempt_at FROM (
        SELECT id, next_attempt_at FROM recipients
        WHERE state = 'queued' AND next_attempt_at <= ?1 ${filter}
        ORDER BY next_attempt_at, id LIMIT ?2
      )
      ORDER BY next_attempt_at, id
      LIMIT ?2
    ) AS due
    JOIN recipients r ON r.id = due.id
    JOIN messages m ON m.id = r.message_id
    ORDER BY due.next_attempt_at, due.id`;

  // Paused domains, pools and tenants as JSON arrays, tested on each row the scan passes: the scan
  // stays the same index walk in due order that stops at the limit. Paused mail is parked out of
  // that order (parkPaused), so the filter only meets the rows not parked yet (accepted or
  // deferred since the last park) and keeps them from being claimed meanwhile. The pool and the
  // tenant are read per row through the messages' primary key, each only when one is paused. The tenant is coalesced: mail of no tenant (NULL) would fail NOT IN and be
  // held by every tenant's pause.
  const unpaused = (paused: PausedScopes, [domains, pools, tenants]: readonly [string, string, string]) =>
    [
      paused.domains.length > 0 ? `AND domain NOT IN (SELECT value FROM json_each(${domains}))` : '',
      paused.pools.length > 0 ? `AND (SELECT pm.pool FROM messages pm WHERE pm.id = recipients.message_id) NOT IN (SELECT value FROM json_each(${pools}))` : '',
      paused.tenants.length > 0 ? `AND coalesce((SELECT tm.tenant FROM messages tm WHERE tm.id = recipients.message_id), '') NOT IN (SELECT value FROM json_each(${tenants}))` : '',
    ].join(' ');
  const pausedKinds = (paused: PausedScopes) => [paused.domains, paused.pools, paused.tenants].map((list) => list.length > 0);
  /** A statement per combination of paused kinds, prepared on first use. */
  const variants = new Map<string, StatementSync>();
  const variant = (name: string, paused: PausedScopes, sql: (filter: string) => string, params: readonly [string, string, string]) => {
    const key = `${name}:${pausedKinds(paused).join(':')}`;
    let statement = variants.get(key);
    if (!statement) variants.set(key, (statement = stmt(sql(unpaused(paused, params)))));
    return statement;
  };
  /** The bound values of the paused lists, up to the last whose parameter is in the text (SQLite refuses one past it). */
  const pausedValues = (paused: PausedScopes) => {
    const { domains, pools, tenants } = pausedLists(paused);
    const lists = [domains, pools, tenants];
    return lists.slice(0, pausedKinds(paused).lastIndexOf(true) + 1).map((list) => JSON.stringify(list));
  };

  const selectDue = stmt(dueSql(''));

  const lease = stmt(`
    UPDATE recipients SET state = 'delivering', locked_by = ?, locked_until = ?, lease_token = ?, updated_at = ?
    WHERE id = ?`);

  const renewLease = stmt(`
    UPDATE recipients SET locked_until = ? WHERE id = ? AND state = 'delivering' AND lease_token = ?`);

  const carriesToken = stmt(`SELECT 1 AS yes FROM recipients WHERE id = ? AND lease_token = ?`);

  // The token stays: recording the same result again finds it with the row no longer delivering.
  // A result with no egress IP (a wait: throttled before any IP sent) keeps the last one, so the
  // row stays in its IP's queue scope and a retry still prefers that IP.
  const applyAttempt = stmt(`
    UPDATE recipients SET
      state = ?, attempts = attempts + ?, next_attempt_at = ?, locked_by = NULL, locked_until = NULL,
      last_disposition = ?, last_code = ?, last_enhanced = ?, last_response = ?, last_stage = ?,
      last_bounce_class = ?, last_remote_host = ?, last_egress_ip = COALESCE(?, last_egress_ip), updated_at = ?,
      parked_due_at = NULL
    WHERE id = ? AND state = 'delivering' AND lease_token = ?
    RETURNING message_id, attempts`);

  const claimedUnder = stmt(`
    SELECT 1 AS yes FROM recipients WHERE id = ? AND lease_token = ? AND state = 'delivering'`);

  const recordedUnder = stmt(`
    SELECT 1 AS yes FROM recipients WHERE id = ? AND lease_token = ? AND state <> 'delivering'`);

  const insertEvent = stmt(`
    INSERT INTO events (recipient_id, message_id, attempt, at, disposition, code, enhanced, response, stage,
                        bounce_class, remote_host, egress_ip, tls)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  // A row a cancellation claimed out of the park comes back unparked, at its own time (its claim's dueAt).
  const releaseOne = stmt(`
    UPDATE recipients SET state = 'queued', next_attempt_at = ?, locked_by = NULL, locked_until = NULL, lease_token = NULL,
      parked_due_at = NULL, updated_at = ?
    WHERE id = ? AND state = 'delivering' AND lease_token = ?`);

  const releaseOwner = stmt(`
    UPDATE recipients SET state = 'queued', next_attempt_at = ?, locked_by = NULL, locked_until = NULL, lease_token = NULL,
      parked_due_at = NULL, updated_at = ?
    WHERE state = 'delivering' AND locked_by = ?`);

  // A bulk deferral of up to ?5 queued rows of a domain (recipients_domain): a row already at its
  // target time is not picked again, so repeating the statement until it moves fewer ends.
  const holdDomain = stmt(`
    UPDATE recipients SET next_attempt_at = min(?2, created_at + ?3), updated_at = ?4
    WHERE id IN (
      SELECT id FROM recipients
      WHERE domain = ?1 AND state = 'queued' AND next_attempt_at < ?2 AND next_attempt_at < created_at + ?3
      LIMIT ?5
    )`);

  // Held mail due again, but a first attempt scheduled for later only at its send time (movedDueAt).
  const resumeDomain = stmt(`
    UPDATE recipients AS r SET next_attempt_at = ${movedDueAt('?3')}, updated_at = ?3
    FROM messages m
    WHERE m.id = r.message_id AND r.id IN (
      SELECT r.id FROM recipients r JOIN messages m ON m.id = r.message_id
      WHERE r.domain = ?1 AND r.state = 'queued' AND r.next_attempt_at <= ?2 AND ${waitsPastItsTime('?3')}
      LIMIT ?4
    )`);

  // A lease is claimable once locked_until < now, so 1 ms after it. Parked rows are never due by time.
  const nextDueAt = stmt(`
    SELECT min(at) AS at FROM (
      SELECT min(next_attempt_at) AS at FROM recipients WHERE state = 'queued' AND next_attempt_at < ${PARKED_DUE_AT}
      UNION ALL
      SELECT min(locked_until) + 1 FROM recipients INDEXED BY recipients_lease_end WHERE state = 'delivering'
    )`);

  // With pauses: the first row of each scan that a claim would take (min() with a filter would
  // read every queued row; ORDER BY ... LIMIT 1 walks the index and stops at the first).
  const nextDueAtSql = (filter: string) => `
    SELECT min(at) AS at FROM (
      SELECT * FROM (
        SELECT next_attempt_at AS at FROM recipients INDEXED BY recipients_due
        WHERE state = 'queued' AND next_attempt_at < ${PARKED_DUE_AT} ${filter} ORDER BY next_attempt_at LIMIT 1
      )
      UNION ALL
      SELECT * FROM (
        SELECT locked_until + 1 AS at FROM recipients INDEXED BY recipients_lease_end
        WHERE state = 'delivering' ${filter} ORDER BY locked_until LIMIT 1
      )
    )`;

  const selectMessage = stmt(`
    SELECT id, sender, message_id_header, body, submitter, source, created_at, pool, tenant FROM messages WHERE id = ?`);

  const countByState = stmt(`SELECT state, count(*) AS n FROM recipients GROUP BY state`);

  // A parked row shows its own due time.
  const selectRecipients = stmt(`
    SELECT id, message_id, recipient, domain, state, attempts, coalesce(parked_due_at, next_attempt_at) AS next_attempt_at, last_disposition, last_code,
           last_enhanced, last_response, last_stage, last_bounce_class, last_remote_host, last_egress_ip, updated_at
    FROM recipients WHERE message_id = ? ORDER BY id`);

  const selectEvents = stmt(`
    SELECT recipient_id, message_id, attempt, at, disposition, code, enhanced, response, stage, bounce_class,
           remote_host, egress_ip, tls
    FROM events WHERE message_id = ? ORDER BY at, id`);

  // A message is finished when no recipient is waiting or in flight, and old enough when its
  // last recipient changed before the cut-off (a message cannot change before it was created).
  const selectPurgeable = stmt(`
    SELECT m.id FROM messages m
    WHERE m.created_at < ?1
      AND NOT EXISTS (
        SELECT 1 FROM recipients r
        WHERE r.message_id = m.id AND (r.state IN ('queued', 'delivering') OR r.updated_at >= ?1)
      )
    LIMIT ?2`);

  const deleteMessage = stmt(`DELETE FROM messages WHERE id = ?`);

  // The same finished-and-old test as selectPurgeable, over the messages that still have a body.
  const selectBodiesToDrop = stmt(`
    SELECT m.id FROM messages m
    WHERE length(m.body) > 0 AND m.created_at < ?1
      AND NOT EXISTS (
        SELECT 1 FROM recipients r
        WHERE r.message_id = m.id AND (r.state IN ('queued', 'delivering') OR r.updated_at >= ?1)
      )
    LIMIT ?2`);

  const dropBody = stmt(`UPDATE messages SET body = X'' WHERE id = ?`);

  // A counter expired at ?6 starts again from the amount instead of adding to a stale total.
  // The SELECT ... WHERE refuses a first insert above the limit; DO UPDATE ... WHERE refuses an
  // addition that would pass it (nothing is returned then).
  const reserveUsage = stmt(`
    INSERT INTO usage_counters (key, window_start, count, expires_at)
    SELECT ?1, ?2, ?3, ?4 WHERE ?3 <= ?5
    ON CONFLICT (key, window_start) DO UPDATE SET
      count = CASE WHEN usage_counters.expires_at > ?6 THEN usage_counters.count + excluded.count ELSE excluded.count END,
      expires_at = max(usage_counters.expires_at, excluded.expires_at)
    WHERE CASE WHEN usage_counters.expires_at > ?6 THEN usage_counters.count + excluded.count ELSE excluded.count END <= ?5
    RETURNING count`);

  const addUsage = stmt(`
    INSERT INTO usage_counters (key, window_start, count, expires_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key, window_start) DO UPDATE SET
      count = CASE WHEN usage_counters.expires_at > ?5 THEN usage_counters.count + excluded.count ELSE excluded.count END,
      expires_at = max(usage_counters.expires_at, excluded.expires_at)
    RETURNING count`);

  const selectUsage = stmt(`
    SELECT count FROM usage_counters WHERE key = ? AND window_start = ? AND expires_at > ?`);

  const upsertPoolState = stmt(`
    INSERT INTO pool_state (key, value, expires_at) VALUES (?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`);

  const selectPoolState = stmt(`
    SELECT value FROM pool_state WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)`);

  const deletePoolState = stmt(`DELETE FROM pool_state WHERE key = ?`);

  // substr/length count characters, so this is a prefix test whatever the key holds (LIKE would
  // need its wildcards escaped).
  const listPoolState = stmt(`
    SELECT key, value, expires_at FROM pool_state
    WHERE substr(key, 1, length(?1)) = ?1 AND (expires_at IS NULL OR expires_at > ?2)
    ORDER BY key`);

  const purgeExpiredUsage = stmt(`DELETE FROM usage_counters WHERE expires_at <= ?`);

  const purgeExpiredPoolState = stmt(`DELETE FROM pool_state WHERE expires_at <= ?`);

  const ping = stmt(`SELECT 1 AS ok`);

  const touchWriteProbe = stmt(`
    INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`);

  return {
    insertMessage(m: NewMessage): void {
      const { sendAt, tags, metadata } = messageExtras(m);
      insertMessage.run(m.id, m.sender, m.messageIdHeader, m.body.length, m.body, m.submitter, m.source, m.clientAddress, m.createdAt, m.pool, m.tenant ?? null, sendAt, tags && JSON.stringify(tags), metadata);
    },

    insertRecipient(messageId: string, recipient: string, domain: string, dueAt: number, createdAt: number): void {
      insertRecipient.run(messageId, recipient, domain, dueAt, createdAt, createdAt);
    },

    selectDue(now: number, limit: number, paused?: PausedScopes): ClaimedRow[] {
      if (!anyPaused(paused)) return selectDue.all(now, limit) as unknown as ClaimedRow[];
      return variant('due', paused, dueSql, ['?3', '?4', '?5']).all(now, limit, ...pausedValues(paused)) as unknown as ClaimedRow[];
    },

    lease(id: number, owner: string, lockedUntil: number, token: LeaseToken, now: number): void {
      lease.run(owner, lockedUntil, token, now, id);
    },

    /** Extends the lease; false when the row no longer carries `token` (taken over or released). */
    renewLease(id: number, token: LeaseToken, lockedUntil: number): boolean {
      renewLease.run(lockedUntil, id, token);
      return carriesToken.get(id, token) !== undefined;
    },

    /** Returns the updated row's message and attempt count, or undefined when the row is not delivering under `token`. */
    applyAttempt(a: {
      id: number;
      token: LeaseToken;
      state: string;
      attemptIncrement: number;
      nextAttemptAt: number | null;
      outcome: DeliveryOutcome;
      now: number;
    }): { message_id: string; attempts: number } | undefined {
      const o = a.outcome;
      return applyAttempt.get(
        a.state,
        a.attemptIncrement,
        a.nextAttemptAt,
        o.disposition,
        o.code,
        o.enhanced,
        o.response,
        o.stage,
        o.bounceClass,
        o.remoteHost,
        o.egressIp,
        a.now,
        a.id,
        a.token,
      ) as { message_id: string; attempts: number } | undefined;
    },

    /** True when the row is being delivered under `token` (a result under it would apply). */
    claimedUnder(id: number, token: LeaseToken): boolean {
      return claimedUnder.get(id, token) !== undefined;
    },

    /** True when a result under `token` is already recorded on the row. */
    recordedUnder(id: number, token: LeaseToken): boolean {
      return recordedUnder.get(id, token) !== undefined;
    },

    insertEvent(recipientId: number, messageId: string, attempt: number, at: number, o: DeliveryOutcome): void {
      insertEvent.run(recipientId, messageId, attempt, at, o.disposition, o.code, o.enhanced, o.response, o.stage, o.bounceClass, o.remoteHost, o.egressIp, eventTls(o));
    },

    releaseOne(id: number, token: LeaseToken, dueAt: number, now: number): number {
      return Number(releaseOne.run(dueAt, now, id, token).changes);
    },

    releaseOwner(owner: string, dueAt: number, now: number): number {
      return Number(releaseOwner.run(dueAt, now, owner).changes);
    },

    holdDomain(domain: string, until: number, maxAgeMs: number, now: number, limit: number): number {
      return Number(holdDomain.run(domain, until, maxAgeMs, now, limit).changes);
    },

    resumeDomain(domain: string, until: number, now: number, limit: number): number {
      return Number(resumeDomain.run(domain, until, now, limit).changes);
    },

    nextDueAt(paused?: PausedScopes): number | null {
      if (!anyPaused(paused)) return (nextDueAt.get() as { at: number | null }).at;
      return (variant('next', paused, nextDueAtSql, ['?1', '?2', '?3']).get(...pausedValues(paused)) as { at: number | null }).at;
    },

    selectMessage(id: string): MessageDbRow | undefined {
      return selectMessage.get(id) as MessageDbRow | undefined;
    },

    countByState(): { state: string; n: number }[] {
      return countByState.all() as unknown as { state: string; n: number }[];
    },

    selectRecipients(messageId: string): RecipientDbRow[] {
      return selectRecipients.all(messageId) as unknown as RecipientDbRow[];
    },

    selectEvents(messageId: string): EventDbRow[] {
      return selectEvents.all(messageId) as unknown as EventDbRow[];
    },

    selectPurgeable(before: number, limit: number): string[] {
      return (selectPurgeable.all(before, limit) as { id: string }[]).map((r) => r.id);
    },

    deleteMessage(id: string): void {
      deleteMessage.run(id);
    },

    selectBodiesToDrop(before: number, limit: number): string[] {
      return (selectBodiesToDrop.all(before, limit) as { id: string }[]).map((r) => r.id);
    },

    dropBody(id: string): void {
      dropBody.run(id);
    },

    /** The new total, or undefined when adding would pass `limit`. */
    reserveUsage(c: UsageChange, limit: number): number | undefined {
      const row = reserveUsage.get(c.key, c.windowStart, c.amount, c.expiresAt, limit, c.now) as { count: number } | undefined;
      return row?.count;
    },

    addUsage(c: UsageChange): number {
      return (addUsage.get(c.key, c.windowStart, c.amount, c.expiresAt, c.now) as { count: number }).count;
    },

    selectUsage(key: string, windowStart: number, now: number): number {
      return (selectUsage.get(key, windowStart, now) as { count: number } | undefined)?.count ?? 0;
    },

    upsertPoolState(e: PoolStateEntry): void {
      upsertPoolState.run(e.key, e.value, e.expiresAt);
    },

    selectPoolState(key: string, now: number): string | null {
      return (selectPoolState.get(key, now) as { value: string } | undefined)?.value ?? null;
    },

    deletePoolState(key: string): void {
      deletePoolState.run(key);
    },

    listPoolState(prefix: string, now: number): PoolStateEntry[] {
      const rows = listPoolState.all(prefix, now) as unknown as { key: string; value: string; expires_at: number | null }[];
      return rows.map((r) => ({ key: r.key, value: r.value, expiresAt: r.expires_at }));
    },

    purgeExpiredPoolData(now: number): number {
      return Number(purgeExpiredUsage.run(now).changes) + Number(purgeExpiredPoolState.run(now).changes);
    },

    ping(): void {
      ping.get();
    },

    touchWriteProbe(now: number): void {
      touchWriteProbe.run(now);
    },
  };
}

export type SqliteQueries = ReturnType<typeof prepareQueries>;
