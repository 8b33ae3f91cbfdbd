import { setMaxListeners } from 'node:events';
import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import { ipLabel, type Metrics } from '../observability/metrics.ts';
import type { Store } from '../storage/store.ts';
import type { EgressPath } from '../ippool/egress-path.ts';
import type { DeliveryJob } from './delivery-job.ts';
import type { DownPath, PathHealth } from './path-health.ts';
import type { Deliverer } from './smtp-deliverer.ts';

/**
 * Destination sites that no egress IP can reach, held as a whole (Postfix's dead destinations):
 * one event, not an attempt per message. A site is held once a delivery to it finds no egress IP
 * because its paths are down (PathHealth) and no other IP frees up before their probes. Held, the
 * queued mail of its domains is deferred in bulk (a few store calls of BULK_CHUNK rows), a job
 * claimed for it is deferred without an attempt (a wait, as 'throttled' is), and only the probes
 * connect: one per down path and interval. The first probe (or delivery) that gets through resumes the held mail
 * at once. Held mail is due again after HOLD_MS anyway, so a hold this node forgets (a restart)
 * or one that outlives a site's domain moving elsewhere costs an hour at most; it still bounces at
 * delivery.maxAge.
 */

/** How long held mail stays deferred; renewed while the site stays down. */
const HOLD_MS = 60 * 60_000;
/** After a site came back, when held mail is resumed a second time (jobs held as it came back). */
const RESUME_AGAIN_MS = 5_000;
/**
 * Rows held or resumed per store call. SQLite runs each call on the daemon's one thread (about
 * 30 ms for this many), and the same time passes before the next, so acceptance keeps at least
 * half of the thread while a large backlog is held.
 */
const BULK_CHUNK = 2_000;

/** What an attempt of a job produced: per recipient, and for a wait when it ends. */
export interface JobOutcomes {
  outcomes: DeliveryOutcome[];
  waitUntil?: number;
}

interface HeldSite {
  site: string;
  since: number;
  /** The domains routed to the site that are held (those of the jobs that found it down). */
  domains: Set<string>;
  /** Held mail is due again then, unless the site comes back first. */
  until: number;
  outcome: DeliveryOutcome;
  /** The site's store operations, one after the other. */
  work: Promise<void>;
}

export interface DeadSitesDeps {
  store: Pick<Store, 'holdDomains' | 'resumeDomains'>;
  /** The ready queues' path health, kept by the deliverer. */
  paths: PathHealth;
  prober: Pick<Deliverer, 'probe'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** delivery.maxAge: held mail still bounces on time. */
  maxAgeMs: number;
  /** Held mail is due now: the scheduler should look at the queue. */
  onResumed: () => void;
}

/** The outcome recorded for the mail of a held site: a wait, not an attempt. */
function siteDown(site: string, cause: DeliveryOutcome): DeliveryOutcome {
  const response = `not tried: no egress IP can reach ${site} now (${cause.response}); held until a probe connection gets through`;
  return { disposition: 'throttled', code: null, enhanced: '4.4.1', response, stage: 'connect', bounceClass: 'connection', remoteHost: cause.remoteHost, egressIp: null };
}

export class DeadSites {
  private readonly held = new Map<string, HeldSite>();
  /** Probes and store operations under way, for stop(). */
  private readonly tasks = new Set<Promise<unknown>>();
  /** Bulk holds under way. */
  private readonly holding = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = new AbortController();
  private readonly log: Logger;

  constructor(private readonly deps: DeadSitesDeps) {
    this.log = deps.logger.child({ component: 'delivery' });
  }

  start(): void {
    if (this.unsubscribe) return;
    this.stopping = new AbortController();
    // One listener per probe and pause under way: possibly many down paths at once.
    setMaxListeners(0, this.stopping.signal);
    this.unsubscribe = this.deps.paths.subscribe({ down: (entry) => this.pathDown(entry), connected: (path, wasDown) => this.connected(path, wasDown) });
    this.arm();
  }

  /** Stops probing (probes under way are cut short); waits for them and for store operations under way. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.tasks.size) await Promise.allSettled([...this.tasks]);
  }

  /**
   * Before an attempt: when the job's site is held, what to record for it (a wait until the hold
   * ends, no attempt) and its domains join the hold; null when the site is not held.
   */
  holdJob(job: DeliveryJob): JobOutcomes | null {
    const site = job.route.ok ? this.held.get(job.route.site) : undefined;
    return site ? this.hold(site, job) : null;
  }

