import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Rookery exports, on a registry owned by the composition root (no global
 * registry, so several daemons can run in one test process).
 */
export class Metrics {
  readonly registry = new Registry();

  readonly messagesAccepted = new Counter({
    name: 'rookery_messages_accepted_total',
    help: 'Messages committed to the queue, by source',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly recipientsAccepted = new Counter({
    name: 'rookery_recipients_accepted_total',
    help: 'Recipients committed to the queue',
    registers: [this.registry],
  });

  readonly deliveryOutcomes = new Counter({
    name: 'rookery_delivery_outcomes_total',
    help: 'Delivery attempts per recipient, by egress IP and disposition (delivered, transient, permanent, throttled)',
    labelNames: ['egress_ip', 'disposition'] as const,
    registers: [this.registry],
  });

  readonly recipientsFinal = new Counter({
    name: 'rookery_recipients_final_total',
    help: 'Recipients reaching a final state: delivered, deferred (retry scheduled), bounced, by egress IP',
    labelNames: ['egress_ip', 'result'] as const,
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'rookery_queue_recipients',
    help: 'Recipient rows by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly deliveryLatency = new Histogram({
    name: 'rookery_delivery_latency_seconds',
    help: 'Time from acceptance to successful delivery',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 3600, 14400, 86400],
    registers: [this.registry],
  });

  readonly smtpSessions = new Counter({
    name: 'rookery_smtp_sessions_total',
    help: 'Inbound SMTP sessions',
    registers: [this.registry],
  });

  readonly smtpSessionsActive = new Gauge({
    name: 'rookery_smtp_sessions_active',
    help: 'Inbound SMTP sessions open now',
    registers: [this.registry],
  });

  readonly smtpRejections = new Counter({
    name: 'rookery_smtp_rejections_total',
    help: 'Inbound SMTP commands or messages rejected, by reason code',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly outboundConnections = new Gauge({
    name: 'rookery_outbound_connections',
    help: 'Open outbound SMTP connections, by egress IP',
    labelNames: ['egress_ip'] as const,
    registers: [this.registry],
  });

  readonly dsnsGenerated = new Counter({
    name: 'rookery_dsns_generated_total',
    help: 'Delivery status notifications queued to senders',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'rookery_' });
  }
}

/** Label value for an egress IP; the OS default source address has no IP of its own. */
export function ipLabel(ip: string | null): string {
  return ip ?? 'default';
}
