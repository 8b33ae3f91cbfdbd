import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { EgressPool, Selection } from '../ippool/egress-pool.ts';
import type { Logger } from '../observability/logger.ts';
import { ipLabel, type Metrics } from '../observability/metrics.ts';
import type { ClaimedRecipient, FollowUp, NewMessage, StoredMessage, Store } from '../storage/store.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { DkimSigner } from '../sender-domains/signer.ts';
import { jobsBySite, type DeliveryJob } from './delivery-job.ts';
import type { DeadSites, JobOutcomes } from './dead-sites.ts';
import { makeDsn, type DsnMakerDeps } from './dsn-maker.ts';
import { ResultRecorder, type Decided } from './result-recorder.ts';
import type { AutoSuppression } from './auto-suppression.ts';
import { WaitLine } from './wait-line.ts';
import { decide, expiredOutcome } from './retry-policy.ts';
import type { Router } from './routing.ts';
import type { Deliverer, DeliveryRequest } from './smtp-deliverer.ts';
import type { TlsPolicies } from './tls/tls-policies.ts';
import { notStarted } from './transaction-outcomes.ts';

/** How many egress IPs one attempt tries when IPs turn out to be missing from the host. */
const MAX_EGRESS_TRIES = 3;
/**
 * A wait for an egress IP this short is held in memory (like a ready queue) rather than by a
 * round trip through the queue: under a rate limit that is most waits, and each round trip would
 * cost a claim and a commit. Longer waits (caps, suspensions) go back to the queue.
 */
const HOLD_WAIT_MS = 1_000;
/** The most one attempt holds its delivery slot waiting, in all. */
const MAX_HOLD_MS = 3_000;
/** When choosing an IP for the rest of a job fails after part of it went out, the rest waits this long. */
const SELECT_FAILED_RETRY_MS = 60_000;

/** A recipient the attempt bounced, for its DSN. */
interface Bounced {
  recipientId: number;
  recipient: string;
  outcome: DeliveryOutcome;
}

/** The outcome of a delivery that found no eligible egress IP: a wait, not a failure. */
function waiting(pool: string, selection: Extract<Selection, { ok: false }>): DeliveryOutcome {
  return {
    disposition: 'throttled',
    code: null,
    enhanced: '4.4.5',
    response: `no egress IP of pool ${pool} may send to ${selection.provider} now (${selection.reason}); waiting`,
    stage: 'queue',
    bounceClass: 'rate-limited',
    remoteHost: null,
    egressIp: null,
  };
}

/** For the recipients of a job that wait: until when, and whether for an operator's pause of the pool's egress IPs. */
interface Wait {
  throttledUntil?: number;
  paused?: boolean;
}

/** Whether this node still holds the claim of a row (LeaseKeeper.holds): one another claim took over is not sent. */
export type ClaimCheck = (row: ClaimedRecipient) => boolean;

/** Jobs of one pool to one site wait in one line: they wait for any IP of the pool. */
type PoolSiteLine = string & { readonly __brand: 'PoolSiteLine' };

function poolSiteLine(pool: string, site: string): PoolSiteLine {
  return `${pool}\n${site}` as PoolSiteLine;
}

/**
 * The settings of an attempt that a reload may change: read once when the attempt starts, so it
 * finishes under the settings it started with.
 */
export interface EngineSettings {
  /** Retries, expiry and DSNs. */
  delivery: Pick<Config['delivery'], 'maxAge' | 'retry' | 'dsn'>;
  /**
   * The envelope sender for one recipient's delivery: a VERP address where configured, else the
   * message's sender. Default: the message's sender.
   */
  returnPath?: (input: { sender: string; messageId: string; recipientId: number }) => string;
}

export interface EngineDeps {
  store: Store;
  router: Pick<Router, 'resolve'>;
  /** The TLS requirement of each recipient domain (delivery.tls, tlsPolicies, MTA-STS); without it, opportunistic. */
  tls?: Pick<TlsPolicies, 'requirementFor'>;
  deliverer: Pick<Deliverer, 'deliver' | 'abort'>;
  pool: Pick<EgressPool, 'select' | 'afterDelivery'>;
  /** Sites no egress IP can reach: their jobs are held instead of attempted. */
  sites: Pick<DeadSites, 'holdJob' | 'review'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  hostname: string;
  /** The settings in effect now (see EngineSettings). */
  settings: () => EngineSettings;
  /** Signs DSNs as the accept path signs every message (see Queue). */
  dkim: Pick<DkimSigner, 'sign'>;
  /** Adds recipients to the suppression list after their permanent failures are recorded (never waited for). */
  suppression?: Pick<AutoSuppression, 'afterBounces'>;
  random?: () => number;
}

