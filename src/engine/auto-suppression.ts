import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Store } from '../storage/store.ts';
import type { NewSuppression } from '../storage/suppressions.ts';
import { ruleFor, streakReached, type SuppressionRule } from './suppression-rules.ts';

/** Before the one retry of a failed read or write. */
const RETRY_PAUSE_MS = 1_000;

/** A recipient an attempt bounced, once its result is recorded. */
export interface RecordedBounce {
  recipientId: number;
  recipient: string;
  outcome: DeliveryOutcome;
}

export interface AutoSuppressionDeps {
  store: Pick<Store, 'addSuppressions' | 'finalResultsOf'>;
  /** The rules of the configuration in effect (a reload may change them). */
  rules: () => readonly SuppressionRule[];
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Adds hard-bounce entries to the suppression list from the results of delivery attempts, as the
 * suppression rules say (suppression-rules.ts), for the tenant of the message. It runs after the
 * results are recorded and is never waited for: delivery goes on whatever becomes of it. A read
 * or write the store fails is logged and tried once more, then given up (the next failure of the
 * address tries again).
 */
export class AutoSuppression {
  private readonly log: Logger;
  /** Work started and not finished: stop() waits for it, so the store is not closed under it. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: AutoSuppressionDeps) {
    this.log = deps.logger.child({ component: 'suppression' });
  }

  /** Looks at the recipients a message's attempt bounced; returns at once. */
  afterBounces(message: { id: string; tenant: string | null }, bounced: readonly RecordedBounce[]): void {
    const rules = this.deps.rules();
    const candidates = bounced.flatMap((b) => {
      const rule = ruleFor(rules, b.outcome);
      return rule?.suppress ? [{ bounce: b, rule }] : [];
    });
    if (candidates.length === 0) return;
    const work: Promise<void> = this.suppress(message, candidates).finally(() => this.inFlight.delete(work));
    this.inFlight.add(work);
  }

  /** Resolves once the work started so far is done (at shutdown, before the store closes). */
  async stop(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async suppress(message: { id: string; tenant: string | null }, candidates: ReadonlyArray<{ bounce: RecordedBounce; rule: SuppressionRule }>): Promise<void> {
    const { store, clock, metrics } = this.deps;
    const fields = { messageId: message.id, tenant: message.tenant };
    const entries: NewSuppression[] = [];
    const why: Array<{ recipient: string; rule: string; enhanced: string | null }> = [];
    for (const { bounce, rule } of candidates) {
      if (rule.after > 1) {
        const results = await this.twice('read', fields, () => store.finalResultsOf(message.tenant, bounce.recipient, rule.after));
        if (!results || !streakReached(rule.after, results)) continue;
      }
      const now = clock.now();
      entries.push({
        tenant: message.tenant,
        address: bounce.recipient,
        reason: 'hard-bounce',
        source: { kind: 'attempt', messageId: message.id, recipientId: bounce.recipientId },
        createdAt: now,
        expiresAt: rule.expiresInMs === null ? null : now + rule.expiresInMs,
      });
      why.push({ recipient: bounce.recipient, rule: rule.name, enhanced: bounce.outcome.enhanced });
    }
    if (entries.length === 0) return;
    if ((await this.twice('write', fields, () => store.addSuppressions(entries))) === null) return;
    metrics.suppressionsAdded.inc({ reason: 'hard-bounce', source: 'attempt' }, entries.length);
    for (const w of why) this.log.info({ event: 'suppression.added', ...fields, ...w }, 'recipient suppressed after a permanent failure');
  }

  /** Runs `step`, and once more after a pause when it fails; null when both failed (logged). */
  private async twice<T>(what: string, fields: Record<string, unknown>, step: () => Promise<T>): Promise<T | null> {
    try {
      return await step();
    } catch (err) {
      this.log.warn({ event: 'suppression.retry', ...fields, step: what, err }, 'the suppression list could not be updated; trying once more');
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
    try {
      return await step();
    } catch (err) {
      this.log.error({ event: 'suppression.failed', ...fields, step: what, err }, 'the suppression list could not be updated; given up');
      return null;
    }
  }
}
