import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { zeroAlertedSeries } from '../../src/alerted-series.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { WebhookMetrics } from '../../src/webhooks/webhook-metrics.ts';

/** The exposition lines of `name` (labelled series only). */
async function series(registry: Registry, name: string): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((line) => line.startsWith(`${name}{`));
}

describe('counters the alerts take increase() of exist at 0 before their first event', () => {
  it('DKIM reasons, feedback events, dropped complaints, MTA-STS results, and each egress IP\'s outcomes and final results', async () => {
    const metrics = new Metrics({ processMetrics: false });
    zeroAlertedSeries(metrics, ['203.0.113.7', '2001:db8::25']);
    expect(await series(metrics.registry, 'rookery_dkim_unsigned_total')).toEqual([
      'rookery_dkim_unsigned_total{reason="no-key"} 0',
      'rookery_dkim_unsigned_total{reason="no-from-domain"} 0',
      'rookery_dkim_unsigned_total{reason="error"} 0',
    ]);
    expect(await series(metrics.registry, 'rookery_feedback_events_total')).toEqual([
      'rookery_feedback_events_total{kind="complaint",action="none"} 0',
      'rookery_feedback_events_total{kind="bounce",action="failed"} 0',
      'rookery_feedback_events_total{kind="bounce",action="delayed"} 0',
    ]);
    expect(await series(metrics.registry, 'rookery_feedback_reports_total')).toEqual(['rookery_feedback_reports_total{kind="arf",result="unauthenticated"} 0']);
    expect(await series(metrics.registry, 'rookery_mta_sts_fetches_total')).toHaveLength(4);
    expect(await series(metrics.registry, 'rookery_delivery_outcomes_total')).toHaveLength(8);
    expect(await series(metrics.registry, 'rookery_recipients_final_total')).toEqual([
      'rookery_recipients_final_total{egress_ip="203.0.113.7",result="delivered"} 0',
      'rookery_recipients_final_total{egress_ip="203.0.113.7",result="deferred"} 0',
      'rookery_recipients_final_total{egress_ip="203.0.113.7",result="bounced"} 0',
      'rookery_recipients_final_total{egress_ip="2001:db8::25",result="delivered"} 0',
      'rookery_recipients_final_total{egress_ip="2001:db8::25",result="deferred"} 0',
      'rookery_recipients_final_total{egress_ip="2001:db8::25",result="bounced"} 0',
    ]);
  });

  it('labels the outcomes "default" without egress IPs, and leaves counted series alone when zeroed again (a reload)', async () => {
    const metrics = new Metrics({ processMetrics: false });
    zeroAlertedSeries(metrics, []);
    metrics.dkimUnsigned.inc({ reason: 'no-key' });
    metrics.recipientsFinal.inc({ egress_ip: 'default', result: 'delivered' }, 5);
    zeroAlertedSeries(metrics, []);
    expect(await series(metrics.registry, 'rookery_dkim_unsigned_total')).toContain('rookery_dkim_unsigned_total{reason="no-key"} 1');
    expect(await series(metrics.registry, 'rookery_recipients_final_total')).toContain('rookery_recipients_final_total{egress_ip="default",result="delivered"} 5');
    expect(await series(metrics.registry, 'rookery_delivery_outcomes_total')).toEqual([
      'rookery_delivery_outcomes_total{egress_ip="default",disposition="delivered"} 0',
      'rookery_delivery_outcomes_total{egress_ip="default",disposition="transient"} 0',
      'rookery_delivery_outcomes_total{egress_ip="default",disposition="permanent"} 0',
      'rookery_delivery_outcomes_total{egress_ip="default",disposition="throttled"} 0',
    ]);
  });

  it('webhook outcomes', async () => {
    const registry = new Registry();
    new WebhookMetrics(registry);
    expect(await series(registry, 'rookery_webhook_deliveries_total')).toEqual([
      'rookery_webhook_deliveries_total{outcome="delivered"} 0',
      'rookery_webhook_deliveries_total{outcome="retry"} 0',
      'rookery_webhook_deliveries_total{outcome="failed"} 0',
    ]);
  });
});