/**
 * Routes a message's recipients into jobs, one per destination site, then makes one delivery
 * attempt for a job and records what happened: per recipient a new state
 * (delivered, retry at a time, bounced), an event row, and for bounces a signed DSN to the sender
 * committed in the same transaction. Once a transaction went out, its result is recorded however
 * long the store takes (ResultRecorder): the rows never return to the queue unrecorded.
 */
export class DeliveryEngine {
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly lines = new WaitLine<PoolSiteLine>();
  private readonly recorder: ResultRecorder;
  private readonly dsnDeps: DsnMakerDeps;

  constructor(private readonly deps: EngineDeps) {
    this.random = deps.random ?? Math.random;
    this.log = deps.logger.child({ component: 'delivery' });
    this.recorder = new ResultRecorder({ store: deps.store, clock: deps.clock, log: this.log });
    this.dsnDeps = { hostname: deps.hostname, dsn: () => deps.settings().delivery.dsn, dkim: deps.dkim, metrics: deps.metrics, clock: deps.clock, log: this.log };
  }

  /** One job per destination site of one message's claimed recipients. */
  plan(messageId: string, rows: ClaimedRecipient[]): Promise<DeliveryJob[]> {
    return jobsBySite(messageId, rows, this.deps.router, this.deps.tls);
  }

  /**
   * Makes one attempt for the job and records it; `claimed` is asked right before a transaction
   * starts, and rows this node no longer holds are left out. Throws only when no transaction was
   * started, so the caller may return the rows to the queue. Returns the earliest time this
   * attempt made work due (a retry, or now for a queued DSN), if any.
   */
  async attempt(job: DeliveryJob, message: StoredMessage, claimed: ClaimCheck): Promise<number | null> {
    const { sites } = this.deps;
    const settings = this.deps.settings();
    const { outcomes, waitUntil, paused } = sites.holdJob(job) ?? sites.review(job, await this.send(job, message, claimed, settings));
    try {
      return await this.conclude(job, message, outcomes, settings, { throttledUntil: waitUntil, paused });
    } catch (err) {
      // A bug after the transaction: the rows keep their lease until it runs out (a release would send again).
      this.log.error({ event: 'delivery.record.failed', messageId: job.messageId, err }, 'recording the attempt failed; the lease will run out');
      return null;
    }
  }

  /**
   * Shutdown ran out of time: cuts the live transactions (each is recorded as an interrupted
   * attempt) and bounds how long results may still take to be recorded.
   */
  interrupt(): void {
    this.deps.deliverer.abort();
    this.recorder.interrupt();
  }

  private async conclude(job: DeliveryJob, message: StoredMessage, outcomes: DeliveryOutcome[], settings: EngineSettings, wait: Wait): Promise<number | null> {
    const { results, bounced } = this.decideAll(job, outcomes, settings, wait);
    const dsn = await this.dsnFor(message, bounced);
    const recorded = await this.recorder.record(job, results, dsn ? [{ message: dsn, reports: bounced.map((b) => b.recipientId) }] : []);
    if (!recorded) return null;
    let dsns = dsn ? [dsn] : [];
    if (dsn && bounced.some((b) => !recorded.has(b.recipientId))) {
      // Some bounce was stale (another claim took its row over), so the store held back every
      // bounce the DSN reports: the others go in again, each with a DSN of its own, in one commit
      // (a lone bounce held back is the stale one).
      const again = bounced.length > 1 ? await this.bounceEach(job, message, results, bounced, settings) : { recorded: new Set<number>(), dsns: [] };
      for (const id of again.recorded) recorded.add(id);
      dsns = again.dsns;
    }
    this.report(job, results, recorded);
    this.deps.metrics.dsnsGenerated.inc(dsns.length);
    // A DSN that bounces says nothing of the tenant's recipients: only its own mail's failures count.
    const final = bounced.filter((b) => recorded.has(b.recipientId));
    if (final.length > 0 && message.source !== 'dsn') this.deps.suppression?.afterBounces(message, final);
    const due = [...results.filter((r) => recorded.has(r.recipientId)).map((r) => r.nextAttemptAt), ...dsns.map((d) => d.dueAt)];
    const times = due.filter((t) => t !== undefined);
    return times.length ? Math.min(...times) : null;
  }

