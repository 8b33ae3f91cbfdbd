import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WebhookOutboxStats } from '../storage/webhook-outbox.ts';

export const WEBHOOK_ATTEMPT_OUTCOMES = ['delivered', 'retry', 'failed'] as const;
export type WebhookAttemptOutcome = (typeof WEBHOOK_ATTEMPT_OUTCOMES)[number];

/** One POST: how long it took, and what came of its deliveries (its one event, or each of a batch's). */
export type WebhookPost = { seconds: number } & Record<WebhookAttemptOutcome, number>;

/** What the dispatcher counts of each POST (on the dispatcher thread, a tally sent to the daemon's registry). */
export interface WebhookAttemptMetrics {
  posted(post: WebhookPost): void;
}

/** The webhook metrics, on the daemon's registry (Metrics.registry). */
export class WebhookMetrics implements WebhookAttemptMetrics {
  readonly deliveries: Counter<'outcome'>;
  readonly latency: Histogram;
  readonly pending: Gauge;
  readonly held: Gauge;
  readonly endpointsDisabled: Gauge;

  constructor(registry: Registry) {
    this.deliveries = new Counter({
      name: 'rookery_webhook_deliveries_total',
      help: 'Webhook deliveries attempted, by outcome: delivered (2xx), retry (failed, tried again later), failed (failed past the retry window: given up); a batch counts each of its events',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'rookery_webhook_delivery_seconds',
      help: 'Time of one webhook POST (one event, or a batch), from connecting (or taking a kept-alive connection) to the end of the answer',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    this.pending = new Gauge({
      name: 'rookery_webhook_outbox_pending',
      help: 'Webhook deliveries waiting in the outbox (due or retrying later) for enabled endpoints, read at each scrape',
      registers: [registry],
    });
    this.held = new Gauge({
      name: 'rookery_webhook_outbox_held',
      help: 'Webhook deliveries held for disabled endpoints (sent when the endpoint is enabled again), read at each scrape',
      registers: [registry],
    });
    this.endpointsDisabled = new Gauge({
      name: 'rookery_webhook_endpoints_disabled',
      help: 'Webhook endpoints disabled (every delivery failed for 3 days, or by an operator), read at each scrape',
      registers: [registry],
    });
    // At 0 from the start: increase() sees the first failure after a start only over a series that was there before it.
    for (const outcome of WEBHOOK_ATTEMPT_OUTCOMES) this.deliveries.inc({ outcome }, 0);
  }

  posted(post: WebhookPost): void {
    for (const outcome of WEBHOOK_ATTEMPT_OUTCOMES) if (post[outcome] > 0) this.deliveries.inc({ outcome }, post[outcome]);
    this.latency.observe(post.seconds);
  }

  /** Sets the gauges from the store's counts (before a scrape). */
  show(stats: WebhookOutboxStats): void {
    this.pending.set(stats.pending);
    this.held.set(stats.held);
    this.endpointsDisabled.set(stats.disabledEndpoints);
  }
}
