import type { Clock } from '../clock.ts';
import type { UnfinishedScan } from '../storage/queue-age.ts';
import type { Store } from '../storage/store.ts';

type Scheduled = NonNullable<UnfinishedScan['scheduled']>;

/** Ids read per query: the most one statement walks, so a scrape never holds the database long. */
const SPAN = 10_000;
/**
 * Longer than any transaction that gives recipient ids stays open. On PostgreSQL ids are taken
 * when rows are inserted and become visible at commit, so a lower id can appear after a higher
 * one was seen; the floor only moves past ids given out at least this long ago. SQLite commits
 * one transaction at a time, in id order: nothing to wait for.
 */
const POSTGRES_SETTLE_MS = 5 * 60_000;

export interface QueueAgeDeps {
  store: Pick<Store, 'driver' | 'lastRecipientId' | 'scanUnfinished'>;
  clock: Clock;
  /** Ids per query (default SPAN). */
  span?: number;
}

/**
 * How long the oldest recipient still in the queue (queued or being delivered) has waited, for
 * rookery_queue_oldest_age_seconds: from its acceptance, or from its send time for a scheduled
 * send (one scheduled later is not waiting yet). "Oldest" is by acceptance order.
 *
 * There is no index on the acceptance time of unfinished rows, and a min() over the queued rows
 * would read all of them at each scrape. Instead a floor is kept below which every recipient is
 * final (a final row never returns to the queue) or scheduled for later, and each refresh walks
 * the primary key up from it, SPAN ids per query, to the first waiting row. The first refreshes
 * walk the finished rows that retention keeps (on PostgreSQL, those of the first five minutes
 * after a start); later ones walk the few finished since, so a scrape costs little however long
 * the queue or the history.
 *
 * A recipient scheduled for later (up to the API's 30 days) is not waiting, and must not hold the
 * floor: every scrape would walk all the history accepted after it. The floor moves past it, and
 * what it passed is kept as two numbers: the lowest such id and the earliest send time among them
 * (a send time never changes). When that time comes the floor goes back down to that id, and one
 * walk counts what now waits and passes again what is still for later: one walk per send time
 * reached, not one per scrape.
 */
export class QueueAge {
  /** Every recipient with a lower id is final, or scheduled for later (see `scheduled`). */
  private floor = 0;
  /** Of the unfinished rows the floor moved past: the lowest id, and the earliest send time of any. */
  private scheduled: Scheduled | null = null;
  /** A bound seen at `at`; it may become the floor once ids given before then are all visible. */
  private pending: { bound: number; at: number } | null = null;
  private running: Promise<number> | null = null;

  constructor(private readonly deps: QueueAgeDeps) {}

  /** Seconds the oldest recipient in the queue has waited; 0 when none waits. Concurrent calls share one walk. */
  refresh(): Promise<number> {
    this.running ??= this.walk().finally(() => (this.running = null));
    return this.running;
  }

  private async walk(): Promise<number> {
    const { store, clock } = this.deps;
    const now = clock.now();
    if (this.scheduled && this.scheduled.sendAt <= now) {
      // A send the floor moved past is due: walk again from the lowest such row.
      this.floor = Math.min(this.floor, this.scheduled.firstId);
      this.scheduled = null;
    }
    const last = await store.lastRecipientId();
    let oldest: { id: number; since: number } | null = null;
    const span = this.deps.span ?? SPAN;
    for (let from = this.floor; from <= last && !oldest; from += span) {
      const scan = await store.scanUnfinished(from, from + span, now);
      oldest = scan.oldest;
      if (scan.scheduled) this.scheduled = earliest(this.scheduled, scan.scheduled);
    }
    this.advance(oldest?.id ?? last + 1, now);
    return oldest ? Math.max(0, now - oldest.since) / 1000 : 0;
  }

  /**
   * Rows below `bound` were final or scheduled for later when read now (those noted in `scheduled`). On SQLite that makes it the floor. On PostgreSQL
   * rows below a bound read the settling time ago were all visible to this walk (committed by
   * then), which found those above the floor final: so the lower of the two is the new floor.
   */
  private advance(bound: number, now: number): void {
    if (this.deps.store.driver !== 'postgres') {
      this.floor = bound;
    } else if (!this.pending) {
      this.pending = { bound, at: now };
    } else if (now - this.pending.at >= POSTGRES_SETTLE_MS) {
      this.floor = Math.max(this.floor, Math.min(this.pending.bound, bound));
      this.pending = { bound, at: now };
    }
  }
}

/** Both sets of rows passed, as one: the lower first id, the earlier send time. */
function earliest(a: Scheduled | null, b: Scheduled): Scheduled {
  return a ? { firstId: Math.min(a.firstId, b.firstId), sendAt: Math.min(a.sendAt, b.sendAt) } : b;
}
