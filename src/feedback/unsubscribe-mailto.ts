import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { UnsubscribeLinks } from '../sender-domains/unsubscribe-links.ts';
import type { Store } from '../storage/store.ts';
import type { UnsubscribeRecorder } from './unsubscribe-recorder.ts';

/**
 * The mailto: form of List-Unsubscribe: mail to unsub+<queue id>.<tag>@<mailto domain>
 * (src/sender-domains/unsubscribe-mailto-address.ts), handed over by the inbound SMTP listener.
 * The address names the message; the store names its tenant and its one recipient, who is
 * suppressed as a click on the https link would. The mail itself says nothing that counts (its
 * From may be anyone's: the address is the credential), so it is not read.
 */

export interface MailtoUnsubscribe {
  /** Whether `address` (a RCPT TO) is an authentic unsubscribe address at a configured mailto domain; cheap, no storage. */
  accepts(address: string): boolean;
  /** Records the unsubscribe the address stands for; an address not accepted, or whose message is gone, records nothing. */
  handle(address: string, message: Buffer, at: number): Promise<void>;
}

export interface MailtoUnsubscribeDeps {
  /** The links of the configuration in effect, asked per address: a reload may change the secret or the domains. */
  links: () => Pick<UnsubscribeLinks, 'mailtoMessage'>;
  store: Pick<Store, 'getMessageInfo' | 'listRecipients'>;
  recorder: UnsubscribeRecorder;
  metrics: Metrics;
  logger: Logger;
}

export function createMailtoUnsubscribe(deps: MailtoUnsubscribeDeps): MailtoUnsubscribe {
  const log = deps.logger.child({ component: 'unsubscribe' });
  const refused = (reason: string, fields: Record<string, unknown>) => {
    deps.metrics.unsubscribesRefused.inc({ channel: 'mailto', reason });
    log.info({ event: 'unsubscribe.refused', channel: 'mailto', reason, ...fields }, 'unsubscribe by mail not recorded');
  };

  return {
    accepts(address) {
      return deps.links().mailtoMessage(address) !== null;
    },

    async handle(address, _message, at) {
      const messageId = deps.links().mailtoMessage(address);
      if (messageId === null) return refused('forged', {});
      const [info, recipients] = await Promise.all([deps.store.getMessageInfo(messageId), deps.store.listRecipients(messageId)]);
      // Purged after storage.retention: the mailto form works while the message is kept (the https link for good).
      if (!info) return refused('expired', { messageId });
      // Only a copy made for one recipient carries these addresses; anything else is not ours to act on.
      if (recipients.length !== 1) return refused('not-one-recipient', { messageId });
      await deps.recorder.record({ tenant: info.tenant, address: recipients[0]!.recipient, messageId, channel: 'mailto', issued: null, at });
    },
  };
}