  /** Records the bounces of `bounced`, each with a DSN of its own; returns those recorded and the DSNs stored with them. */
  private async bounceEach(job: DeliveryJob, message: StoredMessage, results: Decided[], bounced: Bounced[], settings: EngineSettings): Promise<{ recorded: ReadonlySet<number>; dsns: NewMessage[] }> {
    const own = await Promise.all(bounced.map((b) => this.dsnFor(message, [b])));
    const followUps = bounced.flatMap((b, i): FollowUp[] => (own[i] ? [{ message: own[i], reports: [b.recipientId] }] : []));
    const ids = new Set(bounced.map((b) => b.recipientId));
    const recorded = (await this.recorder.record(job, results.filter((r) => ids.has(r.recipientId)), followUps)) ?? new Set<number>();
    return { recorded, dsns: followUps.filter((f) => recorded.has(f.reports[0]!)).map((f) => f.message) };
  }

  /**
   * Chooses the egress IP from the message's pool and hands the job to the deliverer on that
   * path. A routing failure applies to every recipient. When the pool grants fewer recipients
   * than the job has (a warm-up cap or a throttle has room for fewer), the first ones go in this
   * transaction and the rest are selected again: another IP takes them if one may, else they wait
   * (throttled) until `waitUntil`, as the whole job does when no IP may take any. An IP the host
   * turns out not to have is suspended by the pool and its recipients go out at once from another.
   */
  private async send(job: DeliveryJob, message: StoredMessage, claimed: ClaimCheck, settings: EngineSettings): Promise<JobOutcomes> {
    const { route } = job;
    if (!route.ok) return { outcomes: job.rows.map(() => route.outcome) };
    const outcomes: DeliveryOutcome[] = [];
    let rest = job.rows;
    let previous = rest.find((r) => r.lastEgressIp)?.lastEgressIp ?? null;
    let provider = '';
    for (let tries = 1; rest.length > 0; ) {
      const request = { pool: message.pool, site: route.site, count: rest.length, previous };
      const selection = await this.select(request).catch((err: unknown) => {
        // Part of the job went out: throwing would return those rows to the queue and send them again.
        if (outcomes.length === 0) throw err;
        this.log.error({ event: 'delivery.select.failed', messageId: job.messageId, err }, 'choosing an egress IP for the rest of the job failed; it waits');
        return { ok: false, provider, reason: 'no-ip', retryAt: this.deps.clock.now() + SELECT_FAILED_RETRY_MS, asked: [] } as const;
      });
      if (!selection.ok) {
        const paused = selection.reason === 'paused';
        return { outcomes: [...outcomes, ...rest.map(() => waiting(message.pool, selection))], waitUntil: selection.retryAt, asked: selection.asked, paused };
      }
      provider = selection.path.provider;
      const rows = rest.slice(0, selection.granted);
      const delivered = await this.transact(message, rows, selection, { hops: route.hops, ...(job.tls ? { tls: job.tls } : {}) }, claimed, settings);
      if (delivered.every((o) => o.bounceClass === 'egress-unavailable') && tries++ < MAX_EGRESS_TRIES) {
        previous = null;
        continue;
      }
      outcomes.push(...delivered);
      rest = rest.slice(rows.length);
    }
    return { outcomes };
  }

  /** Selects an egress IP; a short wait is held in line (see HOLD_WAIT_MS) rather than returned. */
  private async select(request: Parameters<EngineDeps['pool']['select']>[0]): Promise<Selection> {
    const selection = await this.deps.pool.select(request);
    if (selection.ok || selection.retryAt - this.deps.clock.now() > HOLD_WAIT_MS) return selection;
    return this.lines.run(poolSiteLine(request.pool, request.site), () => this.selectHeld(request));
  }

  /**
   * Delivers `rows` of the message through the selected path, and feeds what happened to the pool.
   * Never throws: the deliverer does not for a delivery's own failures, and when it does all the
   * same, its transaction is taken not to have started (a wait) while the others of the job
   * (those already sent, and other VERP transactions) keep their outcomes, so none goes again.
   */
  private async transact(
    message: StoredMessage,
    rows: ClaimedRecipient[],
    selection: Extract<Selection, { ok: true }>,
    target: Pick<DeliveryRequest, 'hops' | 'tls'>,
    claimed: ClaimCheck,
    settings: EngineSettings,
  ): Promise<DeliveryOutcome[]> {
    const { path, egress } = selection;
    const transaction = (sender: string, recipients: ClaimedRecipient[]) =>
      this.deps.deliverer
        .deliver({ sender, recipients: recipients.map((r) => r.recipient), body: message.body, path, hostname: egress.hostname, ...target, stillClaimed: (i) => claimed(recipients[i]!) })
        .catch((err: unknown) => {
          this.log.error({ event: 'delivery.transaction.failed', messageId: message.id, ip: path.ip, err }, 'the transaction could not start; its recipients wait');
          return recipients.map(() => notStarted(path.ip, `the delivery failed before its transaction started: ${(err as Error)?.message ?? String(err)}`));
        });
    const returnPath = settings.returnPath ?? (({ sender }) => sender);
    const senders = rows.map((row) => returnPath({ sender: message.sender, messageId: message.id, recipientId: row.recipientId }));
    // A return path per recipient (VERP) means a transaction per recipient.
    const delivered = senders.every((s) => s === senders[0])
      ? await transaction(senders[0]!, rows)
      : (await Promise.all(rows.map((row, i) => transaction(senders[i]!, [row])))).flat();
    // The transaction went out: a failure to feed its outcome to the pool must not lose it.
    return this.deps.pool.afterDelivery(path, delivered).catch((err: unknown) => {
      this.log.error({ event: 'delivery.feedback.failed', messageId: message.id, ip: path.ip, err }, 'the egress pool could not take the outcome');
      return delivered;
    });
  }

