import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Rookery exports, on a registry owned by the composition root (no global
 * registry, so several daemons can run in one test process). Over 300 lines on purpose: the
 * catalogue of names the dashboard and alert rules in deploy/ are checked against, in one place.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly messagesAccepted = new Counter({
    name: 'rookery_messages_accepted_total',
    help: 'Messages committed to the queue, by source',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly bytesAccepted = new Counter({
    name: 'rookery_bytes_accepted_total',
    help: 'Bytes of the messages committed to the queue (as stored, signatures included), by source',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly recipientsAccepted = new Counter({
    name: 'rookery_recipients_accepted_total',
    help: 'Recipients committed to the queue',
    registers: [this.registry],
  });

  readonly tenantRecipientsAccepted = new Counter({
    name: 'rookery_tenant_recipients_accepted_total',
    help: 'Recipients committed to the queue for each tenant',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });

  readonly tenantRefused = new Counter({
    name: 'rookery_tenant_refused_total',
    help: "Messages refused for a tenant's limit (TENANT_RATE_LIMITED, TENANT_QUOTA_EXCEEDED)",
    labelNames: ['tenant', 'reason'] as const,
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

  readonly queueOldestAge = new Gauge({
    name: 'rookery_queue_oldest_age_seconds',
    help: 'How long the oldest recipient still queued or being delivered has waited, from acceptance (a scheduled send: from its send time); 0 when none waits. Read from the queue at each scrape',
    registers: [this.registry],
  });

  readonly dependencyReady = new Gauge({
    name: 'rookery_dependency_ready',
    help: 'Whether a dependency passed its readiness check at the last scrape (1) or not (0): storage (a write commits), redis (it answers; only when configured)',
    labelNames: ['dependency'] as const,
    registers: [this.registry],
  });

  readonly tlsCertificateExpiry = new Gauge({
    name: 'rookery_tls_certificate_expiry_timestamp_seconds',
    help: 'When the certificate a TLS listener presents expires (notAfter, Unix seconds), by listener (its config path) and address',
    labelNames: ['listener', 'address'] as const,
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

  readonly inboundSessions = new Counter({
    name: 'rookery_inbound_sessions_total',
    help: 'Sessions on the inbound listener (where bounces, complaints and unsubscribe mail come back)',
    registers: [this.registry],
  });

  readonly inboundSessionsActive = new Gauge({
    name: 'rookery_inbound_sessions_active',
    help: 'Sessions on the inbound listener open now',
    registers: [this.registry],
  });

  readonly inboundRejections = new Counter({
    name: 'rookery_inbound_rejections_total',
    help: 'Commands or messages the inbound listener refused, by reason code (RECIPIENT_NOT_ACCEPTED: not a VERP, FBL or unsubscribe address)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly feedbackReports = new Counter({
    name: 'rookery_feedback_reports_total',
    help: 'Messages the inbound listener read, by what they were (dsn, plain-bounce, arf, unsubscribe, other) and what came of them (recorded, duplicate, unmatched, ignored, malformed, unauthenticated: a complaint to a feedback-loop address no trusted reporter signed)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });

  readonly feedbackEvents = new Counter({
    name: 'rookery_feedback_events_total',
    help: 'Feedback events recorded on recipients: bounce (by RFC 3464 action: failed, delayed), complaint, unsubscribe',
    labelNames: ['kind', 'action'] as const,
    registers: [this.registry],
  });

  readonly outboundConnections = new Gauge({
    name: 'rookery_outbound_connections',
    help: 'Open outbound SMTP connections, by egress IP',
    labelNames: ['egress_ip'] as const,
    registers: [this.registry],
  });

  readonly sitesDown = new Gauge({
    name: 'rookery_sites_down',
    help: 'Destination sites no egress IP can reach now: their mail is held (deferred without attempts) until a probe gets through',
    registers: [this.registry],
  });

  readonly pathsDown = new Gauge({
    name: 'rookery_paths_down',
    help: 'Destination sites an egress IP cannot reach now (connections refused, timed out, or refused at the greeting), by egress IP',
    labelNames: ['egress_ip'] as const,
    registers: [this.registry],
  });

  readonly siteHeld = new Counter({
    name: 'rookery_site_held_total',
    help: 'Recipients deferred without an attempt because their destination site is down (in bulk, or when claimed)',
    registers: [this.registry],
  });

  readonly siteProbes = new Counter({
    name: 'rookery_site_probes_total',
    help: 'Probe connections to destination sites that could not be reached, by result (up, down)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly queuePauses = new Gauge({
    name: 'rookery_queue_pauses',
    help: 'Operator pauses in force, by scope (domain, pool, tenant, egress-ip), as this node last read them',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });

  readonly recipientsCancelled = new Counter({
    name: 'rookery_recipients_cancelled_total',
    help: 'Queued recipients an operator cancelled (POST /v1/queue/bounce, DELETE /v1/messages/{id})',
    registers: [this.registry],
  });

  readonly suppressionsAdded = new Counter({
    name: 'rookery_suppressions_added_total',
    help: 'Entries written to the suppression list, by reason and by what caused them (attempt: a permanent failure; api: a request or an import)',
    labelNames: ['reason', 'source'] as const,
    registers: [this.registry],
  });

  readonly recipientsSuppressed = new Counter({
    name: 'rookery_recipients_suppressed_total',
    help: 'Recipients found on the suppression list at acceptance, by door (smtp, http) and what was done (reject: refused; drop: stored final, never attempted)',
    labelNames: ['door', 'action'] as const,
    registers: [this.registry],
  });

  readonly outboundTlsSessions = new Counter({
    name: 'rookery_outbound_tls_sessions_total',
    help: 'New outbound SMTP sessions by the TLS policy they were held to and their TLS result (success, or an RFC 8460 failure type)',
    labelNames: ['policy', 'result'] as const,
    registers: [this.registry],
  });

  readonly mtaStsFetches = new Counter({
    name: 'rookery_mta_sts_fetches_total',
    help: 'MTA-STS policy fetches by result: fetched, or the failure (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly tlsReports = new Counter({
    name: 'rookery_tls_reports_total',
    help: 'Daily TLS reports (RFC 8460) by result: sent, skipped (the domain asks for none), failed (tried again later)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly dsnsGenerated = new Counter({
    name: 'rookery_dsns_generated_total',
    help: 'Delivery status notifications queued to senders',
    registers: [this.registry],
  });

  readonly ipInfo = new Gauge({
    name: 'rookery_ip_info',
    help: 'Always 1: the pool of each egress IP of this node and the name it greets with, to select the per-IP series of a pool (join on egress_ip)',
    labelNames: ['egress_ip', 'pool', 'hostname'] as const,
    registers: [this.registry],
  });

  readonly ipAttempts = new Counter({
    name: 'rookery_ip_attempts_total',
    help: 'Delivery attempts per recipient through an egress IP of the pool, by provider and disposition (delivered, transient, permanent) after the reaction rules',
    labelNames: ['egress_ip', 'provider', 'disposition'] as const,
    registers: [this.registry],
  });

  readonly ipWarmupDay = new Gauge({
    name: 'rookery_ip_warmup_day',
    help: 'Day of the warm-up plan an egress IP is on (0 = first day); absent once warm',
    labelNames: ['egress_ip', 'plan'] as const,
    registers: [this.registry],
  });

  readonly ipWarmupUsage = new Gauge({
    name: 'rookery_ip_warmup_usage',
    help: 'Messages counted against the warm-up cap in the current window, by egress IP, provider and window (day, hour)',
    labelNames: ['egress_ip', 'provider', 'window'] as const,
    registers: [this.registry],
  });

  readonly ipWarmupCap = new Gauge({
    name: 'rookery_ip_warmup_cap',
    help: 'Warm-up cap of the current window, by egress IP, provider and window (day, hour)',
    labelNames: ['egress_ip', 'provider', 'window'] as const,
    registers: [this.registry],
  });

  readonly ipReputationScore = new Gauge({
    name: 'rookery_ip_reputation_score',
    help: 'Reputation score (0..1, 1 = clean) of an egress IP with a provider over the sliding window',
    labelNames: ['egress_ip', 'provider'] as const,
    registers: [this.registry],
  });

  readonly ipReputationInputs = new Gauge({
    name: 'rookery_ip_reputation_inputs',
    help: 'Outcomes in the reputation window: accepted, deferred, blocked, complaints',
    labelNames: ['egress_ip', 'provider', 'kind'] as const,
    registers: [this.registry],
  });

  readonly ipWeight = new Gauge({
    name: 'rookery_ip_weight',
    help: 'Effective selection weight of an egress IP for a provider (configured weight lowered by a poor reputation)',
    labelNames: ['egress_ip', 'provider'] as const,
    registers: [this.registry],
  });

  readonly ipRestricted = new Gauge({
    name: 'rookery_ip_restricted',
    help: 'An egress IP suspended or throttled (1) for a provider ("*" = all), with the reason; "other:sites" counts the sites of the fallback provider it is restricted toward',
    labelNames: ['egress_ip', 'provider', 'action', 'reason'] as const,
    registers: [this.registry],
  });

  readonly ipBlocklisted = new Gauge({
    name: 'rookery_ip_blocklisted',
    help: 'An egress IP listed (1) or not (0) on a DNS blocklist, as its last answered lookup found (a failed or refused lookup changes nothing)',
    labelNames: ['egress_ip', 'list'] as const,
    registers: [this.registry],
  });

  readonly blocklistLookups = new Counter({
    name: 'rookery_blocklist_lookups_total',
    help: 'DNS blocklist lookups of egress IPs by list and result: listed, clear, refused (the list refused to answer, 127.255.255.x: no listing can be seen), error (timeout, SERVFAIL, unexpected answer)',
    labelNames: ['list', 'result'] as const,
    registers: [this.registry],
  });

  readonly selectionWaits = new Counter({
    name: 'rookery_selection_waits_total',
    help: 'Deliveries that found no eligible egress IP and wait in the queue (throttled, not failed), by pool and reason',
    labelNames: ['pool', 'reason'] as const,
    registers: [this.registry],
  });

  readonly poolFallbacks = new Counter({
    name: 'rookery_pool_fallbacks_total',
    help: 'Egress IP choices for mail of a pool that has no egress IP (a reload removed its last), made in the default pool instead, by the pool of the mail',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });

  readonly selectionSeconds = new Histogram({
    name: 'rookery_selection_seconds',
    help: 'Time to choose an egress IP for a delivery (eligibility checks included)',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [this.registry],
  });

  readonly dkimSigned = new Counter({
    name: 'rookery_dkim_signed_total',
    help: 'Messages DKIM-signed at acceptance, by signing domain',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });

  readonly dkimSignSeconds = new Histogram({
    name: 'rookery_dkim_sign_seconds',
    help: 'Time to DKIM-sign one message at acceptance (all its signatures)',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });

  readonly dkimUnsigned = new Counter({
    name: 'rookery_dkim_unsigned_total',
    help: 'Messages accepted without a DKIM signature, by reason (no key for the From domain and no fallback, no From header...)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly unsubscribes = new Counter({
    name: 'rookery_unsubscribes_total',
    help: 'Recipients newly suppressed for their tenant by an unsubscribe, by channel: https (one-click link) or mailto',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });

  readonly unsubscribesRefused = new Counter({
    name: 'rookery_unsubscribes_refused_total',
    help: 'Unsubscribe requests that recorded nothing, by channel and reason (malformed, forged, expired, not-one-click, rate-limited...)',
    labelNames: ['channel', 'reason'] as const,
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
