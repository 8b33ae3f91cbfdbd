import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { caseVariants, foldCase, foldedAddress, type CaseVariants, type FoldedAddress } from '../case-folding.ts';
import { dsnQueueIdLine } from '../message-rows.ts';
import { addressRegExp } from '../personal-data-rows.ts';

/**
 * The SQLite statements of personal data (personal-data.ts), prepared once. `?tenant` is null for
 * every tenant's data, else a tenant key ('' for mail of no tenant).
 *
 * The address's messages come through indexes (its final rows through recipients_final_address,
 * the live ones through recipients_due), in any case as PostgreSQL's lower() finds them
 * (case-folding.ts): a range of the first index per spelling the address may have, then
 * rookery_fold on the rows found; on the live rows, which are scanned, a built-in LIKE first.
 * What else may name it (DSN bodies, webhook deliveries, audit entries, idempotency answers) has
 * no index to find it by, so those tables are read in pages of their key (pageEnd, then the
 * statement over that key range): each page is one short synchronous step, and the event loop
 * serves SMTP sessions between two.
 */
export function preparePersonalDataQueries(db: DatabaseSync) {
  const stmt = (sql: string): StatementSync => db.prepare(sql);
  // The address as a whole, in any case (personal-data-rows.ts): SQLite has no regular
  // expressions. A scan asks about one address row after row: its expression is made once.
  let matcher: { address: string; expression: RegExp } | null = null;
  db.function('rookery_mentions', { deterministic: true }, (text, address) => {
    const wanted = String(address);
    if (matcher?.address !== wanted) matcher = { address: wanted, expression: addressRegExp(wanted) };
    return typeof text === 'string' && matcher.expression.test(text) ? 1 : 0;
  });

  // lower() of every script's letters, as PostgreSQL's. Every connection a store opens has it (the
  // webhook thread's too), but no index or view uses it: the sqlite3 shell or a restore need not.
  db.function('rookery_fold', { deterministic: true }, (text) => (typeof text === 'string' ? foldCase(text) : null));
  // The code points other characters fold to, asked of every code point: made on the first lookup.
  let variants: CaseVariants | null = null;
  const folded = (address: string): FoldedAddress => foldedAddress(address, (variants ??= caseVariants()));

  // The address's row, in any case: LIKE (built in) first, so the function sees only the rows that may match.
  const IS_ADDRESS = `r.recipient LIKE ?1 ESCAPE '\\' AND rookery_fold(r.recipient) = ?2`;

  // Both halves on an index: the final rows a range of recipients_final_address per spelling
  // (?3, a JSON list of prefixes), which needs its partial condition written out.
  const selectAddressMessages = stmt(`
    SELECT m.id FROM messages m
    WHERE m.id IN (
        SELECT r.message_id FROM json_each(?3) AS p CROSS JOIN recipients r INDEXED BY recipients_final_address
        WHERE lower(r.recipient) >= p.value AND lower(r.recipient) < p.value || char(1114111)
          AND r.state IN ('delivered', 'bounced') AND ${IS_ADDRESS}
        UNION
        SELECT r.message_id FROM recipients r INDEXED BY recipients_due
        WHERE r.state IN ('queued', 'delivering') AND ${IS_ADDRESS})
      AND (?4 IS NULL OR coalesce(m.tenant, '') = ?4)
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT ?5`);

  // Recipients of the message still waiting or in flight, other than the address (?1 null: any).
  const countLive = stmt(`
    SELECT count(*) AS n FROM recipients r INDEXED BY recipients_message
    WHERE r.message_id = ?3 AND r.state IN ('queued', 'delivering') AND (?1 IS NULL OR NOT (${IS_ADDRESS}))`);

  // Events and feedback events go with their rows (ON DELETE CASCADE).
  const deleteAddressRows = stmt(`
    DELETE FROM recipients AS r WHERE r.message_id = ?3 AND ${IS_ADDRESS} RETURNING state`);

  const insertPending = stmt(`
    INSERT INTO erasure_pending (message_id, erased_at) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING`);

  const selectPending = stmt(`
    SELECT message_id, erased_at FROM erasure_pending WHERE message_id > ? ORDER BY message_id LIMIT ?`);

  // The last key of the next page of a table read in pages (rowid; audit's id is its rowid).
  const pageEnds = {
    messages: stmt(`SELECT max(k) AS last FROM (SELECT rowid AS k FROM messages WHERE rowid > ? ORDER BY rowid LIMIT ?)`),
    webhook_deliveries: stmt(`SELECT max(k) AS last FROM (SELECT rowid AS k FROM webhook_deliveries WHERE rowid > ? ORDER BY rowid LIMIT ?)`),
    audit: stmt(`SELECT max(id) AS last FROM (SELECT id FROM audit WHERE id > ? ORDER BY id LIMIT ?)`),
  };
  // idempotency_keys has no rowid: its pages go by (scope, key).
  const keyPageEnd = stmt(`
    SELECT scope, key FROM (
      SELECT scope, key FROM idempotency_keys WHERE (scope, key) > (?1, ?2) ORDER BY scope, key LIMIT ?3)
    ORDER BY scope DESC, key DESC LIMIT 1`);

  // A message body is a blob: read as text, it is searched as findInSqlite searches it. Only
  // DSNs' bodies are read (source is tested first). ?5, a JSON list of X-Rookery-Queue-ID lines,
  // also takes the DSNs reporting on those messages: one whose quoted headers are
  // quoted-printable may hold the address split across lines, where no search finds it.
  const selectDsnsQuoting = stmt(`
    SELECT id FROM messages
    WHERE rowid > ?1 AND rowid <= ?2 AND source = 'dsn' AND (?4 IS NULL OR coalesce(tenant, '') = ?4)
      AND (rookery_mentions(CAST(body AS TEXT), ?3)
        OR EXISTS (SELECT 1 FROM json_each(?5) WHERE instr(CAST(body AS TEXT), json_each.value) > 0))`);

  const NAMES_IN_DELIVERY = `
      AND (?4 IS NULL OR tenant = ?4)
      AND (rookery_mentions(recipient, ?3) OR rookery_mentions(reply_text, ?3) OR rookery_mentions(data, ?3)
        OR rookery_mentions(tags, ?3) OR rookery_mentions(metadata, ?3))`;
  const countDeliveriesNaming = stmt(`SELECT count(*) AS n FROM webhook_deliveries WHERE rowid > ?1 AND rowid <= ?2 ${NAMES_IN_DELIVERY}`);
  const deleteDeliveriesNaming = stmt(`DELETE FROM webhook_deliveries WHERE rowid > ?1 AND rowid <= ?2 ${NAMES_IN_DELIVERY}`);

  // Of a tenant's erasure, its tokens' entries and those of tokens of no tenant (personal-data.ts).
  const selectAuditNaming = stmt(`
    SELECT id, target, change FROM audit
    WHERE id > ?1 AND id <= ?2 AND (?4 IS NULL OR tenant IS NULL OR tenant = ?4)
      AND (rookery_mentions(target, ?3) OR rookery_mentions(change, ?3))`);
  const updateAudit = stmt(`UPDATE audit SET target = ?, change = ? WHERE id = ?`);

  const selectAnswersNaming = stmt(`
    SELECT scope, key, response FROM idempotency_keys
    WHERE (scope, key) > (?1, ?2) AND (scope, key) <= (?3, ?4) AND rookery_mentions(response, ?5)`);
  const deleteAnswer = stmt(`DELETE FROM idempotency_keys WHERE scope = ? AND key = ?`);

  // Through suppressions_address: the address's few entries over every tenant.
  const forgetSuppressedAddress = stmt(`
    UPDATE suppressions SET address = NULL
    WHERE address_hash = ?1 AND (?2 IS NULL OR tenant = ?2) AND address IS NOT NULL`);

  return {
    /** The messages `address` is a recipient of, newest first. */
    selectAddressMessages(address: string, tenant: string | null, limit: number): string[] {
      const { like, folded: wanted, prefixes } = folded(address);
      return (selectAddressMessages.all(like, wanted, JSON.stringify(prefixes), tenant, limit) as { id: string }[]).map((r) => r.id);
    },

    countLive(messageId: string, except: string | null): number {
      const address = except === null ? null : folded(except);
      return (countLive.get(address?.like ?? null, address?.folded ?? null, messageId) as { n: number }).n;
    },

    /** Deletes the address's rows of the message; the states they had. */
    deleteAddressRows(messageId: string, address: string): string[] {
      const { like, folded: wanted } = folded(address);
      return (deleteAddressRows.all(like, wanted, messageId) as { state: string }[]).map((r) => r.state);
    },

    insertPending(messageId: string, at: number): void {
      insertPending.run(messageId, at);
    },

    selectPending(after: string, limit: number): { message_id: string; erased_at: number }[] {
      return selectPending.all(after, limit) as unknown as { message_id: string; erased_at: number }[];
    },

    /** The last rowid of the page after `after`; null when no row is left. */
    pageEnd(table: keyof typeof pageEnds, after: number, size: number): number | null {
      return (pageEnds[table].get(after, size) as { last: number | null }).last;
    },

    keyPageEnd(after: readonly [string, string], size: number): [string, string] | null {
      const row = keyPageEnd.get(after[0], after[1], size) as { scope: string; key: string } | undefined;
      return row ? [row.scope, row.key] : null;
    },

    /** The DSNs of the page quoting the address, or reporting on one of `reportingOn` (queue ids). */
    selectDsnsQuoting(from: number, to: number, address: string, tenant: string | null, reportingOn: readonly string[] = []): string[] {
      const lines = JSON.stringify(reportingOn.map((id) => dsnQueueIdLine(id).toString()));
      return (selectDsnsQuoting.all(from, to, address, tenant, lines) as { id: string }[]).map((r) => r.id);
    },

    countDeliveriesNaming(from: number, to: number, address: string, tenant: string | null): number {
      return (countDeliveriesNaming.get(from, to, address, tenant) as { n: number }).n;
    },

    deleteDeliveriesNaming(from: number, to: number, address: string, tenant: string | null): number {
      return Number(deleteDeliveriesNaming.run(from, to, address, tenant).changes);
    },

    selectAuditNaming(from: number, to: number, address: string, tenant: string | null): { id: number; target: string | null; change: string | null }[] {
      return selectAuditNaming.all(from, to, address, tenant) as unknown as { id: number; target: string | null; change: string | null }[];
    },

    updateAudit(id: number, target: string | null, change: string | null): void {
      updateAudit.run(target, change, id);
    },

    selectAnswersNaming(from: readonly [string, string], to: readonly [string, string], address: string): { scope: string; key: string; response: string }[] {
      return selectAnswersNaming.all(from[0], from[1], to[0], to[1], address) as unknown as { scope: string; key: string; response: string }[];
    },

    deleteAnswer(scope: string, key: string): void {
      deleteAnswer.run(scope, key);
    },

    forgetSuppressedAddress(hash: Buffer, tenant: string | null): number {
      return Number(forgetSuppressedAddress.run(hash, tenant).changes);
    },
  };
}

export type SqlitePersonalDataQueries = ReturnType<typeof preparePersonalDataQueries>;
