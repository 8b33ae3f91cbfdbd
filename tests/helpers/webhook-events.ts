import { WEBHOOK_EVENT_TYPES, type StoredWebhookEvent, type WebhookEventType } from '../../src/storage/webhook-outbox.ts';
import type { Store } from '../../src/storage/store.ts';

/**
 * A webhook endpoint of `tenant` (null: mail of no tenant) subscribed to every event (or to
 * `eventTypes`), so a test
 * reads from the store's outbox which events a change wrote, in the transaction it wrote them.
 * Nothing is sent: no dispatcher runs in the tests that use it.
 */
export async function subscribeToEverything(
  store: Pick<Store, 'createWebhook'>,
  tenant: string | null,
  eventTypes: readonly WebhookEventType[] = WEBHOOK_EVENT_TYPES,
): Promise<string> {
  const id = `wh_test_${tenant ?? 'none'}`;
  await store.createWebhook({
    id,
    tenant,
    url: 'https://hooks.example.com/test',
    eventTypes: [...eventTypes],
    description: null,
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    createdAt: Date.now(),
  });
  return id;
}

/** The events the outbox holds for the endpoint, oldest first. */
export async function outboxEvents(store: Pick<Store, 'listWebhookDeliveries'>, webhookId: string): Promise<StoredWebhookEvent[]> {
  const deliveries = await store.listWebhookDeliveries(webhookId, { state: null, after: null, limit: 1000 });
  return deliveries.reverse().map((d) => d.event);
}
