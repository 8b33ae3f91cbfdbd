import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import { DataRefusedError, type AttemptResult, type FollowUp, type Store } from '../storage/store.ts';
import { readable } from '../mail/remote-text.ts';
import type { DeliveryJob } from './delivery-job.ts';

/** Backoff between tries to record a result whose transaction went out. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 10_000;
/** After interrupt(), how long results may still take to be recorded before they are given up. */
const GRACE_MS = 5_000;
/** Tries the store refuses for the data itself before the outcomes are cleaned up (and, refused again as often, given up). */
const REFUSED_TRIES = 3;
/** The longest text a cleaned-up outcome keeps. */
const CLEANED_TEXT_MAX = 1_000;

/** A result to record, without its lease token: the recorder reads the row's current one at each try. */
export type Decided = Omit<AttemptResult, 'token'>;

/**
 * Records the results of attempts whose transactions went out, retrying with backoff while the
 * store refuses: handing those rows back to the queue unrecorded would send the message again.
 * Each try applies the results under the lease token each row carries then: the lease keeper may
 * have moved the delivery to a newer claim of this node meanwhile (LeaseKeeper.adopt), and a
 * result sent under the old token would be stale and the row sent again. Retries go on until
 * they succeed, or, once interrupted (shutdown ran out of time), for at most GRACE_MS; rows given
 * up keep their lease until it runs out, which is logged loudly. A write the store refuses for
 * its data (DataRefusedError: it can never succeed as it is) is tried REFUSED_TRIES times, then
 * recorded with its outcomes cleaned up (text made plain and short), so one strange reply never
 * holds a row in delivery and its delivery slot for ever; if even that is refused, it is given up.
 */
export class ResultRecorder {
  /** When interrupt() was called. */
  private interruptedAt: number | null = null;
  /** Retries waiting out their backoff; interrupt() cuts the wait short. */
  private readonly pauses = new Set<() => void>();

  constructor(private readonly deps: { store: Pick<Store, 'recordAttempts'>; clock: Clock; log: Logger }) {}

  /** The recorded recipient ids (a stale result is not among them), or null when given up. */
  async record(job: DeliveryJob, results: readonly Decided[], followUps: FollowUp[]): Promise<Set<number> | null> {
    const { store, clock, log } = this.deps;
    const rows = new Map(job.rows.map((row) => [row.recipientId, row]));
    let cleaned = false;
    let refused = 0;
    for (let tries = 1; ; tries++) {
      const leased = results.map((r) => ({ ...r, outcome: cleaned ? cleanedUp(r.outcome) : r.outcome, token: rows.get(r.recipientId)!.token }));
      try {
        return new Set(await store.recordAttempts(leased, followUps));
      } catch (err) {
        const fields = { messageId: job.messageId, recipients: job.rows.map((r) => r.recipient), tries, err };
        if (err instanceof DataRefusedError && ++refused >= REFUSED_TRIES) {
          if (cleaned) return this.abandon(fields, results);
          log.error({ event: 'delivery.record.cleaned', ...fields }, 'the store refuses the results as they are; recording them cleaned up');
          cleaned = true;
          refused = 0;
          continue;
        }
        const left = this.interruptedAt === null ? Infinity : this.interruptedAt + GRACE_MS - clock.now();
        const pause = Math.min(RETRY_MIN_MS * 2 ** (tries - 1), RETRY_MAX_MS, left);
        if (pause <= 0) return this.abandon(fields, results);
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

  private abandon(fields: Record<string, unknown>, results: readonly Decided[]): null {
    this.deps.log.error(
      { event: 'delivery.record.abandoned', ...fields, outcomes: results.map((r) => r.outcome.disposition) },
      'could not record the results of a transaction that went out; the rows are attempted again once their lease runs out',
    );
    return null;
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

/** The outcome with every text the remote or a bug could fill made plain (control characters written out) and short. */
function cleanedUp(outcome: DeliveryOutcome): DeliveryOutcome {
  const clean = (text: string) => readable(text).slice(0, CLEANED_TEXT_MAX);
  return {
    ...outcome,
    response: clean(outcome.response),
    enhanced: outcome.enhanced && clean(outcome.enhanced),
    remoteHost: outcome.remoteHost && clean(outcome.remoteHost),
    egressIp: outcome.egressIp && clean(outcome.egressIp),
  };
}