  /**
   * After an attempt: a job whose recipients (or some of them) wait while paths to its site are
   * down holds the site when no egress IP could take them before the paths' probes, or when it
   * went out from the OS default address (no egress IPs configured: the one path there is).
   */
  review(job: DeliveryJob, sent: JobOutcomes): JobOutcomes {
    if (!job.route.ok || !sent.outcomes.some((o) => o.disposition === 'throttled')) return sent;
    const down = this.deps.paths.ofSite(job.route.site);
    if (!down.length) return sent;
    const noIp = sent.waitUntil !== undefined ? sent.waitUntil >= Math.min(...down.map((d) => d.probeAt)) : down.some((d) => d.path.ip === null);
    if (!noIp) return sent;
    return this.hold(this.held.get(job.route.site) ?? this.holdSite(job.route.site, down), job, sent.outcomes);
  }

  /** The job's outcomes on a held site: those that went out (of `outcomes`) stay, every wait becomes the site's. */
  private hold(site: HeldSite, job: DeliveryJob, outcomes?: DeliveryOutcome[]): JobOutcomes {
    const fresh = [...new Set(job.rows.map((row) => row.domain))].filter((domain) => !site.domains.has(domain));
    if (fresh.length) this.holdDomains(site, fresh);
    const held = job.rows.map((_, i) => (outcomes && outcomes[i]!.disposition !== 'throttled' ? outcomes[i]! : site.outcome));
    this.deps.metrics.siteHeld.inc(held.filter((o) => o === site.outcome).length);
    return { outcomes: held, waitUntil: site.until };
  }

  /**
   * Resolves once no bulk hold is under way. The scheduler waits for it before claiming: the rows
   * a hold has not reached yet are the oldest due, and claiming them one by one meanwhile would
   * cost far more than the hold itself (a claim, a result and an event each).
   */
  async holdsDone(): Promise<void> {
    await Promise.all([...this.holding]);
  }

  private holdSite(site: string, down: DownPath[]): HeldSite {
    const now = this.deps.clock.now();
    const cause = down[0]!.outcome;
    const held: HeldSite = { site, since: now, domains: new Set(), until: now + HOLD_MS, outcome: siteDown(site, cause), work: Promise.resolve() };
    this.held.set(site, held);
    this.deps.metrics.sitesDown.set(this.held.size);
    const probeAt = new Date(Math.min(...down.map((d) => d.probeAt))).toISOString();
    const fields = { event: 'delivery.site.down', site, ips: down.map((d) => ipLabel(d.path.ip)), response: cause.response, probeAt };
    this.log.warn(fields, `no egress IP can reach ${site}: its mail is held until a probe connection gets through`);
    return held;
  }

  /** Defers the queued mail of `domains` to the site's hold time, in bulk. */
  private holdDomains(site: HeldSite, domains: string[]): void {
    for (const domain of domains) site.domains.add(domain);
    const hold = this.enqueueWork(site, async () => {
      const held = await this.inChunks((limit) => this.deps.store.holdDomains(domains, site.until, this.deps.maxAgeMs, limit));
      this.deps.metrics.siteHeld.inc(held);
      this.log.debug({ event: 'delivery.site.held', site: site.site, domains, recipients: held }, 'queued mail of a down site deferred');
    });
    this.holding.add(hold);
    void hold.finally(() => this.holding.delete(hold));
  }

  private pathDown(entry: DownPath): void {
    const { path, outcome, probeAt } = entry;
    this.deps.metrics.pathsDown.inc({ egress_ip: ipLabel(path.ip) });
    this.log.info(
      { event: 'delivery.path.down', ip: path.ip, site: path.site, response: outcome.response, probeAt: new Date(probeAt).toISOString() },
      `${path.site} cannot be reached from ${ipLabel(path.ip)}: no connection until a probe gets through`,
    );
    this.arm();
  }

