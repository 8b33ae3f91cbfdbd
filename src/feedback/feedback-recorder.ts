import type { Clock } from '../clock.ts';
import type { ProviderName, ReputationFeed } from '../ippool/contracts.ts';
import type { BounceClass, DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { FeedbackKind, FeedbackRecipient, FeedbackRecorded } from '../storage/feedback-events.ts';
import type { Store } from '../storage/store.ts';
import type { WebhookEvent } from '../storage/webhook-outbox.ts';

/**
 * What a bounce or complaint about one recipient sets off:
 *  1. the event is recorded on the recipient (a failed bounce bounces a delivered recipient),
 *     with its webhook event (recipient.bounced, recipient.complained) in the same transaction;
 *  2. reputation: a complaint counts against the egress IP that delivered the message with the
 *     recipient's provider (recordComplaint); a failed bounce is fed as that IP's outcome, so a
 *     policy or spam refusal counts as blocked and an unknown user does not (reputationInputOf);
 *  3. suppression: a complaint, and a hard bounce (5.1.x: no such mailbox), suppress the address
 *     for the message's tenant.
 * A report delivered twice is recorded once (its fingerprint), with one webhook event; the
 * suppression is written again (an upsert), so a retry after it failed completes it; reputation
 * counts the report once.
 */

export interface FeedbackRecorderDeps {
  store: Pick<Store, 'recordFeedback' | 'addSuppressions'>;
  reputation: Pick<ReputationFeed, 'record' | 'recordComplaint'>;
  /** The provider group of a recipient domain, as the egress pool groups providers (by its MX hosts). */
  providerOf: (domain: string) => Promise<ProviderName>;
  clock: Clock;
  logger: Logger;
  metrics: Pick<Metrics, 'feedbackEvents'>;
}

/** One report about one recipient, as read from the message that brought it. */
export interface FeedbackReport {
  recipient: FeedbackRecipient;
  kind: Exclude<FeedbackKind, 'unsubscribe'>;
  /** A bounce's RFC 3464 Action (failed, delayed); null for a complaint. */
  action: 'failed' | 'delayed' | null;
  code: number | null;
  enhanced: string | null;
  /** The remote's wording for a bounce; the feedback type for a complaint. */
  diagnostic: string | null;
  bounceClass: BounceClass | null;
  reporter: string | null;
  details: Record<string, unknown>;
  fingerprint: string;
}

/** Enhanced codes of a hard bounce: the address does not exist (RFC 3463 X.1.x, 5.1.10 included). */
const HARD_BOUNCE = /^5\.1\.\d{1,3}$/;

export class FeedbackRecorder {
  private readonly log: Logger;

  constructor(private readonly deps: FeedbackRecorderDeps) {
    this.log = deps.logger.child({ component: 'feedback' });
  }

  /** Records the report and sets off its effects; rejects when the store or an effect fails (the sender retries). */
  async record(report: FeedbackReport): Promise<FeedbackRecorded> {
    const { recipient } = report;
    const at = this.deps.clock.now();
    const recorded = await this.deps.store.recordFeedback({
      messageId: recipient.messageId,
      recipientId: recipient.recipientId,
      recipient: recipient.recipient,
      kind: report.kind,
      at,
      action: report.action,
      code: report.code,
      enhanced: report.enhanced,
      diagnostic: report.diagnostic,
      bounceClass: report.bounceClass,
      reporter: report.reporter,
      details: report.details,
      egressIp: recipient.egressIp,
      fingerprint: report.fingerprint,
    }, webhookEventOf(report, at));
    const fields = { messageId: recipient.messageId, recipientId: recipient.recipientId, feedbackId: recorded.id, ip: recipient.egressIp };
    if (recorded.duplicate) {
      this.log.info({ event: 'feedback.report.duplicate', ...fields, kind: report.kind }, 'report seen before; its effects are completed, not repeated');
    } else {
      this.deps.metrics.feedbackEvents.inc({ kind: report.kind, action: report.action ?? 'none' });
      this.log.info(
        { event: `feedback.${report.kind}.recorded`, ...fields, action: report.action, enhanced: report.enhanced, bounceClass: report.bounceClass, bounced: recorded.bounced },
        report.kind === 'complaint' ? 'complaint recorded' : `${report.action ?? ''} bounce recorded`,
      );
      await this.countAgainstIp(report, at);
    }
    if (report.action === 'delayed') return recorded;
    await this.suppress(report, recorded.id, at);
    return recorded;
  }

  private async countAgainstIp(report: FeedbackReport, at: number): Promise<void> {
    const ip = report.recipient.egressIp;
    if (!ip || report.action === 'delayed') return;
    const provider = await this.deps.providerOf(report.recipient.domain);
    if (report.kind === 'complaint') return this.deps.reputation.recordComplaint(ip, provider, at);
    const outcome: DeliveryOutcome = {
      disposition: 'permanent',
      code: report.code,
      enhanced: report.enhanced,
      response: report.diagnostic ?? '',
      stage: 'dot',
      bounceClass: report.bounceClass ?? 'other',
      remoteHost: null,
      egressIp: ip,
    };
    this.deps.reputation.record(ip, provider, outcome, at);
  }

  private async suppress(report: FeedbackReport, feedbackId: number, at: number): Promise<void> {
    const hard = report.kind === 'bounce' && report.enhanced !== null && HARD_BOUNCE.test(report.enhanced);
    if (report.kind !== 'complaint' && !hard) return;
    const { recipient } = report;
    await this.deps.store.addSuppressions([{
      tenant: recipient.tenant,
      address: recipient.recipient,
      reason: report.kind === 'complaint' ? 'complaint' : 'hard-bounce',
      source: { kind: 'feedback', feedbackId, messageId: recipient.messageId, recipientId: recipient.recipientId },
      createdAt: at,
      expiresAt: null,
    }]);
  }
}

/** The webhook event of a report: recipient.complained, or recipient.bounced (asynchronous); none for a delay. */
function webhookEventOf(report: FeedbackReport, at: number): WebhookEvent | null {
  if (report.action === 'delayed') return null;
  const { recipient } = report;
  const base = { tenant: recipient.tenant, messageId: recipient.messageId, recipient: recipient.recipient, at, egressIp: recipient.egressIp };
  if (report.kind === 'complaint') {
    const sourceIp = typeof report.details.sourceIp === 'string' ? report.details.sourceIp : null;
    return { type: 'recipient.complained', ...base, data: { feedbackType: report.diagnostic, sourceIp, reporter: report.reporter } };
  }
  return {
    type: 'recipient.bounced',
    ...base,
    reply: { code: report.code, enhanced: report.enhanced, text: report.diagnostic ?? '' },
    data: { async: true, bounceClass: report.bounceClass, reporter: report.reporter },
  };
}
