import { setMaxListeners } from 'node:events';
import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { QueuePause } from '../storage/queue-control.ts';
import type { Store } from '../storage/store.ts';
import { inChunks, waitUnlessAborted } from './bulk-chunks.ts';
import { describeQueueScope } from './queue-pauses.ts';

/**
 * Rows parked, or read for a release, per store call. SQLite runs each call on the daemon's one
 * thread, and the same time passes before the next (bulk-chunks.ts).
 */
const CHUNK = 2_000;
/** How often the mail of the pauses in force is parked: rows accepted or deferred into them since. */
const SWEEP_MS = 10_000;
/** A park takes the rows due within this: those due now, and retries about to fall due before the next sweep. */
const LOOKAHEAD_MS = 60_000;
/**
 * On a shared queue, how often a sweep also releases what no pause holds: a release no node
 * finished (the node stopped midway, or a park on another node raced a resume here). Each reads
 * every parked row once, so not at every sweep. A queue of this node's alone misses none but
 * those of a stop, which its next start makes.
 */
const RELEASE_EVERY_MS = 5 * 60_000;

export interface PausedMailDeps {
  store: Pick<Store, 'driver' | 'parkPaused' | 'releaseParked'>;
  clock: Clock;
  logger: Logger;
  /** The pauses in force on this node now (QueuePauses.current). */
  pauses: () => readonly QueuePause[];
  /** Parked mail is due again: wakes the scheduler. */
  onReleased: () => void;
  sweepMs?: number;
}

type Work = 'sweep' | 'release' | `park ${string}`;

/**
 * The queued mail of paused domains, pools and tenants, parked out of the due order (Postfix's
 * hold queue) so that claims never walk it: a claim that had to pass over a large paused backlog
 * row by row cost tens of milliseconds each, on the event loop, for all other mail. A pause
 * parks its scope's mail at once; a sweep every few seconds parks what was accepted or deferred
 * into a paused scope since, on this node or another (until then the claims' pause filter keeps
 * it from being sent). A resume, or a pause's end (told by QueuePauses, or seen by a sweep),
 * releases every parked row no pause still holds with its own due time; so does each start, and
 * on a shared queue a sweep now and then, for a release missed.
 * Pausing changes nothing else: parked mail stays queued, ages toward delivery.maxAge, and is
 * retried or cancelled as before. The store moves rows in chunks with a pause between them, one
 * move at a time; a move asked while the same one waits its turn is not queued twice.
 */
export class PausedMail {
  private line: Promise<void> = Promise.resolve();
  /** The moves waiting their turn, by what they do. */
  private readonly waiting = new Map<Work, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private stopping = new AbortController();
  private lastRelease = 0;
  /** A release failed (or did not finish): the next sweep makes one, whatever the store. */
  private releaseOwed = false;
  /** The scopes the last sweep parked for: one gone since has ended (resumed, or run out). */
  private swept = new Set<string>();
  private readonly log: Logger;

  constructor(private readonly deps: PausedMailDeps) {
    this.log = deps.logger.child({ component: 'paused-mail' });
    setMaxListeners(0, this.stopping.signal);
  }

  /** Releases what no pause holds (pauses that ended while no node ran) and parks the mail of the pauses in force, then sweeps every few seconds. */
  start(): void {
    if (this.timer) return;
    this.stopping = new AbortController();
    setMaxListeners(0, this.stopping.signal);
    void this.release();
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), this.deps.sweepMs ?? SWEEP_MS);
    this.timer.unref();
  }

  /** Ends the move under way after its current chunk; waits for it. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stopping.abort();
    await this.line;
  }

  /** Parks the mail of a pause just made (an egress IP's waits in selection instead). */
  park(pause: QueuePause): Promise<void> {
    const { scope } = pause;
    if (scope.kind === 'egress-ip') return Promise.resolve();
    const name = describeQueueScope(scope);
    return this.inLine(`park ${name}`, async () => {
      const parked = await this.parkScope(pause);
      this.log.info({ event: 'queue.parked', scope: name, recipients: parked }, `parked ${parked} queued recipients of ${name}`);
    });
  }

  /** Gives the parked rows no pause holds any more their own due time back (a resume, a pause ended). */
  release(): Promise<void> {
    this.lastRelease = this.deps.clock.now();
    return this.inLine('release', async () => {
      this.releaseOwed = true;
      const { released, skipped } = await this.releaseUnheld();
      // Rows another node's statement held locked are still parked: the next sweep releases again.
      this.releaseOwed = this.stopping.signal.aborted || skipped > 0;
      if (released > 0) this.log.info({ event: 'queue.released', recipients: released }, `released ${released} parked recipients: no pause holds them`);
    });
  }

  /** Parks what came into the pauses in force since their last park; releases when one ended since the last sweep (and now and then on a shared queue). */
  sweep(): Promise<void> {
    return this.inLine('sweep', async () => {
      const pauses = this.deps.pauses().filter((p) => p.scope.kind !== 'egress-ip');
      const scopes = new Set(pauses.map((p) => describeQueueScope(p.scope)));
      const ended = [...this.swept].some((scope) => !scopes.has(scope));
      this.swept = scopes;
      const due = this.deps.store.driver === 'postgres' && this.deps.clock.now() - this.lastRelease >= RELEASE_EVERY_MS;
      // In line after this sweep.
      if (ended || due || this.releaseOwed) void this.release();
      for (const pause of pauses) {
        if (this.stopping.signal.aborted) break;
        const parked = await this.parkScope(pause);
        if (parked > 0) this.log.debug({ event: 'queue.parked', scope: describeQueueScope(pause.scope), recipients: parked }, 'parked queued recipients of a paused scope');
      }
    });
  }

  private parkScope(pause: QueuePause): Promise<number> {
    const { store, clock } = this.deps;
    const before = clock.now() + LOOKAHEAD_MS;
    return inChunks((limit) => store.parkPaused(pause.scope, before, clock.now(), limit), this.chunks());
  }

  /** Reads every parked row once, in chunks, releasing those no pause holds. */
  private async releaseUnheld(): Promise<{ released: number; skipped: number }> {
    const { store, clock } = this.deps;
    let after: number | null = 0;
    let released = 0;
    let skipped = 0;
    while (after !== null && !this.stopping.signal.aborted) {
      const started = performance.now();
      const chunk = await store.releaseParked(clock.now(), CHUNK, after);
      released += chunk.released;
      skipped += chunk.skipped;
      if (chunk.released > 0) this.deps.onReleased();
      after = chunk.next;
      if (after !== null) await this.wait(performance.now() - started);
    }
    return { released, skipped };
  }

  /**
   * Runs `work` after the moves before it, unless the same work already waits its turn (its run
   * is returned). A failure is logged: the claims' pause filter still holds unparked mail, and the
   * next sweep or release tries again.
   */
  private inLine(what: Work, work: () => Promise<void>): Promise<void> {
    const queued = this.waiting.get(what);
    if (queued) return queued;
    if (this.stopping.signal.aborted) return Promise.resolve();
    const run = this.line.then(async () => {
      this.waiting.delete(what);
      if (this.stopping.signal.aborted) return;
      await work().catch((err: unknown) => this.log.error({ event: 'queue.parked.failed', work: what, err }, 'parking or releasing paused mail failed; the next sweep tries again'));
    });
    this.waiting.set(what, run);
    this.line = run;
    return run;
  }

  private chunks() {
    return { size: CHUNK, pause: (ms: number) => this.wait(ms), stopped: () => this.stopping.signal.aborted };
  }

  private wait(ms: number): Promise<void> {
    return waitUnlessAborted(ms, this.stopping.signal);
  }
}
