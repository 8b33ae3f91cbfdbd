import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import type { FeedbackRecipient } from '../storage/feedback-events.ts';
import type { Store } from '../storage/store.ts';
import { verpIdsOf } from './inbound-recipients.ts';
import type { OriginalHeaders } from './report-message.ts';

/**
 * Which of our recipients a report is about, when its envelope recipient does not say (a
 * complaint to a feedback-loop address): the message by the VERP return path of the original
 * the report returns (or its Original-Mail-From), else by its X-Rookery-Queue-ID header, else by
 * its Message-ID header; then the recipient by its VERP id, else by the addresses the report
 * names (Original-Rcpt-To), else by the original's To, else the message's only recipient.
 */

export interface OriginalLookupDeps {
  store: Pick<Store, 'findRecipientForFeedback' | 'findMessageByHeaderId' | 'listRecipients'>;
  returnPath: ReturnPathConfig;
}

export interface OriginalClues {
  original: OriginalHeaders | null;
  /** Addresses the report says the message went to (ARF Original-Rcpt-To), best first. */
  recipients: readonly string[];
  /** The report's own account of the envelope sender (ARF Original-Mail-From). */
  mailFrom: string | null;
}

/** Most candidate addresses tried for one report: each is a store read. */
const MAX_CANDIDATES = 10;

export async function findOriginalRecipient(deps: OriginalLookupDeps, clues: OriginalClues): Promise<FeedbackRecipient | null> {
  const { store } = deps;
  const { original } = clues;
  for (const path of [original?.returnPath, clues.mailFrom]) {
    const ids = path ? verpIdsOf(path, deps.returnPath) : null;
    const found = ids && (await store.findRecipientForFeedback(ids.messageId, ids.recipientId));
    if (found) return found;
  }
  // A queue id is ours only in its own shape; anything else in that header is not looked up.
  const queueId = original?.queueId && /^[0-9a-f]{1,64}$/.test(original.queueId) ? original.queueId : null;
  const messageId = queueId ?? (original?.messageId ? await store.findMessageByHeaderId(original.messageId) : null);
  if (!messageId) return null;
  const candidates = [...new Set([...clues.recipients, ...(original?.to ?? [])])].slice(0, MAX_CANDIDATES);
  for (const address of candidates) {
    const found = await store.findRecipientForFeedback(messageId, address);
    if (found) return found;
  }
  // A reporter that redacts the recipient still names the message: with one recipient, it is that one.
  const rows = await store.listRecipients(messageId);
  return rows.length === 1 ? store.findRecipientForFeedback(messageId, rows[0]!.recipientId) : null;
}