  /** A connection got through: its path is up, and so is its site, whose held mail is due again now. */
  private connected(path: EgressPath, wasDown: DownPath | undefined): void {
    const now = this.deps.clock.now();
    if (wasDown) {
      this.deps.metrics.pathsDown.dec({ egress_ip: ipLabel(path.ip) });
      this.log.info({ event: 'delivery.path.up', ip: path.ip, site: path.site, downForMs: now - wasDown.since }, `${path.site} reached from ${ipLabel(path.ip)} again`);
    }
    const site = this.held.get(path.site);
    if (!site) return;
    this.held.delete(path.site);
    this.deps.metrics.sitesDown.set(this.held.size);
    this.enqueueWork(site, async () => {
      const resumed = await this.resume(site);
      this.log.info({ event: 'delivery.site.up', site: site.site, ip: path.ip, downForMs: now - site.since, resumed }, `${site.site} is reachable again: its held mail is due`);
      // A job held just before the site came back records its wait just after: a second pass frees it too.
      await this.pause(RESUME_AGAIN_MS);
      await this.resume(site);
    });
  }

  /** Makes the site's held mail due now; the scheduler is woken as soon as the first of it is. */
  private async resume(site: HeldSite): Promise<number> {
    const domains = [...site.domains];
    return this.inChunks(async (limit) => {
      const resumed = await this.deps.store.resumeDomains(domains, site.until, this.deps.clock.now(), limit);
      if (resumed > 0) this.deps.onResumed();
      return resumed;
    });
  }

  /** Repeats a bulk store call until it moves fewer than BULK_CHUNK rows, pausing after each as long as it took. */
  private async inChunks(chunk: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const started = performance.now();
      const moved = await chunk(BULK_CHUNK);
      total += moved;
      if (moved < BULK_CHUNK || this.stopping.signal.aborted) return total;
      await this.pause(performance.now() - started);
    }
  }

  /** Waits `ms`, or less when stop() comes first. */
  private pause(ms: number): Promise<void> {
    const { signal } = this.stopping;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Runs a store operation of the site after those before it; a failure is logged (held mail is due again after HOLD_MS anyway). */
  private enqueueWork(site: HeldSite, work: () => Promise<void>): Promise<void> {
    const run = site.work.then(work).catch((err: unknown) => {
      this.log.error({ event: 'delivery.site.hold.failed', site: site.site, err }, 'holding or resuming the mail of a down site failed');
    });
    site.work = run;
    this.track(run);
    return run;
  }

  private track(task: Promise<unknown>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  /** Wakes up for the next probe due. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.unsubscribe ? this.deps.paths.nextProbeAt() : null;
    if (next === null) return;
    this.timer = setTimeout(() => this.probeDue(), Math.max(next - this.deps.clock.now(), 10));
    this.timer.unref();
  }

  /** One probe for each down path whose time has come; a path nobody asked for since its last probe is forgotten instead. */
  private probeDue(): void {
    const { paths, prober, metrics, clock } = this.deps;
    for (const entry of paths.dueProbes(clock.now())) {
      if (!entry.wanted && !this.held.has(entry.path.site)) {
        paths.forget(entry.path);
        metrics.pathsDown.dec({ egress_ip: ipLabel(entry.path.ip) });
        continue;
      }
      entry.wanted = false;
      entry.probing = true;
      const probe = prober.probe(entry, this.stopping.signal).then(
        (up) => {
          metrics.siteProbes.inc({ result: up ? 'up' : 'down' });
          if (!up) this.stillDown(entry);
        },
        (err: unknown) => {
          this.log.error({ event: 'delivery.probe.failed', ip: entry.path.ip, site: entry.path.site, err }, 'probing a down path failed');
          // As a failed probe: the next one waits longer, rather than coming at once.
          paths.probeFailed(entry, entry);
        },
      );
      this.track(
        probe.finally(() => {
          entry.probing = false;
          this.arm();
        }),
      );
    }
    this.arm();
  }

  /** A probe failed, so its site stays down: its held mail is held for longer before its hold runs out. */
  private stillDown(entry: DownPath): void {
    const site = this.held.get(entry.path.site);
    const now = this.deps.clock.now();
    if (!site || site.until - now > HOLD_MS / 2) return;
    site.until = now + HOLD_MS;
    this.holdDomains(site, [...site.domains]);
  }
}
