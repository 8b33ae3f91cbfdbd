import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { ClaimedRecipient, StoredMessage, Store } from '../storage/store.ts';
import type { DeliveryEngine, DeliveryJob } from './delivery-engine.ts';

export interface SchedulerOptions {
  store: Store;
  engine: Pick<DeliveryEngine, 'attempt'>;
  clock: Clock;
  logger: Logger;
  owner: string;
  /** Delivery jobs in flight at once. */
  concurrency: number;
  /** How long a claim is ours; longer than the slowest possible attempt. */
  leaseMs: number;
  /** Longest sleep between queue checks even when nothing is due (leases of dead nodes, other nodes' work). */
  maxSleepMs?: number;
  /** Delay before a job that failed unexpectedly is tried again. */
  errorRetryMs?: number;
}

interface RunningJob {
  job: DeliveryJob;
  done: Promise<void>;
}

/**
 * Claims due recipients, groups them into jobs (one message, one domain) and runs them with
 * bounded concurrency. New mail starts at once: the accept path calls wake() after each commit,
 * and PostgreSQL's NOTIFY wakes the other nodes; a timer covers retries that fall due.
 */
export class Scheduler {
  private running = false;
  private pumping: Promise<void> | null = null;
  private wakeAgain = false;
  /** The last claim filled every free slot: more may be due as soon as a slot frees up. */
  private backlog = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private readonly inFlight = new Map<number, RunningJob>();
  private nextJobId = 1;
  private readonly messages = new Map<string, { refs: number; load: Promise<StoredMessage | null> }>();
  private unsubscribe: (() => void) | null = null;
  private readonly log: Logger;
  private readonly maxSleepMs: number;
  private readonly errorRetryMs: number;

  constructor(private readonly options: SchedulerOptions) {
    this.log = options.logger.child({ component: 'scheduler' });
    this.maxSleepMs = options.maxSleepMs ?? 30_000;
    this.errorRetryMs = options.errorRetryMs ?? 60_000;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { store, owner, clock } = this.options;
    // Rows this node held when it last stopped (or crashed) are due again now.
    const released = await store.releaseAll(owner, clock.now());
    if (released) this.log.info({ event: 'scheduler.recovered', recipients: released }, 'returned unfinished deliveries to the queue');
    this.running = true;
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

  /** In-flight jobs, for shutdown reporting and tests. */
  get activeJobs(): number {
    return this.inFlight.size;
  }

  /**
   * Stops claiming, waits up to `drainMs` for in-flight jobs, then returns the rest to the
   * queue so the next start (or another node) picks them up.
   */
  async stop(drainMs: number): Promise<void> {
    if (!this.running && !this.inFlight.size) return;
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.clearTimer();
    // A claim under way either dispatches its jobs (waited for below) or returns its rows.
    await this.pumping;

    const pending = [...this.inFlight.values()].map((j) => j.done);
    let timeout: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.all(pending).then(() => true),
      new Promise<boolean>((resolve) => (timeout = setTimeout(() => resolve(false), drainMs))),
    ]);
    clearTimeout(timeout);
    if (drained) return;

    const left = [...this.inFlight.values()].flatMap((j) => j.job.rows.map((r) => r.recipientId));
    this.log.warn({ event: 'scheduler.drain.timeout', recipients: left.length }, 'returning unfinished deliveries to the queue');
    // Their attempts may still finish; the store ignores results for rows we no longer lease.
    await this.options.store.release(this.options.owner, left, this.options.clock.now());
  }

  private async pump(): Promise<void> {
    const { store, clock, owner, concurrency, leaseMs } = this.options;
    try {
      do {
        this.wakeAgain = false;
        while (this.running && this.inFlight.size < concurrency) {
          const limit = concurrency - this.inFlight.size;
          const rows = await store.claimDue({ now: clock.now(), limit, owner, leaseMs });
          this.backlog = rows.length === limit;
          if (!this.running) {
            if (rows.length) await store.release(owner, rows.map((r) => r.recipientId), clock.now());
            return;
          }
          for (const job of groupIntoJobs(rows)) this.run(job);
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

  /** Sleeps until the next retry falls due (bounded), unless a wake comes first. */
  private async armTimer(): Promise<void> {
    if (!this.running) return;
    let next = this.options.clock.now() + this.maxSleepMs;
    try {
      const due = await this.options.store.nextDueAt();
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

  private run(job: DeliveryJob): void {
    const id = this.nextJobId++;
    const done = this.execute(job).finally(() => {
      this.inFlight.delete(id);
      if (this.backlog) this.wake();
    });
    this.inFlight.set(id, { job, done });
  }

  private async execute(job: DeliveryJob): Promise<void> {
    const { store, engine, owner, clock } = this.options;
    try {
      const message = await this.acquireMessage(job.messageId);
      if (!message) {
        this.log.error({ event: 'scheduler.message.missing', messageId: job.messageId }, 'queued recipients without a message body');
        return;
      }
      const due = await engine.attempt(job, message);
      if (due !== null) this.wakeAt(due);
    } catch (err) {
      // A bug or a storage outage: keep the mail, try again later.
      this.log.error({ event: 'delivery.job.failed', messageId: job.messageId, domain: job.domain, err }, 'delivery job failed; will retry');
      const ids = job.rows.map((r) => r.recipientId);
      const retryAt = clock.now() + this.errorRetryMs;
      await store.release(owner, ids, retryAt).then(
        () => this.wakeAt(retryAt),
        (releaseErr: unknown) => this.log.error({ event: 'scheduler.release.failed', err: releaseErr }, 'returning deliveries failed; the lease will expire'),
      );
    } finally {
      this.releaseMessage(job.messageId);
    }
  }

  /** One body load per message however many domain jobs it has in flight. */
  private acquireMessage(messageId: string): Promise<StoredMessage | null> {
    let entry = this.messages.get(messageId);
    if (!entry) {
      entry = { refs: 0, load: this.options.store.loadMessage(messageId) };
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

/** Groups claimed rows by (message, domain), keeping claim order. */
export function groupIntoJobs(rows: ClaimedRecipient[]): DeliveryJob[] {
  const jobs = new Map<string, DeliveryJob>();
  for (const row of rows) {
    const key = `${row.messageId}\n${row.domain}`;
    let job = jobs.get(key);
    if (!job) {
      job = { messageId: row.messageId, domain: row.domain, rows: [] };
      jobs.set(key, job);
    }
    job.rows.push(row);
  }
  return [...jobs.values()];
}
