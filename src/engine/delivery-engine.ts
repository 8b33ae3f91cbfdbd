import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { EgressSelector } from '../ippool/egress.ts';
import type { Logger } from '../observability/logger.ts';
import { ipLabel, type Metrics } from '../observability/metrics.ts';
import type { AttemptResult, ClaimedRecipient, NewMessage, StoredMessage, Store } from '../storage/store.ts';
import type { DeliveryOutcome } from './delivery-outcome.ts';
import { buildDsn } from './dsn.ts';
import { newQueueId } from './queue-id.ts';
import { decide, expiredOutcome } from './retry-policy.ts';
import type { Route } from './routing.ts';
import type { Deliverer } from './smtp-deliverer.ts';

/** Recipients of one message at one domain: delivered together in one SMTP transaction. */
export interface DeliveryJob {
  messageId: string;
  domain: string;
  rows: ClaimedRecipient[];
}

export interface EngineDeps {
  store: Store;
  router: { resolve(domain: string): Promise<Route> };
  deliverer: Pick<Deliverer, 'deliver'>;
  egress: EgressSelector;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Lease owner of this daemon. */
  owner: string;
  hostname: string;
  delivery: Config['delivery'];
  random?: () => number;
}

/**
 * Makes one delivery attempt for a job and records what happened: per recipient a new state
 * (delivered, retry at a time, bounced), an event row, and for bounces a DSN to the sender
 * committed in the same transaction.
 */
export class DeliveryEngine {
  private readonly random: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: EngineDeps) {
    this.random = deps.random ?? Math.random;
    this.log = deps.logger.child({ component: 'delivery' });
  }

  /** Returns the earliest time this attempt made work due (a retry, or now for a queued DSN), if any. */
  async attempt(job: DeliveryJob, message: StoredMessage): Promise<number | null> {
    const outcomes = await this.send(job, message);
    const { results, bounced } = this.decideAll(job, outcomes);
    const followUps = await this.dsnFor(message, bounced);
    await this.deps.store.recordAttempts(this.deps.owner, results, followUps);
    this.report(job, results);
    if (followUps.length) this.deps.metrics.dsnsGenerated.inc(followUps.length);
    const due = [...results.map((r) => r.nextAttemptAt), ...followUps.map((m) => m.dueAt)].filter((t) => t !== undefined);
    return due.length ? Math.min(...due) : null;
  }

  /** Routes the job and hands it to the deliverer; a routing failure applies to every recipient. */
  private async send(job: DeliveryJob, message: StoredMessage): Promise<DeliveryOutcome[]> {
    const route = await this.deps.router.resolve(job.domain);
    if (!route.ok) return job.rows.map(() => route.outcome);
    const previous = job.rows.find((r) => r.lastEgressIp)?.lastEgressIp ?? null;
    const egress = this.deps.egress.pick({ domain: job.domain, site: route.site, previous });
    return this.deps.deliverer.deliver({
      sender: message.sender,
      recipients: job.rows.map((r) => r.recipient),
      body: message.body,
      egress,
      site: route.site,
      hops: route.hops,
    });
  }

  private decideAll(job: DeliveryJob, outcomes: DeliveryOutcome[]) {
    const now = this.deps.clock.now();
    const results: AttemptResult[] = [];
    const bounced: Array<{ recipient: string; outcome: DeliveryOutcome }> = [];
    job.rows.forEach((row, i) => {
      let outcome = outcomes[i]!;
      const counts = outcome.disposition !== 'throttled';
      const decision = decide({
        outcome,
        attempts: row.attempts + (counts ? 1 : 0),
        createdAt: row.messageCreatedAt,
        now,
        maxAge: this.deps.delivery.maxAge,
        retry: this.deps.delivery.retry,
        random: this.random,
      });
      if (decision.expired) outcome = expiredOutcome(outcome);
      results.push({
        recipientId: row.recipientId,
        outcome,
        newState: decision.newState,
        nextAttemptAt: decision.nextAttemptAt,
        countsAsAttempt: counts,
      });
      if (decision.newState === 'bounced') bounced.push({ recipient: row.recipient, outcome });
    });
    return { results, bounced };
  }

  private async dsnFor(message: StoredMessage, bounced: Array<{ recipient: string; outcome: DeliveryOutcome }>): Promise<NewMessage[]> {
    // Never answer the null sender (RFC 5321 6.1: no bounce loops), and honour the operator's switch.
    if (!bounced.length || message.sender === '' || !this.deps.delivery.dsn.enabled) return [];
    const now = this.deps.clock.now();
    return [
      await buildDsn({
        reportingMta: this.deps.hostname,
        original: message,
        failed: bounced,
        now,
        id: newQueueId(now),
        from: this.deps.delivery.dsn.from,
      }),
    ];
  }

  private report(job: DeliveryJob, results: AttemptResult[]): void {
    const { metrics, clock } = this.deps;
    const now = clock.now();
    results.forEach((result, i) => {
      const row = job.rows[i]!;
      const { outcome } = result;
      const ip = ipLabel(outcome.egressIp);
      metrics.deliveryOutcomes.inc({ egress_ip: ip, disposition: outcome.disposition });
      const final = result.newState === 'queued' ? 'deferred' : result.newState;
      metrics.recipientsFinal.inc({ egress_ip: ip, result: final });
      if (result.newState === 'delivered') metrics.deliveryLatency.observe((now - row.messageCreatedAt) / 1000);
      const fields = {
        event: `delivery.${final}`,
        messageId: job.messageId,
        recipient: row.recipient,
        ip: outcome.egressIp,
        remoteHost: outcome.remoteHost,
        code: outcome.code,
        enhanced: outcome.enhanced,
        stage: outcome.stage,
        response: outcome.response,
        attempt: row.attempts + (result.countsAsAttempt ? 1 : 0),
      };
      this.log.info(fields, final);
    });
  }
}
