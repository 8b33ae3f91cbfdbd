import { FEEDBACK_COLUMNS, FEEDBACK_INSERT_COLUMNS, type FeedbackDbRow, type FeedbackInsertValues, type FeedbackRecipientDbRow, type RecipientBounce } from '../feedback-rows.ts';
import type { Db } from './queries.ts';

/**
 * The PostgreSQL statements of the feedback events, one function per query, named (parsed once
 * per connection). The insert and the asynchronous bounce run inside the store's write batches.
 */

/** The new event's id, or undefined when its fingerprint was recorded before (another node's included). */
export async function insertFeedback(db: Db, values: FeedbackInsertValues): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>({
    name: 'rookery_insert_feedback',
    text: `INSERT INTO feedback_events (${FEEDBACK_INSERT_COLUMNS})
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
           ON CONFLICT (fingerprint) DO NOTHING
           RETURNING id`,
    values,
  });
  return rows[0]?.id;
}

export async function selectFeedbackIdByFingerprint(db: Db, fingerprint: string): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>({
    name: 'rookery_select_feedback_fingerprint',
    text: `SELECT id FROM feedback_events WHERE fingerprint = $1`,
    values: [fingerprint],
  });
  return rows[0]?.id;
}

/** Locks the recipient row (the bounce below updates it) and says whether it is the message's. */
export async function lockFeedbackRecipient(db: Db, recipientId: number, messageId: string): Promise<boolean> {
  const { rows } = await db.query({
    name: 'rookery_lock_feedback_recipient',
    text: `SELECT 1 FROM recipients WHERE id = $1 AND message_id = $2 FOR UPDATE`,
    values: [recipientId, messageId],
  });
  return rows.length > 0;
}

/**
 * Bounces a delivered row only: a queued or delivering one is the engine's, a bounced one stays
 * as it is. The delivering attempt's stage, remote host and egress IP stay on the row.
 */
export async function bounceDelivered(db: Db, b: RecipientBounce): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'rookery_bounce_delivered',
    text: `UPDATE recipients SET
             state = 'bounced', last_disposition = 'permanent', last_code = $1, last_enhanced = $2, last_response = $3,
             last_bounce_class = $4, updated_at = $5
           WHERE id = $6 AND message_id = $7 AND state = 'delivered'`,
    values: [b.code, b.enhanced, b.response, b.bounceClass, b.at, b.recipientId, b.messageId],
  });
  return (rowCount ?? 0) > 0;
}

export async function selectFeedback(db: Db, messageId: string): Promise<FeedbackDbRow[]> {
  const { rows } = await db.query<FeedbackDbRow>({
    name: 'rookery_select_feedback',
    text: `SELECT ${FEEDBACK_COLUMNS} FROM feedback_events WHERE message_id = $1 ORDER BY at, id`,
    values: [messageId],
  });
  return rows;
}

const RECIPIENT_COLUMNS = `r.message_id, r.id, r.recipient, r.domain, r.state, r.last_egress_ip, m.tenant, m.sender`;

export async function selectFeedbackRecipientById(db: Db, messageId: string, recipientId: number): Promise<FeedbackRecipientDbRow | undefined> {
  const { rows } = await db.query<FeedbackRecipientDbRow>({
    name: 'rookery_select_feedback_recipient_id',
    text: `SELECT ${RECIPIENT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message_id
           WHERE r.message_id = $1 AND r.id = $2`,
    values: [messageId, recipientId],
  });
  return rows[0];
}

/** recipients_message, then the address compared without regard to case (as listMessages compares them). */
export async function selectFeedbackRecipientByAddress(db: Db, messageId: string, address: string): Promise<FeedbackRecipientDbRow | undefined> {
  const { rows } = await db.query<FeedbackRecipientDbRow>({
    name: 'rookery_select_feedback_recipient_address',
    text: `SELECT ${RECIPIENT_COLUMNS} FROM recipients r JOIN messages m ON m.id = r.message_id
           WHERE r.message_id = $1 AND lower(r.recipient) = lower($2)
           ORDER BY r.id LIMIT 1`,
    values: [messageId, address],
  });
  return rows[0];
}

/** Through messages_message_id_header (an index on the md5 of the header). */
export async function selectMessageIdsByHeader(db: Db, messageIdHeader: string, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: 'rookery_select_messages_by_header',
    text: `SELECT id FROM messages
           WHERE md5(message_id_header) = md5($1) AND message_id_header = $1 AND source <> 'dsn'
           ORDER BY created_at DESC, id DESC LIMIT $2`,
    values: [messageIdHeader, limit],
  });
  return rows.map((r) => r.id);
}
