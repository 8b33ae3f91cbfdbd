import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../storage/store.ts';
import { IDEMPOTENCY_WINDOW_MS } from './queue.ts';

/**
 * Deletes finished messages older than the retention period (and empties their bodies earlier,
 * after the body retention period, when one is set), audit entries older than theirs,
 * expired pool counters and state, queue pauses that have ended, idempotency keys older than
 * IDEMPOTENCY_WINDOW_MS, expired suppression entries and finished webhook deliveries older than
 * theirs (webhooks.retention), and the messages an erasure left pending once their other
 * recipients are final (Store.purgeErasedMessages), once at start and then every `intervalMs`, so
 * the queue database holds the live queue and recent history, not all history.
 */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      logger: Logger;
      retentionMs: number;
      /** How long the body of a finished message is kept (storage.bodyRetention); null: as long as the message. */
      bodyRetentionMs?: number | null;
      /** How long audit entries are kept (audit.retention); default 365 days. */
      auditRetentionMs?: number;
      /** How long delivered and given-up webhook deliveries are kept (webhooks.retention); default 7 days. */
      webhookRetentionMs?: number;
      intervalMs?: number;
    },
  ) {
    this.log = deps.logger.child({ component: 'retention' });
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), this.deps.intervalMs ?? 3_600_000);
    this.timer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
  }

  /** One pass; concurrent calls share it. Resolves with nothing: failures are logged and retried next time. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        const now = this.deps.clock.now();
        const deleted = await this.deps.store.purgeFinished(now - this.deps.retentionMs);
        if (deleted) this.log.info({ event: 'retention.purged', messages: deleted }, 'purged finished messages');
        const { bodyRetentionMs } = this.deps;
        if (bodyRetentionMs != null && bodyRetentionMs < this.deps.retentionMs) {
          const emptied = await this.deps.store.dropFinishedBodies(now - bodyRetentionMs);
          if (emptied) this.log.info({ event: 'retention.bodies.dropped', messages: emptied }, 'dropped the bodies of finished messages');
        }
        // In chunks, each its own transaction, so a year's first purge never holds the writes up.
        const audited = await this.deps.store.purgeAudit(now - (this.deps.auditRetentionMs ?? 365 * 86_400_000));
        if (audited) this.log.info({ event: 'retention.audit.purged', entries: audited }, 'purged old audit entries');
        // Warm-up counters of past windows and ended suspensions kept in the store, and ended queue pauses.
        await this.deps.store.purgeExpiredPoolData(now);
        await this.deps.store.purgeEndedPauses(now);
        // Idempotency keys of the HTTP API past the time they hold their answer.
        const keys = await this.deps.store.purgeIdempotencyKeys(now - IDEMPOTENCY_WINDOW_MS);
        if (keys) this.log.debug({ event: 'retention.idempotency.purged', keys }, 'purged old idempotency keys');
        // Suppression entries past their expiry (they stopped applying then; this frees the rows).
        const suppressions = await this.deps.store.purgeExpiredSuppressions(now);
        if (suppressions) this.log.info({ event: 'retention.suppressions.purged', entries: suppressions }, 'purged expired suppression entries');
        const deliveries = await this.deps.store.purgeWebhookDeliveries(now - (this.deps.webhookRetentionMs ?? 7 * 86_400_000));
        if (deliveries) this.log.info({ event: 'retention.webhooks.purged', deliveries }, 'purged finished webhook deliveries');
        // Messages an erasure left until their other recipients were final: they name the erased address.
        const erased = await this.deps.store.purgeErasedMessages(now);
        if (erased) this.log.info({ event: 'retention.erased.purged', messages: erased }, 'deleted the messages erasures left pending');
      } catch (err) {
        this.log.error({ event: 'retention.failed', err }, 'purging old data failed');
      } finally {
        this.sweeping = null;
      }
    })();
    return this.sweeping;
  }
}
