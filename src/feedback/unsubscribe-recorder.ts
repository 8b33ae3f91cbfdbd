import { domainOf } from '../mail/address.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Suppressions } from '../storage/suppressions.ts';

/**
 * What an unsubscribe does, whichever way it came (the https link or the mailto address): the
 * recipient is suppressed for the tenant the message was sent for, counted, logged (the
 * recipient's domain only: the address stays out of the log), and reported to the tenant's
 * webhooks (recipient.unsubscribed) when it is new.
 */

/** What an unsubscribe reads and writes of the suppression list (the store). */
export type SuppressionWriter = Pick<Suppressions, 'addSuppressions'>;

export type UnsubscribeChannel = 'https' | 'mailto';

export interface UnsubscribeRequest {
  tenant: string | null;
  address: string;
  messageId: string;
  channel: UnsubscribeChannel;
  /** When the link was made (https tokens carry it); null when unknown. */
  issued: number | null;
  at: number;
}

export interface UnsubscribeRecorderDeps {
  suppressions: SuppressionWriter;
  metrics: Metrics;
  logger: Logger;
}

export interface UnsubscribeRecorder {
  /** Suppresses the recipient; rejects when the suppression list cannot be written (nothing was recorded). */
  record(request: UnsubscribeRequest): Promise<void>;
}

export function createUnsubscribeRecorder(deps: UnsubscribeRecorderDeps): UnsubscribeRecorder {
  const log = deps.logger.child({ component: 'unsubscribe' });
  return {
    async record(request) {
      const { tenant, address, messageId, channel, issued, at } = request;
      // An address suppressed for good stays as it is (a complaint stays a complaint): a second
      // click, or a provider retrying its POST, even at the same moment on another node, changes
      // nothing and makes no second event (keepPermanent decides in the write's transaction). An
      // entry that would lapse (a manual one with an expiry) gives way to the unsubscribe.
      const source = { kind: 'feedback' as const, channel, messageId, ...(issued !== null ? { issued } : {}) };
      // The webhook event (recipient.unsubscribed) is written with the entry, in one transaction.
      const event = { type: 'recipient.unsubscribed' as const, tenant, messageId, recipient: address, at, egressIp: null, data: { channel } };
      const written = await deps.suppressions.addSuppressions([{ tenant, address, reason: 'unsubscribe', source, createdAt: at, expiresAt: null }], [event], { keepPermanent: true });
      const repeated = written === 0;
      if (!repeated) deps.metrics.unsubscribes.inc({ channel });
      log.info({ event: 'unsubscribe.recorded', channel, tenant, messageId, domain: domainOf(address), repeated }, repeated ? 'recipient was already suppressed' : 'recipient unsubscribed');
    },
  };
}
