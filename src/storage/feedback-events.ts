import type { WebhookEvent } from './webhook-outbox.ts';
import type { BounceClass } from '../mail/delivery-outcome.ts';
import type { RecipientState } from './store.ts';

/*
 * What comes back after delivery (src/feedback/): asynchronous bounces (DSNs and plain-text
 * bounces to a VERP return path), complaints (ARF reports to a feedback-loop address) and
 * unsubscribes, each recorded on the recipient it is about. Part of every Store.
 */

export type FeedbackKind = 'bounce' | 'complaint' | 'unsubscribe';
export const FEEDBACK_KINDS: readonly FeedbackKind[] = ['bounce', 'complaint', 'unsubscribe'];

/** One report about one recipient, as the feedback recorder hands it to the store. */
export interface NewFeedbackEvent {
  messageId: string;
  recipientId: number;
  /** The recipient address as its row holds it. */
  recipient: string;
  kind: FeedbackKind;
  at: number;
  /**
   * A bounce's RFC 3464 Action (failed, delayed, delivered, relayed, expanded): 'failed' bounces a
   * delivered recipient, the others are recorded only. Null for complaints and unsubscribes.
   */
  action: string | null;
  /** The SMTP reply code of the diagnostic, when it had one. */
  code: number | null;
  /** The enhanced status code (RFC 3463), e.g. "5.1.1". */
  enhanced: string | null;
  /** The remote's wording (Diagnostic-Code, the plain bounce's reply text), or the complaint's feedback type. */
  diagnostic: string | null;
  bounceClass: BounceClass | null;
  /** Who reported it: the Reporting-MTA of a DSN, the User-Agent or sender of an ARF report. */
  reporter: string | null;
  /** Further fields of the report worth keeping (Remote-MTA, Source-IP, Arrival-Date, ...), as JSON. */
  details: Record<string, unknown>;
  /** The egress IP that delivered the message to this recipient, when known. */
  egressIp: string | null;
  /**
   * The report's identity: one delivered twice (the remote retried after a 451) carries the same
   * fingerprint and is recorded once.
   */
  fingerprint: string;
}

/** A stored feedback event. */
export interface FeedbackEvent extends Omit<NewFeedbackEvent, 'fingerprint'> {
  id: number;
}

export interface FeedbackRecorded {
  id: number;
  /** The fingerprint was recorded before: nothing was written now. */
  duplicate: boolean;
  /** The recipient row changed from delivered to bounced. */
  bounced: boolean;
}

/** The recipient a report is about, with what the recorder needs of it and of its message. */
export interface FeedbackRecipient {
  messageId: string;
  recipientId: number;
  recipient: string;
  /** Lower-cased domain of the recipient. */
  domain: string;
  state: RecipientState;
  /** The egress IP of its last attempt: for a delivered recipient, the one that delivered it. */
  egressIp: string | null;
  /** The message's tenant; null for none. */
  tenant: string | null;
  /** The message's envelope sender. */
  sender: string;
}

export interface FeedbackEvents {
  /**
   * Stores the event durably, once per fingerprint. A new 'bounce' with Action 'failed' also
   * bounces its recipient when the row is 'delivered' (an asynchronous bounce after acceptance):
   * state 'bounced' with the bounce's code, enhanced code, wording and class as its last outcome
   * (the delivering attempt's stage, remote host and egress IP stay). Any other event changes no
   * recipient. A fingerprint recorded before returns that event's id with `duplicate` and writes
   * nothing. Rejects with DataRefusedError when the recipient row does not exist.
   */
  recordFeedback(event: NewFeedbackEvent, webhook?: WebhookEvent | null): Promise<FeedbackRecorded>;
  /** The message's feedback events, oldest first. */
  listFeedback(messageId: string): Promise<FeedbackEvent[]>;
  /**
   * The recipient of `messageId` a report names: by its row id, or by its address (ASCII case
   * ignored; the first row of that address). Null when the message or the recipient is unknown.
   */
  findRecipientForFeedback(messageId: string, recipient: number | string): Promise<FeedbackRecipient | null>;
  /**
   * The queue ids of the messages (not DSNs) whose Message-ID header is `messageIdHeader` exactly
   * (with its angle brackets), newest first, at most `limit`: several when a message was stored
   * as a copy per recipient, or when clients reuse a Message-ID.
   */
  findMessagesByHeaderId(messageIdHeader: string, limit: number): Promise<string[]>;
}
