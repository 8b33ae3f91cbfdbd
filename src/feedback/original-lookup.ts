import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import type { FeedbackRecipient } from '../storage/feedback-events.ts';
import type { Store } from '../storage/store.ts';
import { verpIdsOf } from './inbound-recipients.ts';
import type { OriginalHeaders } from './report-message.ts';

/**
 * Which of our recipients a report is about, when its envelope recipient does not say (a
 * complaint to a feedback-loop address): the one the VERP return path of the returned original
 * (or the report's Original-Mail-From) names, when its tag verifies, and no other. Without one,
 * the message by the original's X-Rookery-Queue-ID header, else by its Message-ID header; then
 * the recipient by the addresses the report names (Original-Rcpt-To), else by the original's To,
 * else the only recipient of the only message with that Message-ID.
 */

export interface OriginalLookupDeps {
  store: Pick<Store, 'findRecipientForFeedback' | 'findMessagesByHeaderId' | 'listRecipients'>;
  returnPath: ReturnPathConfig;
}

export interface OriginalClues {
  original: OriginalHeaders | null;
  /** Addresses the report says the message went to (ARF Original-Rcpt-To), best first. */
  recipients: readonly string[];
  /** The report's own account of the envelope sender (ARF Original-Mail-From). */
  mailFrom: string | null;
}

/** Most candidate addresses tried for one report, and messages of one Message-ID: each pair is a store read. */
const MAX_CANDIDATES = 10;
const MAX_MESSAGES = 50;

export async function findOriginalRecipient(deps: OriginalLookupDeps, clues: OriginalClues): Promise<FeedbackRecipient | null> {
  const { store } = deps;
  const { original } = clues;
  for (const path of [original?.returnPath, clues.mailFrom]) {
    const ids = path ? verpIdsOf(path, deps.returnPath) : null;
    // A return path whose tag verifies is our own word on the recipient: the report's other
    // clues (its words, or the original's headers, which whoever sent the original wrote) never
    // name another, also when that recipient is no longer held.
    if (ids) return store.findRecipientForFeedback(ids.messageId, ids.recipientId);
  }
  // A queue id is ours only in its own shape; anything else in that header is not looked up.
  const queueId = original?.queueId && /^[0-9a-f]{1,64}$/.test(original.queueId) ? original.queueId : null;
  const messageIds = queueId ? [queueId] : original?.messageId ? await store.findMessagesByHeaderId(original.messageId, MAX_MESSAGES) : [];
  if (messageIds.length === 0) return null;
  // The recipient must be one the report names, on a message it names: a Message-ID is shared by
  // the copies of a message split per recipient (and clients may reuse one), so the message alone
  // never says whose complaint it is.
  const candidates = [...new Set([...clues.recipients, ...(original?.to ?? [])])].slice(0, MAX_CANDIDATES);
  for (const address of candidates) {
    for (const messageId of messageIds) {
      const found = await store.findRecipientForFeedback(messageId, address);
      if (found) return found;
    }
  }
  // A reporter that redacts the recipient still names the message: with one message of that
  // Message-ID and one recipient on it, it is that one; anything else is a guess, and none is made.
  if (messageIds.length > 1) return null;
  const rows = await store.listRecipients(messageIds[0]!);
  return rows.length === 1 ? store.findRecipientForFeedback(messageIds[0]!, rows[0]!.recipientId) : null;
}
