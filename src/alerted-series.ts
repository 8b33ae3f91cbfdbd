import type { StsLookup } from './engine/tls/mta-sts-resolver.ts';
import type { Disposition } from './mail/delivery-outcome.ts';
import { ipLabel, type Metrics } from './observability/metrics.ts';
import type { UnsignedReason } from './sender-domains/signer.ts';

/**
 * The labelled counters the alert rules and the dashboard in deploy/ take increase() or rate()
 * of, created at 0 before their first event. prom-client shows a labelled series only from its
 * first inc, and increase() over a series that appears at 1 sees no increase: the first unsigned
 * message, complaint, dropped complaint or failed MTA-STS fetch after a start would never alert. The records below
 * list every label value of their type, so a new one fails to compile until it is added here.
 * (The blocklist watch zeroes its lookups per configured list, WebhookMetrics its outcomes.)
 */

const UNSIGNED_REASONS: Record<UnsignedReason, null> = { 'no-key': null, 'no-from-domain': null, error: null };
const DISPOSITIONS: Record<Disposition, null> = { delivered: null, transient: null, permanent: null, throttled: null };
/** rookery_recipients_final_total's results (delivery-engine.ts: a recipient left queued is deferred). */
const FINAL_RESULTS = ['delivered', 'deferred', 'bounced'] as const;
/** The feedback events the recorder counts: complaints, and bounces by RFC 3464 action. */
const FEEDBACK_EVENTS = [
  { kind: 'complaint', action: 'none' },
  { kind: 'bounce', action: 'failed' },
  { kind: 'bounce', action: 'delayed' },
] as const;
/** Complaints to a feedback-loop address that no trusted reporter signed (RookeryComplaintsUnauthenticated). */
const UNAUTHENTICATED_REPORTS = { kind: 'arf', result: 'unauthenticated' } as const;
const STS_FETCH_RESULTS: Record<Extract<StsLookup, { kind: 'failed' }>['failure'] | 'fetched', null> = {
  fetched: null,
  'sts-policy-fetch-error': null,
  'sts-policy-invalid': null,
  'sts-webpki-invalid': null,
};

/**
 * Zeroes the series for this configuration; `egressIps` are the node's `ips` (none: mail goes
 * from the OS default address, labelled `default`). At start and after a reload, which may add
 * IPs; a series already counting is left as it is (inc by 0).
 */
export function zeroAlertedSeries(metrics: Metrics, egressIps: readonly string[]): void {
  for (const reason of Object.keys(UNSIGNED_REASONS)) metrics.dkimUnsigned.inc({ reason }, 0);
  for (const labels of FEEDBACK_EVENTS) metrics.feedbackEvents.inc(labels, 0);
  metrics.feedbackReports.inc(UNAUTHENTICATED_REPORTS, 0);
  for (const result of Object.keys(STS_FETCH_RESULTS)) metrics.mtaStsFetches.inc({ result }, 0);
  const ips = egressIps.length ? egressIps : [ipLabel(null)];
  for (const egress_ip of ips) {
    for (const disposition of Object.keys(DISPOSITIONS)) metrics.deliveryOutcomes.inc({ egress_ip, disposition }, 0);
    for (const result of FINAL_RESULTS) metrics.recipientsFinal.inc({ egress_ip, result }, 0);
  }
}
