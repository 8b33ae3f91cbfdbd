import type { StoredWebhookEvent } from '../storage/webhook-outbox.ts';

/**
 * The JSON body of a delivery, in the shape the Standard Webhooks specification suggests:
 * `{type, timestamp, data}`. `data` always has the same fields (null where they do not apply),
 * then the event's own (a message.accepted's sender and recipients, a complaint's details); the
 * common fields win a clash, so a part adding details cannot change what a receiver keys on. The
 * same event renders the same bytes on every attempt.
 */
export function webhookBody(event: StoredWebhookEvent): string {
  return JSON.stringify({
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
  });
}
