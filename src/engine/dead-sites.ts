import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import { ipLabel, type Metrics } from '../observability/metrics.ts';
import type { Store } from '../storage/store.ts';
import type { EgressPath } from '../ippool/egress-path.ts';
import type { DeliveryJob } from './delivery-job.ts';
import { HeldMail } from './held-mail.ts';
import type { DownPath, PathHealth } from './path-health.ts';
import { PathProbes } from './path-probes.ts';
import type { Router } from './routing.ts';
import type { Deliverer } from './smtp-deliverer.ts';

/**
 * Destination sites that no egress IP can reach, held as a whole (Postfix's dead destinations):
 * one event, not an attempt per message. A site is held once a delivery to it waits with every
 * egress IP the pool asked refused because its path to the site is down (PathHealth), or waits
 * on a down path from the OS default address (no egress IPs). An IP that is only at a warm-up
 * cap, throttled or suspended can still reach the site: its mail waits for that IP, the site is
 * not held. Held, a job claimed for the site is deferred without an attempt or a connection (a
 * wait, as 'throttled' is), and only the probes connect: one per down path and interval. The
 * first probe (or delivery) that gets through ends the hold and makes its mail due at once.
 *
 * A hold lasts `holdMs` (an hour) and is never renewed on its own say. Halfway through, one held
 * job goes through egress IP selection again, which passes over the down paths (the trial: one
 * held row is made due, and the first job claimed for the site is let through): the hold is
 * renewed only when that job finds no IP either, and for the domains that still route to the
 * site; it ends at once when the job finds one. A hold whose trial never comes back (its domains
 * moved to another MX, no mail left) ends on time, and the next job for the site decides afresh.
 * So a hold this node forgets (a restart) or one that outlives its domains moving elsewhere costs
 * an hour at most, and held mail still bounces at delivery.maxAge.
 *
 * Where the queue is this node's alone (SQLite), the queued mail of a held site's domains is
 * deferred in bulk to the hold's end (HeldMail); the scheduler waits for a first bulk hold, whose
 * rows are due now, while a renewal moves rows that are not due yet in the background. A queue
 * that several nodes share (PostgreSQL) is never moved in bulk: each node sends from its own IPs,
 * and one node's view of a site must not hold mail another node can deliver. There a job this
 * node claims for a site it holds waits only until the site's next probe here, when any node may
 * claim it again, and a hold simply ends on time (no trial: nothing was moved).
 *
 * Over 300 lines: a hold's whole life (decision, trial, renewal, end, and the timer that drives
 * them) is one state machine, checked most easily in one place; its probes (PathProbes) and its
 * bulk store moves (HeldMail) live in files of their own.
 */

/** How long a hold lasts unless its trial renews it. */
const HOLD_MS = 60 * 60_000;
/** After a site came back, when held mail is resumed a second time (jobs held as it came back). */
const RESUME_AGAIN_MS = 5_000;

/** What an attempt of a job produced: per recipient, and for a wait when it ends and which egress IPs it waits for. */
export interface JobOutcomes {
  outcomes: DeliveryOutcome[];
  waitUntil?: number;
  /** For a wait for an egress IP: the IPs the pool asked, each of which refused. */
  asked?: readonly string[];
  /** The wait is for an operator's pause of the pool's egress IPs: it does not age the mail out (retry-policy.ts). */
  paused?: boolean;
}

interface HeldSite {
  site: string;
  since: number;
  /** The domains routed to the site that are held (those of the jobs that found it down). */
  domains: Set<string>;
  /** When the hold ends, unless the site comes back first or its trial renews it. */
  until: number;
  /** When its trial is due (halfway through the hold; never on a shared queue). */
  trialAt: number;
  /** 'wanted': the next job claimed for the site goes through selection; 'running': it is doing so. */
  trial: 'wanted' | 'running' | null;
  outcome: DeliveryOutcome;
}

