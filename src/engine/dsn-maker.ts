import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { DkimSigner } from '../sender-domains/signer.ts';
import type { NewMessage, StoredMessage } from '../storage/store.ts';
import { buildDsn } from './dsn.ts';
import { signAndCount } from './queue.ts';
import { newQueueId } from './queue-id.ts';

/** What a DSN is made with: this node's name, the operator's DSN settings, and the signer of every message. */
export interface DsnMakerDeps {
  hostname: string;
  /** delivery.dsn of the configuration in effect (a reload may change it). */
  dsn: () => Config['delivery']['dsn'];
  /** Signs DSNs as the accept path signs every message (see Queue). */
  dkim: Pick<DkimSigner, 'sign'>;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
}

/**
 * The DSN reporting the `failed` recipients of `message` (bounced by a delivery, or cancelled by
 * an operator), signed and ready to be stored with their results as a follow-up. Null when none
 * is due: never to the null sender (RFC 5321 6.1: no bounce loops), nor with delivery.dsn.enabled
 * off; and when it could not be made (logged: the bounces still count).
 */
export async function makeDsn(deps: DsnMakerDeps, message: StoredMessage, failed: ReadonlyArray<{ recipient: string; outcome: DeliveryOutcome }>): Promise<NewMessage | null> {
  const settings = deps.dsn();
  if (!failed.length || message.sender === '' || !settings.enabled) return null;
  const now = deps.clock.now();
  try {
    const dsn = await buildDsn({ reportingMta: deps.hostname, original: message, failed: [...failed], now, id: newQueueId(now), from: settings.from });
    return { ...dsn, body: await signAndCount(deps.dkim, deps.metrics, dsn.body) };
  } catch (err) {
    deps.log.error({ event: 'dsn.failed', messageId: message.id, err }, 'the DSN could not be made');
    return null;
  }
}
