import { createHash } from 'node:crypto';
import type { StoredWebhookEvent } from '../storage/webhook-outbox.ts';

/**
 * The JSON of a delivery, in the shape the Standard Webhooks specification suggests:
 * `{type, timestamp, data}`. `data` always has the same fields (null where they do not apply),
 * then the event's own (a message.accepted's sender and recipients, a complaint's details); the
 * common fields win a clash, so a part adding details cannot change what a receiver keys on. The
 * same event renders the same bytes on every attempt.
 */
export function webhookPayload(event: StoredWebhookEvent): { type: string; timestamp: string; data: Record<string, unknown> } {
  return {
    type: event.type,
    timestamp: new Date(event.at).toISOString(),
    data: {
      ...(event.data ?? {}),
      messageId: event.messageId,
      recipient: event.recipient,
      tenant: event.tenant,
      tags: event.tags,
      metadata: event.metadata,
      egressIp: event.egressIp,
      reply: event.reply && { code: event.reply.code, enhanced: event.reply.enhanced, text: event.reply.text, remoteHost: event.reply.remoteHost ?? null },
      attempt: event.attempt,
      bounceClass: event.bounceClass,
    },
  };
}

/** The body of a delivery posted alone. */
export function webhookBody(event: StoredWebhookEvent): string {
  return JSON.stringify(webhookPayload(event));
}

/**
 * One event of a batch (an endpoint taking several events per request, whose body is a JSON array
 * of these): its payload led by its delivery id, the webhook-id it has alone, by which a receiver
 * deduplicates events sent again in another batch.
 */
export function webhookBatchItem(id: string, event: StoredWebhookEvent): string {
  return JSON.stringify({ id, ...webhookPayload(event) });
}

/** The webhook-id of a batch: the same for the same deliveries (a retry of it), another for another set. */
export function webhookBatchId(ids: readonly string[]): string {
  return `batch_${createHash('sha256').update(ids.join('\n')).digest('base64url').slice(0, 24)}`;
}
