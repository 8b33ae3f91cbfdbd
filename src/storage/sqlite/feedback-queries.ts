import type { DatabaseSync } from 'node:sqlite';
import { FEEDBACK_COLUMNS, FEEDBACK_INSERT_COLUMNS, type FeedbackDbRow, type FeedbackInsertValues, type FeedbackRecipientDbRow, type RecipientBounce } from '../feedback-rows.ts';

/**
 * The SQLite statements of the feedback events, prepared once, one function per query. The
 * insert and the asynchronous bounce run inside the store's write batches; the reads on the one
 * connection.
 */
export function prepareFeedbackQueries(db: DatabaseSync) {
  // A fingerprint recorded before inserts nothing (and returns no row).
  const insert = db.prepare(`
    INSERT INTO feedback_events (${FEEDBACK_INSERT_COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING id`);

  const selectByFingerprint = db.prepare(`SELECT id FROM feedback_events WHERE fingerprint = ?`);

  const recipientExists = db.prepare(`SELECT 1 AS yes FROM recipients WHERE id = ? AND message_id = ?`);

  // Only a delivered row: a queued or delivering one is the engine's, a bounced one stays as it is.
  // The delivering attempt's stage, remote host and egress IP stay on the row.
  const bounceDelivered = db.prepare(`
    UPDATE recipients SET
      state = 'bounced', last_disposition = 'permanent', last_code = ?, last_enhanced = ?, last_response = ?,
      last_bounce_class = ?, updated_at = ?
    WHERE id = ? AND message_id = ? AND state = 'delivered'`);

  const selectByMessage = db.prepare(`
    SELECT ${FEEDBACK_COLUMNS} FROM feedback_events WHERE message_id = ? ORDER BY at, id`);

  const recipientColumns = `r.message_id, r.id, r.recipient, r.domain, r.state, r.last_egress_ip, m.tenant, m.sender`;

  const selectRecipientById = db.prepare(`
    SELECT ${recipientColumns} FROM recipients r JOIN messages m ON m.id = r.message_id
    WHERE r.message_id = ? AND r.id = ?`);

  // recipients_message, then the address compared without regard to ASCII case.
  const selectRecipientByAddress = db.prepare(`
    SELECT ${recipientColumns} FROM recipients r JOIN messages m ON m.id = r.message_id
    WHERE r.message_id = ? AND lower(r.recipient) = lower(?)
    ORDER BY r.id LIMIT 1`);

  const selectMessageByHeader = db.prepare(`
    SELECT id FROM messages WHERE message_id_header = ? AND source <> 'dsn'
    ORDER BY created_at DESC, id DESC LIMIT ?`);

  return {
    /** The new event's id, or undefined when its fingerprint was recorded before. */
    insert(values: FeedbackInsertValues): number | undefined {
      return (insert.get(...values) as { id: number } | undefined)?.id;
    },

    selectIdByFingerprint(fingerprint: string): number | undefined {
      return (selectByFingerprint.get(fingerprint) as { id: number } | undefined)?.id;
    },

    recipientExists(recipientId: number, messageId: string): boolean {
      return recipientExists.get(recipientId, messageId) !== undefined;
    },

    /** True when the row was delivered and is bounced now. */
    bounceDelivered(b: RecipientBounce): boolean {
      return Number(bounceDelivered.run(b.code, b.enhanced, b.response, b.bounceClass, b.at, b.recipientId, b.messageId).changes) > 0;
    },

    selectByMessage(messageId: string): FeedbackDbRow[] {
      return selectByMessage.all(messageId) as unknown as FeedbackDbRow[];
    },

    selectRecipient(messageId: string, recipient: number | string): FeedbackRecipientDbRow | undefined {
      const row = typeof recipient === 'number' ? selectRecipientById.get(messageId, recipient) : selectRecipientByAddress.get(messageId, recipient);
      return row as FeedbackRecipientDbRow | undefined;
    },

    selectMessageIdsByHeader(messageIdHeader: string, limit: number): string[] {
      return (selectMessageByHeader.all(messageIdHeader, limit) as { id: string }[]).map((r) => r.id);
    },
  };
}

export type SqliteFeedbackQueries = ReturnType<typeof prepareFeedbackQueries>;