export interface DeadSitesDeps {
  store: Pick<Store, 'driver' | 'holdDomains' | 'resumeDomains'>;
  /** The ready queues' path health, kept by the deliverer. */
  paths: PathHealth;
  prober: Pick<Deliverer, 'probe'>;
  /** Where the held domains route now: a renewal keeps only those still routed to the site. */
  router: Pick<Router, 'resolve'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** delivery.maxAge, read at each hold: held mail still bounces on time. */
  maxAgeMs: () => number;
  /** Held mail is due now: the scheduler should look at the queue. */
  onResumed: () => void;
  /** How long a hold lasts (default an hour). */
  holdMs?: number;
}

/** The outcome recorded for the mail of a held site: a wait, not an attempt. */
function siteDown(site: string, cause: DeliveryOutcome): DeliveryOutcome {
  const response = `not tried: no egress IP can reach ${site} now (${cause.response}); held until a probe connection gets through`;
  return { disposition: 'throttled', code: null, enhanced: '4.4.1', response, stage: 'connect', bounceClass: 'connection', remoteHost: cause.remoteHost, egressIp: null };
}

export class DeadSites {
  private readonly held = new Map<string, HeldSite>();
  private readonly probes: PathProbes;
  private readonly mail: HeldMail;
  /** The queue is this node's alone: held mail is moved in bulk (see the file's comment). */
  private readonly bulk: boolean;
  private readonly holdMs: number;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: DeadSitesDeps) {
    this.log = deps.logger.child({ component: 'delivery' });
    this.mail = new HeldMail({ store: deps.store, logger: this.log, maxAgeMs: deps.maxAgeMs });
    this.probes = new PathProbes({ paths: deps.paths, prober: deps.prober, metrics: deps.metrics, log: this.log, held: (site) => this.held.has(site), onSettled: () => this.arm() });
    this.bulk = deps.store.driver === 'sqlite';
    this.holdMs = deps.holdMs ?? HOLD_MS;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.probes.start();
    this.mail.start();
    this.unsubscribe = this.deps.paths.subscribe({ down: (entry) => this.pathDown(entry), connected: (path, wasDown) => this.connected(path, wasDown) });
    this.arm();
  }

  /** Stops probing (probes under way are cut short); waits for them and for store operations under way. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.probes.stop();
    await this.mail.stop();
  }

  /**
   * Before an attempt: when the job's site is held, what to record for it (a wait, no attempt)
   * and its domains join the hold; null when the site is not held, or when the job is the hold's
   * trial (it goes through selection, and review() judges what it found).
   */
  holdJob(job: DeliveryJob): JobOutcomes | null {
    const site = job.route.ok ? this.current(job.route.site) : undefined;
    if (!site) return null;
    if (site.trial === 'wanted') {
      site.trial = 'running';
      return null;
    }
    return this.hold(site, job);
  }

  /**
   * After an attempt: a job whose recipients (or some of them) wait because no egress IP can
   * reach its site holds the site (see the file's comment). The answer of a held site's trial
   * renews its hold, or ends it when the job found an IP that can reach the site.
   */
  review(job: DeliveryJob, sent: JobOutcomes): JobOutcomes {
    if (!job.route.ok) return sent;
    const name = job.route.site;
    const site = this.current(name);
    const noIp = this.noIp(name, sent);
    if (site?.trial === 'running') {
      if (!noIp) {
        this.release(site, { released: 'an egress IP can take its mail' });
        return sent;
      }
      this.renew(site);
    }
    return noIp ? this.hold(site ?? this.holdSite(name), job, sent.outcomes) : sent;
  }

  /** The hold of `site` in force at `now`, read without ending one that ran out (GET /v1/explain); null when not held. */
  heldSite(site: string, now: number): { since: number; until: number; reason: string } | null {
    const held = this.held.get(site);
    return held && held.until > now ? { since: held.since, until: held.until, reason: held.outcome.response } : null;
  }

  /** Resolves once no bulk hold of due rows is under way: the scheduler waits for it before claiming (see HeldMail.holdsDone). */
  holdsDone(): Promise<void> {
    return this.mail.holdsDone();
  }

  /** Whether the attempt found no egress IP that can reach the site: every IP the pool asked has its path down, or the default address's is. */
  private noIp(site: string, sent: JobOutcomes): boolean {
    if (!sent.outcomes.some((o) => o.disposition === 'throttled')) return false;
    const down = this.deps.paths.ofSite(site);
    const isDown = (ip: string | null) => down.some((d) => d.path.ip === ip);
    return sent.asked ? sent.asked.length > 0 && sent.asked.every(isDown) : isDown(null);
  }

  /** The held site, unless its hold has ended (then it is released: its mail goes through selection again). */
  private current(name: string): HeldSite | undefined {
    const site = this.held.get(name);
    if (site && site.until <= this.deps.clock.now()) {
      this.release(site, { released: 'its hold ended' });
      return undefined;
    }
    return site;
  }

  /** The job's outcomes on a held site: those that went out (of `outcomes`) stay, every wait becomes the site's. */
  private hold(site: HeldSite, job: DeliveryJob, outcomes?: DeliveryOutcome[]): JobOutcomes {
    const fresh = [...new Set(job.rows.map((row) => row.domain))].filter((domain) => !site.domains.has(domain));
    for (const domain of fresh) site.domains.add(domain);
    // Their queued mail is due now: the scheduler waits for this hold.
    if (fresh.length && this.bulk) void this.moveHeld(site, fresh, true);
    const held = job.rows.map((_, i) => (outcomes && outcomes[i]!.disposition !== 'throttled' ? outcomes[i]! : site.outcome));
    this.deps.metrics.siteHeld.inc(held.filter((o) => o === site.outcome).length);
    return { outcomes: held, waitUntil: this.waitFor(site) };
  }

  /**
   * When a held job is due again: at the hold's end where held mail waits for it (never sooner
   * than one probe interval from now); on a shared queue at the site's next probe here.
   */
  private waitFor(site: HeldSite): number {
    const now = this.deps.clock.now();
    const down = this.deps.paths.ofSite(site.site);
    const soonest = down.length ? now + Math.min(...down.map((d) => d.intervalMs)) : now;
    const probeAt = down.length ? Math.min(...down.map((d) => d.probeAt)) : now;
    return Math.max(this.bulk ? site.until : probeAt, soonest);
  }

  private holdSite(name: string): HeldSite {
    const now = this.deps.clock.now();
    const down = this.deps.paths.ofSite(name);
    const cause = down[0]!.outcome;
    const site: HeldSite = { site: name, since: now, domains: new Set(), until: now + this.holdMs, trialAt: this.bulk ? now + this.holdMs / 2 : Infinity, trial: null, outcome: siteDown(name, cause) };
    this.held.set(name, site);
    this.deps.metrics.sitesDown.set(this.held.size);
    const probeAt = new Date(Math.min(...down.map((d) => d.probeAt))).toISOString();
    const fields = { event: 'delivery.site.down', site: name, ips: down.map((d) => ipLabel(d.path.ip)), response: cause.response, probeAt };
    this.log.warn(fields, `no egress IP can reach ${name}: its mail is held until a probe connection gets through`);
    this.arm();
    return site;
  }

  /** The trial found no IP either: the hold goes on for another holdMs, for the domains that still route to the site. */
  private renew(site: HeldSite): void {
    const now = this.deps.clock.now();
    site.until = now + this.holdMs;
    site.trialAt = now + this.holdMs / 2;
    site.trial = null;
    this.arm();
    void this.movedAway(site).then((moved) => {
      // Released meanwhile (a probe got through): its mail is due, not to be held again.
      if (this.held.get(site.site) !== site) return;
      for (const domain of moved) site.domains.delete(domain);
      const domains = [...site.domains];
      this.log.debug({ event: 'delivery.site.renewed', site: site.site, domains, until: new Date(site.until).toISOString() }, 'no egress IP can reach the site yet: its hold goes on');
      // Rows not due yet (held until the hold's previous end): moved in the background.
      if (domains.length) return this.moveHeld(site, domains, false);
    });
  }

  /** The site's held domains that no longer route to it (their MX moved, or cannot be resolved): they are let go. */
  private async movedAway(site: HeldSite): Promise<string[]> {
    const domains = [...site.domains];
    const routes = await Promise.all(domains.map((domain) => this.deps.router.resolve(domain).catch(() => null)));
    return domains.filter((_, i) => !(routes[i]?.ok && routes[i].site === site.site));
  }

  /** Defers the queued mail of `domains` to the site's hold end, in bulk. */
  private async moveHeld(site: HeldSite, domains: string[], due: boolean): Promise<void> {
    const held = await this.mail.hold(site, domains, due);
    this.deps.metrics.siteHeld.inc(held);
    this.log.debug({ event: 'delivery.site.held', site: site.site, domains, recipients: held }, 'queued mail of a down site deferred');
  }

  /**
   * Ends a hold. Its held mail is due now: a probe got through ('up'), or its trial found an IP
   * ('released'); or at the hold's end, which has come ('released' too).
   */
  private release(site: HeldSite, how: { up: { ip: string | null } } | { released: string }): void {
    if (this.held.get(site.site) !== site) return;
    this.held.delete(site.site);
    this.deps.metrics.sitesDown.set(this.held.size);
    const now = this.deps.clock.now();
    const fields =
      'up' in how
        ? { event: 'delivery.site.up', site: site.site, ip: how.up.ip, downForMs: now - site.since }
        : { event: 'delivery.site.released', site: site.site, reason: how.released, heldForMs: now - site.since };
    const message = 'up' in how ? `${site.site} is reachable again: its held mail is due` : `${site.site} is held no longer (${how.released}): its mail goes through egress IP selection again`;
    if (!this.bulk || site.until <= now) {
      this.log.info(fields, message);
      return;
    }
    void (async () => {
      this.log.info({ ...fields, resumed: await this.resume(site) }, message);
      // A job held just before the hold ended records its wait just after: a second pass frees it too.
      await this.mail.pause(site, RESUME_AGAIN_MS);
      await this.resume(site);
    })();
  }

  /** Makes the site's held mail due now (or `limit` rows of it); the scheduler is woken as soon as the first of it is. */
  private resume(site: HeldSite, limit?: number): Promise<number> {
    return this.mail.resume(site, () => this.deps.clock.now(), this.deps.onResumed, limit);
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
    if (site) this.release(site, { up: { ip: path.ip } });
  }

  /** Wakes up for the next probe, trial or hold end due. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.unsubscribe) return;
    const times = [...this.held.values()].map((site) => (site.trial === null ? Math.min(site.trialAt, site.until) : site.until));
    const probe = this.deps.paths.nextProbeAt();
    if (probe !== null) times.push(probe);
    if (!times.length) return;
    this.timer = setTimeout(() => this.due(), Math.max(Math.min(...times) - this.deps.clock.now(), 10));
    this.timer.unref();
  }

  /** Runs what is due: probes, trials, the end of holds. */
  private due(): void {
    const now = this.deps.clock.now();
    this.probes.run(now);
    for (const site of [...this.held.values()]) {
      if (site.until <= now) this.release(site, { released: 'its hold ended' });
      else if (site.trial === null && site.trialAt <= now) this.startTrial(site);
    }
    this.arm();
  }

  /** Makes one held row due, so that a job for the site goes through selection (holdJob lets the first one pass). */
  private startTrial(site: HeldSite): void {
    site.trial = 'wanted';
    void this.resume(site, 1);
  }
}
