import type { BounceClass } from '../mail/delivery-outcome.ts';

/*
 * What recorded feedback asks of the parts outside this folder, handed in as functions: the
 * tenant's suppression list (an address that bounced hard or complained is not mailed again)
 * and the webhook events of the tenant's endpoints.
 */

/** An address to suppress for a tenant, and why. */
export interface SuppressionRequest {
  /** The message's tenant; null for mail of no tenant. */
  tenant: string | null;
  address: string;
  reason: 'hard-bounce' | 'complaint';
  source: { kind: 'feedback'; feedbackId: number; messageId: string; recipientId: number };
  createdAt: number;
  /** Until removed. */
  expiresAt: null;
}

/** Adds the address to the suppression list; safe to call again for the same feedbackId. */
export type Suppress = (entry: SuppressionRequest) => Promise<void>;

interface RecipientFields {
  /** The feedback event it comes from: the same id when a report delivered twice is seen again. */
  feedbackId: number;
  messageId: string;
  recipientId: number;
  recipient: string;
  tenant: string | null;
  at: number;
  /** Who reported it (Reporting-MTA, the feedback loop). */
  reporter: string | null;
}

export type FeedbackWebhookEvent =
  /** A recipient bounced after its delivery had been accepted (a DSN or bounce to its return path). */
  | ({ type: 'recipient.bounced'; async: true; code: number | null; enhanced: string | null; diagnostic: string | null; bounceClass: BounceClass | null } & RecipientFields)
  /** The recipient complained (an ARF report from a feedback loop). */
  | ({ type: 'recipient.complained'; feedbackType: string | null; sourceIp: string | null } & RecipientFields);

/** Hands the event to the webhook outbox; safe to call again with the same feedbackId. */
export type EmitWebhookEvent = (event: FeedbackWebhookEvent) => Promise<void>;
