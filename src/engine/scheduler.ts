import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { PausedScopes } from '../storage/queue-control.ts';
import type { ClaimedRecipient, StoredMessage, Store } from '../storage/store.ts';
import type { DeliveryEngine } from './delivery-engine.ts';
import type { FreshMessages } from './fresh-messages.ts';
import { groupByMessage, type DeliveryJob } from './delivery-job.ts';
import { LeaseKeeper } from './lease-keeper.ts';

export interface SchedulerOptions {
  store: Store;
  engine: Pick<DeliveryEngine, 'plan' | 'attempt' | 'interrupt'>;
  clock: Clock;
  logger: Logger;
  owner: string;
  /** Delivery slots: delivery jobs (one message to one destination site) in flight at once. */
  concurrency: number;
  /** How long a claim lasts unless renewed; renewed every third of it while its delivery runs. */
  leaseMs: number;
  /** Longest sleep between queue checks even when nothing is due (other nodes' work). */
  maxSleepMs?: number;
  /** Delay before a job that failed unexpectedly is tried again (delivery.retry.initial, read when it fails). */
  errorRetryMs?: () => number;
  /** Awaited before each claim (DeadSites.holdsDone: a bulk hold of a down site's mail finishes first). */
  beforeClaim?: () => Promise<void>;
  /** The domains, pools and tenants an operator paused now (QueuePauses.claimFilter): claims and the timer leave their mail alone. */
  paused?: () => PausedScopes;
  /** Messages this node just committed, taken instead of loaded from the store (fresh-messages.ts). */
  fresh?: Pick<FreshMessages, 'take'>;
}

/** After stop() interrupted the deliveries still running, how long it waits for them to be recorded. */
const INTERRUPT_GRACE_MS = 10_000;

/** A claimed message being delivered, with the rows whose job has not finished. */
interface RunningMessage {
  unfinished: Set<ClaimedRecipient>;
  done: Promise<void>;
}

/**
 * Claims due recipients and delivers them with bounded concurrency: one slot per delivery job
 * (one message to one destination site). A claimed message first takes a slot for each of its
 * recipient domains, since its sites are not known until its domains are routed (outside the
 * claim loop: DNS may be slow) and a site never spans fewer domains than one; once routed, it
 * gives back the slots its sites do not need and runs every site's job at the same time, each on
 * the same lease, as one job per (message, domain) did before sites. New mail starts at once: the
 * accept path calls wake() after each commit, and PostgreSQL's NOTIFY wakes the other nodes; a
 * timer covers retries that fall due and leases that run out, and is not armed while every slot
 * is busy (a freed slot wakes it). Its lease keeper renews the claims of everything in flight.
 */
export class Scheduler {
  private running = false;
  private pumping: Promise<void> | null = null;
  private wakeAgain = false;
  /** The last claim filled every free slot: more may be due as soon as a slot frees up. */
  private backlog = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private readonly inFlight = new Set<RunningMessage>();
  /** Delivery slots taken: a message being routed holds one per domain, then one per job. */
  private slots = 0;
  private readonly messages = new Map<string, { refs: number; load: Promise<StoredMessage | null> }>();
  private unsubscribe: (() => void) | null = null;
  private readonly log: Logger;
  private readonly leases: LeaseKeeper;
  private readonly maxSleepMs: number;
  private readonly errorRetryMs: () => number;

  constructor(private readonly options: SchedulerOptions) {
    this.log = options.logger.child({ component: 'scheduler' });
    this.leases = new LeaseKeeper({ store: options.store, clock: options.clock, log: this.log, leaseMs: options.leaseMs });
    this.maxSleepMs = options.maxSleepMs ?? 30_000;
    this.errorRetryMs = options.errorRetryMs ?? (() => 60_000);
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { store, owner, clock } = this.options;
    // Rows this node held when it last stopped (or crashed) are due again now.
    const released = await store.releaseAll(owner, clock.now());
    if (released) this.log.info({ event: 'scheduler.recovered', recipients: released }, 'returned unfinished deliveries to the queue');
    this.running = true;
    this.leases.start();
    this.unsubscribe = store.onWork(() => this.wake());
    this.wake();
  }

