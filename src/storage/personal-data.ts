import type { FeedbackEvent } from './feedback-events.ts';
import type { AttemptEvent, MessageInfo, RecipientRow } from './store.ts';
import type { SuppressionRecord } from './suppressions.ts';

/*
 * Personal data: what the store holds about one recipient address, for a data-subject request,
 * and its erasure. Part of every Store. The address is compared without regard to case, of
 * every script's letters (JÖRG@ is jörg@), as PostgreSQL's lower() compares them (case-folding.ts).
 *
 * `tenant` confines both to one tenant's data: a name, '' for mail of no tenant, or null for
 * every tenant's. A message, a DSN and a webhook delivery belong to the tenant of their mail, a
 * suppression entry to its list, an audit entry to the tenant of the token that made it; an entry
 * made by a token of no tenant (the platform's staff) to every tenant: it does not record which
 * tenant's mail a request concerned, and it is the platform's own record of the address, so a
 * tenant's erasure rewrites it too.
 *
 * In scope: messages where the address is a recipient. A message where it is the envelope sender,
 * or that names it only in its headers or body (Cc without the envelope, the text), is not found
 * and not erased; DSNs, which quote the original's recipients, are.
 */

/** A message the address is a recipient of, with what the store recorded about the address's rows of it (never the body). */
export interface RecipientMessage {
  message: MessageInfo;
  /** The address's rows of the message (a message may name it twice, in two spellings). */
  recipients: RecipientRow[];
  /** The attempts of those rows, oldest first. */
  events: AttemptEvent[];
  /** What came back about those rows: asynchronous bounces, complaints, unsubscribes. */
  feedback: FeedbackEvent[];
}

export interface RecipientData {
  /** Newest first, at most the limit asked. */
  messages: RecipientMessage[];
  /** More messages hold the address than were answered. */
  moreMessages: boolean;
  /** The suppression entries of the address (an erased one has a null address: its hash still matches). */
  suppressions: SuppressionRecord[];
  /** DSNs Rookery made that quote the address (a bounce report about it, or about a message to it). */
  dsns: number;
  /** Webhook deliveries (any state) whose event names the address. */
  webhookDeliveries: number;
}

/** What an erasure did, by kind. */
export interface ErasureCounts {
  /** Messages deleted whole (body, every recipient row, their events and feedback): no other recipient of theirs was waiting. */
  messages: number;
  /**
   * Messages whose other recipients were still queued or in delivery: the address's rows went now,
   * the message (its body names the address) goes once they are final (purgeErasedMessages).
   */
  pending: number;
  /** Rows of the address that were queued or in delivery: cancelled without a DSN (one would carry the address back to the sender). */
  cancelled: number;
  /** DSNs deleted: those quoting the address, whatever their state. */
  dsns: number;
  /** Suppression entries kept without their address: the keyed hash still refuses it. */
  suppressions: number;
  webhookDeliveries: number;
  /** Idempotency records whose stored answer named it. */
  idempotencyRecords: number;
  /** Audit entries whose target or change named it: the address replaced by "[erased]". */
  auditEntries: number;
}

/** What replaces the address in the records that are kept (audit entries). */
export const ERASED = '[erased]';

export interface PersonalData {
  /**
   * Everything the store holds about `address` within `tenant` (see the opening comment): the
   * messages it is a recipient of, newest first, at most `limit`; its suppression entries; and
   * how many DSNs and webhook deliveries name it. The last two read every row of their table.
   */
  recipientData(address: string, tenant: string | null, limit: number): Promise<RecipientData>;

  /**
   * Erases `address` within `tenant`, in chunks, each its own transaction (an erasure cut short
   * is completed by running it again): rows to it that are queued or in delivery are cancelled
   * without a DSN (the result of an attempt in flight is then discarded as stale, though the
   * remote may still have received it); every message it is a recipient of is deleted, or, while
   * another recipient still waits, loses the address's rows and is marked to go once that one is
   * final; DSNs quoting it are deleted; its suppression entries keep only the keyed hash; webhook
   * deliveries and idempotency records naming it are deleted (of a tenant's erasure, only the
   * records answering for the messages it erased); audit entries naming it keep their record with
   * the address replaced by ERASED. Nothing is written about the erasure itself (no webhook event,
   * no DSN). Returns the counts and the keyed hash of the address (hex), which names the erasure
   * in an audit entry without naming the address.
   */
  eraseRecipient(address: string, tenant: string | null, now: number): Promise<{ counts: ErasureCounts; addressHash: string }>;

  /**
   * Deletes the messages an erasure left pending once none of their recipients is queued or in
   * delivery, together with the DSNs made about them since the erasure (they quote the original's
   * headers) once those are final too; returns how many messages went. The retention sweeper
   * calls it.
   */
  purgeErasedMessages(now: number): Promise<number>;
}