  /** Waits (in line) for short waits to pass and selects again, up to MAX_HOLD_MS in all. */
  private async selectHeld(request: Parameters<EngineDeps['pool']['select']>[0]): Promise<Selection> {
    let held = 0;
    for (;;) {
      const selection = await this.deps.pool.select(request);
      if (selection.ok) return selection;
      const wait = Math.max(1, selection.retryAt - this.deps.clock.now());
      if (wait > HOLD_WAIT_MS || held + wait > MAX_HOLD_MS) return selection;
      held += wait;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private decideAll(job: DeliveryJob, outcomes: DeliveryOutcome[], { delivery }: EngineSettings, { throttledUntil, paused }: Wait) {
    const now = this.deps.clock.now();
    const results: Decided[] = [];
    const bounced: Bounced[] = [];
    job.rows.forEach((row, i) => {
      let outcome = outcomes[i]!;
      const counts = outcome.disposition !== 'throttled';
      const decision = decide({
        outcome,
        attempts: row.attempts + (counts ? 1 : 0),
        createdAt: row.messageCreatedAt,
        now,
        maxAge: delivery.maxAge,
        retry: delivery.retry,
        random: this.random,
        throttledUntil,
        paused,
      });
      if (decision.expired) outcome = expiredOutcome(outcome);
      results.push({
        recipientId: row.recipientId,
        outcome,
        newState: decision.newState,
        nextAttemptAt: decision.nextAttemptAt,
        countsAsAttempt: counts,
      });
      if (decision.newState === 'bounced') bounced.push({ recipientId: row.recipientId, recipient: row.recipient, outcome });
    });
    return { results, bounced };
  }

  /** The DSN reporting `bounced`, signed; null when none is due, or when it could not be made (see makeDsn). */
  private dsnFor(message: StoredMessage, bounced: Bounced[]): Promise<NewMessage | null> {
    return makeDsn(this.dsnDeps, message, bounced);
  }

  private report(job: DeliveryJob, results: Decided[], recorded: ReadonlySet<number>): void {
    const { metrics, clock } = this.deps;
    const now = clock.now();
    results.forEach((result, i) => {
      const row = job.rows[i]!;
      const { outcome } = result;
      const fields = {
        messageId: job.messageId,
        recipient: row.recipient,
        ip: outcome.egressIp,
        remoteHost: outcome.remoteHost,
        code: outcome.code,
        // A delivery is always accepted at the final dot: its line carries the reply, not the detail of where it failed.
        ...(outcome.disposition !== 'delivered' ? { enhanced: outcome.enhanced, stage: outcome.stage } : {}),
        response: outcome.response,
        attempt: row.attempts + (result.countsAsAttempt ? 1 : 0),
      };
      if (!recorded.has(result.recipientId)) {
        this.log.warn({ event: 'delivery.stale', ...fields }, 'result not recorded: another claim took the row over');
        return;
      }
      const ip = ipLabel(outcome.egressIp);
      metrics.deliveryOutcomes.inc({ egress_ip: ip, disposition: outcome.disposition });
      const final = result.newState === 'queued' ? 'deferred' : result.newState;
      metrics.recipientsFinal.inc({ egress_ip: ip, result: final });
      if (result.newState === 'delivered') metrics.deliveryLatency.observe((now - row.messageCreatedAt) / 1000);
      // A wait that was not an attempt (throttled, held) is counted, not logged line by line.
      const level = result.countsAsAttempt ? 'info' : 'debug';
      this.log[level]({ event: `delivery.${final}`, ...fields }, final);
    });
  }
}