  /** Asks for a queue check now; cheap to call often (calls coalesce). */
  wake(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.wakeAgain = true;
      return;
    }
    this.pumping = new Promise((resolve) => setImmediate(() => void this.pump().then(resolve)));
  }

  /** Delivery slots in use, for shutdown reporting and tests. */
  get activeJobs(): number {
    return this.slots;
  }

  /**
   * Stops claiming and waits up to `drainMs` for the deliveries in flight. Those still running
   * then are interrupted: their transactions are cut and recorded as interrupted attempts, never
   * returned to the queue unrecorded (a transaction whose data went out may still complete at the
   * other end). Anything that does not finish even then keeps its lease until it runs out.
   */
  async stop(drainMs: number): Promise<void> {
    if (!this.running && !this.inFlight.size) return;
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.clearTimer();
    // A claim under way either dispatches its jobs (waited for below) or returns its rows.
    await this.pumping;

    if (!(await this.settled(drainMs))) {
      this.log.warn({ event: 'scheduler.drain.timeout', recipients: this.rowsInFlight() }, 'interrupting the deliveries still running');
      this.options.engine.interrupt();
      if (!(await this.settled(INTERRUPT_GRACE_MS))) {
        const recipients = this.rowsInFlight();
        this.log.error({ event: 'scheduler.stop.unfinished', recipients }, 'deliveries did not finish after the interruption; their leases run out');
      }
    }
    await this.leases.stop();
  }

  /** Whether every delivery in flight finished within `ms`. */
  private async settled(ms: number): Promise<boolean> {
    let timeout: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      Promise.all([...this.inFlight].map((m) => m.done)).then(() => true),
      new Promise<boolean>((resolve) => (timeout = setTimeout(() => resolve(false), ms))),
    ]);
    clearTimeout(timeout);
    return done;
  }

  private rowsInFlight(): number {
    return [...this.inFlight].reduce((n, m) => n + m.unfinished.size, 0);
  }

  private async pump(): Promise<void> {
    const { store, clock, owner, concurrency, leaseMs } = this.options;
    try {
      do {
        this.wakeAgain = false;
        while (this.running && this.slots < concurrency) {
          await this.options.beforeClaim?.();
          if (!this.running) break;
          const limit = concurrency - this.slots;
          const claimed = await store.claimDue({ now: clock.now(), limit, owner, leaseMs, paused: this.options.paused?.() });
          this.backlog = claimed.length === limit;
          const rows = this.leases.adopt(claimed);
          if (!this.running) {
            if (rows.length) await store.release(rows, clock.now());
            return;
          }
          // Each message reserves a slot per domain: never more than its rows, so never past the limit.
          for (const messageRows of groupByMessage(rows)) this.run(messageRows, new Set(messageRows.map((r) => r.domain)).size);
          if (!this.backlog) break;
        }
      } while (this.wakeAgain && this.running);
    } catch (err) {
      this.log.error({ event: 'scheduler.claim.failed', err }, 'claiming due deliveries failed');
    } finally {
      this.pumping = null;
      await this.armTimer();
    }
  }

  /** Sleeps until the next retry falls due or a lease runs out (bounded), unless a wake comes first. */
  private async armTimer(): Promise<void> {
    if (!this.running) return;
    if (this.slots >= this.options.concurrency) {
      // No room for more work: the next slot to free up wakes the claim loop.
      this.backlog = true;
      return;
    }
    let next = this.options.clock.now() + this.maxSleepMs;
    try {
      const due = await this.options.store.nextDueAt(this.options.paused?.());
      if (due !== null) next = Math.min(next, due);
    } catch (err) {
      this.log.error({ event: 'scheduler.due.failed', err }, 'reading the next due time failed');
    }
    this.clearTimer();
    this.wakeAt(next);
  }

  /** Makes sure a queue check happens no later than `at`. */
  private wakeAt(at: number): void {
    if (!this.running || at >= this.timerAt) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        this.wake();
      },
      Math.max(at - this.options.clock.now(), 10),
    );
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private run(rows: ClaimedRecipient[], reserved: number): void {
    this.slots += reserved;
    this.leases.track(rows);
    const running: RunningMessage = {
      unfinished: new Set(rows),
      done: this.deliverMessage(rows, reserved, (job) => {
        for (const row of job.rows) running.unfinished.delete(row);
      }).finally(() => {
        this.leases.untrack(rows);
        this.inFlight.delete(running);
      }),
    };
    this.inFlight.add(running);
  }

  private freeSlots(count: number): void {
    if (count <= 0) return;
    this.slots -= count;
    if (this.backlog) this.wake();
  }

  /**
   * Loads the message, routes its recipients into one job per site and runs the jobs side by
   * side, each in one of the `reserved` slots (the rest are given back once the sites are known).
   */
  private async deliverMessage(rows: ClaimedRecipient[], reserved: number, onJobDone: (job: DeliveryJob) => void): Promise<void> {
    const { messageId } = rows[0]!;
    let held = reserved;
    try {
      const message = await this.acquireMessage(messageId);
      if (!message) {
        this.log.error({ event: 'scheduler.message.missing', messageId }, 'queued recipients without a message body');
        return;
      }
      const jobs = await this.options.engine.plan(messageId, rows);
      this.freeSlots(held - jobs.length);
      held = jobs.length;
      if (!this.running) {
        // Stopped while routing: nothing was sent, so the rows go back to the queue as they are.
        this.leases.untrack(rows);
        await this.options.store.release(rows, this.options.clock.now());
        return;
      }
      await Promise.all(
        jobs.map((job) =>
          this.runJob(job, message).finally(() => {
            held--;
            this.freeSlots(1);
            onJobDone(job);
          }),
        ),
      );
    } catch (err) {
      await this.failed(rows, err, { messageId });
    } finally {
      this.freeSlots(held);
      this.releaseMessage(messageId);
    }
  }

  private async runJob(job: DeliveryJob, message: StoredMessage): Promise<void> {
    try {
      const due = await this.options.engine.attempt(job, message, (row) => this.leases.holds(row));
      if (due !== null) this.wakeAt(due);
    } catch (err) {
      await this.failed(job.rows, err, { messageId: job.messageId, site: job.route.ok ? job.route.site : job.rows[0]!.domain });
    } finally {
      this.leases.untrack(job.rows);
    }
  }

  /** A bug or a storage outage before any transaction started (see DeliveryEngine.attempt): keep the mail, try again later. */
  private async failed(rows: ClaimedRecipient[], err: unknown, fields: { messageId: string; site?: string }): Promise<void> {
    const { store, clock } = this.options;
    this.log.error({ event: 'delivery.job.failed', ...fields, err }, 'delivery job failed; will retry');
    this.leases.untrack(rows);
    const retryAt = clock.now() + this.errorRetryMs();
    await store.release(rows, retryAt).then(
      () => this.wakeAt(retryAt),
      (releaseErr: unknown) => this.log.error({ event: 'scheduler.release.failed', err: releaseErr }, 'returning deliveries failed; the lease will expire'),
    );
  }

  /** One body load per message, however many of its claims are in flight; none for a message just committed here. */
  private acquireMessage(messageId: string): Promise<StoredMessage | null> {
    let entry = this.messages.get(messageId);
    if (!entry) {
      const fresh = this.options.fresh?.take(messageId);
      entry = { refs: 0, load: fresh ? Promise.resolve(fresh) : this.options.store.loadMessage(messageId) };
      this.messages.set(messageId, entry);
    }
    entry.refs++;
    return entry.load;
  }

  private releaseMessage(messageId: string): void {
    const entry = this.messages.get(messageId);
    if (entry && --entry.refs <= 0) this.messages.delete(messageId);
  }
}
