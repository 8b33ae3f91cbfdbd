import { setMaxListeners } from 'node:events';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../storage/store.ts';
import { inChunks, waitUnlessAborted } from './bulk-chunks.ts';

/**
 * The queued mail of held sites' domains, moved in the store in bulk (DeadSites decides when):
 * deferred to a hold's end, or made due again. Each call moves BULK_CHUNK rows at most and is
 * repeated, pausing after each as long as it took, so acceptance keeps at least half of SQLite's
 * one thread while a large backlog moves. One site's moves run one after the other.
 */

/**
 * Rows held or resumed per store call. SQLite runs each call on the daemon's one thread (about
 * 30 ms for this many), and the same time passes before the next.
 */
const BULK_CHUNK = 2_000;

/** The site whose mail moves: its name, its held domains and when its hold ends (read when a move runs). */
export interface HeldMailSite {
  readonly site: string;
  readonly domains: ReadonlySet<string>;
  readonly until: number;
}

export interface HeldMailDeps {
  store: Pick<Store, 'holdDomains' | 'resumeDomains'>;
  logger: Logger;
  /** delivery.maxAge, read at each hold: held mail still bounces on time. */
  maxAgeMs: () => number;
}

export class HeldMail {
  /** The last move queued per site: the next one runs after it. */
  private readonly lines = new Map<string, Promise<void>>();
  /** Moves under way, for stop(). */
  private readonly tasks = new Set<Promise<unknown>>();
  /** Holds of rows that are due now, under way (see holdsDone). */
  private readonly holding = new Set<Promise<unknown>>();
  private stopping = new AbortController();

  constructor(private readonly deps: HeldMailDeps) {}

  start(): void {
    this.stopping = new AbortController();
    // One listener per pause under way: possibly many sites at once.
    setMaxListeners(0, this.stopping.signal);
  }

  /** Cuts pauses short and ends moves after their current chunk; waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort();
    while (this.tasks.size) await Promise.allSettled([...this.tasks]);
  }

  /**
   * Defers the queued mail of `domains` to the site's hold end; returns how many rows moved.
   * `due`: those rows are due now (a first hold), so holdsDone() waits for this move; a renewal
   * moves rows that are not due yet, in the background.
   */
  hold(site: HeldMailSite, domains: readonly string[], due: boolean): Promise<number> {
    const { store } = this.deps;
    const maxAgeMs = this.deps.maxAgeMs();
    const moved = this.inLine(site, () => this.inChunks((limit) => store.holdDomains([...domains], site.until, maxAgeMs, limit)), 0);
    if (due) {
      this.holding.add(moved);
      void moved.finally(() => this.holding.delete(moved));
    }
    return moved;
  }

  /** Makes up to `limit` of the site's held mail (due after `now`, at or before its hold end) due at `now`; `onDue` is called as soon as some is. */
  resume(site: HeldMailSite, now: () => number, onDue: () => void, limit = Infinity): Promise<number> {
    return this.inLine(
      site,
      () =>
        this.inChunks(async (asked) => {
          const resumed = await this.deps.store.resumeDomains([...site.domains], site.until, now(), asked);
          if (resumed > 0) onDue();
          return resumed;
        }, limit),
      0,
    );
  }

  /** A pause of `ms` in the site's line: moves queued after it wait for it. */
  pause(site: HeldMailSite, ms: number): Promise<void> {
    return this.inLine(site, () => this.wait(ms), undefined);
  }

  /**
   * Resolves once no hold of due rows is under way. The scheduler waits for it before claiming:
   * the rows such a hold has not reached yet are the oldest due, and claiming them one by one
   * meanwhile would cost far more than the hold itself (a claim, a result and an event each).
   */
  async holdsDone(): Promise<void> {
    await Promise.all([...this.holding]);
  }

  /** Runs a move of the site after those before it; a failure is logged and counts as nothing moved (held mail is due again at its hold end anyway). */
  private inLine<T>(site: HeldMailSite, work: () => Promise<T>, failed: T): Promise<T> {
    const run = (this.lines.get(site.site) ?? Promise.resolve()).then(work).catch((err: unknown) => {
      this.deps.logger.error({ event: 'delivery.site.hold.failed', site: site.site, err }, 'holding or resuming the mail of a down site failed');
      return failed;
    });
    const settled = run.then(() => undefined);
    this.lines.set(site.site, settled);
    this.tasks.add(settled);
    void settled.finally(() => {
      this.tasks.delete(settled);
      if (this.lines.get(site.site) === settled) this.lines.delete(site.site);
    });
    return run;
  }

  /** Repeats a bulk store call until it moves fewer rows than asked (or `limit` in all), pausing after each as long as it took. */
  private inChunks(chunk: (limit: number) => Promise<number>, limit = Infinity): Promise<number> {
    return inChunks(chunk, { size: BULK_CHUNK, limit, pause: (ms) => this.wait(ms), stopped: () => this.stopping.signal.aborted });
  }

  /** Waits `ms`, or less when stop() comes first. */
  private wait(ms: number): Promise<void> {
    return waitUnlessAborted(ms, this.stopping.signal);
  }
}
