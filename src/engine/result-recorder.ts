import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { AttemptResult, FollowUp, Store } from '../storage/store.ts';
import type { DeliveryJob } from './delivery-job.ts';

/** Backoff between tries to record a result whose transaction went out. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;
/** After interrupt(), how long results may still take to be recorded before they are given up. */
const GRACE_MS = 5_000;

/**
 * Records the results of attempts whose transactions went out, retrying with backoff while the
 * store refuses: handing those rows back to the queue unrecorded would send the message again.
 * Retries go on until they succeed, or, once interrupted (shutdown ran out of time), for at most
 * GRACE_MS; rows given up keep their lease until it runs out, which is logged loudly.
 */
export class ResultRecorder {
  /** When interrupt() was called. */
  private interruptedAt: number | null = null;
  /** Retries waiting out their backoff; interrupt() cuts the wait short. */
  private readonly pauses = new Set<() => void>();

  constructor(private readonly deps: { store: Pick<Store, 'recordAttempts'>; clock: Clock; log: Logger }) {}

  /** The recorded recipient ids (a stale result is not among them), or null when given up. */
  async record(job: DeliveryJob, results: AttemptResult[], followUps: FollowUp[]): Promise<Set<number> | null> {
    const { store, clock, log } = this.deps;
    for (let tries = 1; ; tries++) {
      try {
        return new Set(await store.recordAttempts(results, followUps));
      } catch (err) {
        const left = this.interruptedAt === null ? Infinity : this.interruptedAt + GRACE_MS - clock.now();
        const pause = Math.min(RETRY_MIN_MS * 2 ** (tries - 1), RETRY_MAX_MS, left);
        const fields = { messageId: job.messageId, recipients: job.rows.map((r) => r.recipient), tries, err };
        if (pause <= 0) {
          log.error(
            { event: 'delivery.record.abandoned', ...fields, outcomes: results.map((r) => r.outcome.disposition) },
            'could not record the results of a transaction that went out; the rows are attempted again once their lease runs out',
          );
          return null;
        }
        log.error({ event: 'delivery.record.retry', ...fields, retryInMs: pause }, 'recording the results failed; retrying');
        await this.pause(pause);
      }
    }
  }

  /** From now on, give up after GRACE_MS; retries waiting for their next try go at once. */
  interrupt(): void {
    this.interruptedAt ??= this.deps.clock.now();
    for (const wake of [...this.pauses]) wake();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.pauses.add(wake);
    });
  }
}
