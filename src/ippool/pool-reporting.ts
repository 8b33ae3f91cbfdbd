import type { Counter, Gauge, LabelValues } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ProviderName, ReputationSnapshot, WaitReason } from './contracts.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import type { ReputationEntry } from './reputation.ts';
import { describeScope, scopeLabel, scopeProvider, type Scope } from './restriction-scope.ts';
import type { Restriction } from './restrictions.ts';

/**
 * What the egress pool tells operators: the gauges of restrictions, reputation, weights and
 * warm-up, the selection counters, and a log line when an IP is restricted or its weight
 * changes, and why. The per-IP gauges cover the members of the setup in effect: an IP a reload
 * removes leaves them at once.
 */
export class PoolReporting {
  /** Why an (IP, provider)'s weight is lowered now, to log changes only. */
  private readonly weightReasons = new Map<string, Map<ProviderName, string>>();
  /** Pools without members whose mail was sent through another pool since the last reconfigure, to warn once each. */
  private readonly fallbacks = new Set<string>();
  private readonly series = new IpSeries();
  /** The (IP, provider) pairs whose reputation gauges are written, keyed by JSON of the pair. */
  private readonly reputationReported = new Map<string, { ip: string; provider: ProviderName }>();
  /** The weight gauge's value per IP and provider, as last written. */
  private readonly weights = new Map<string, Map<ProviderName, number>>();

  constructor(
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  selection(seconds: number): void {
    this.metrics.selectionSeconds.observe(seconds);
  }

  selectionWait(pool: string, reason: WaitReason): void {
    this.metrics.selectionWaits.inc({ pool, reason });
  }

  /** Mail of `pool`, which has no egress IP, is sent through `instead`: counted, and a warning the first time. */
  poolFallback(pool: string, instead: string): void {
    this.metrics.poolFallbacks.inc({ pool });
    if (this.fallbacks.has(pool)) return;
    this.fallbacks.add(pool);
    this.log.warn({ event: 'ippool.pool.fallback', pool, instead }, `pool ${pool} has no egress IP: its mail goes through pool ${instead}`);
  }

  /**
   * A new setup with these `members`: the series of IPs no longer among them are removed (the
   * restriction gauge is rebuilt from `state`), and a pool still (or again) without members is
   * warned about once more.
   */
  reconfigured(members: ReadonlyMap<string, unknown>, state: PoolStateCache): void {
    this.fallbacks.clear();
    this.series.keepOnly(members);
    for (const ip of this.weightReasons.keys()) if (!members.has(ip)) this.weightReasons.delete(ip);
    for (const ip of this.weights.keys()) if (!members.has(ip)) this.weights.delete(ip);
    for (const [key, { ip }] of this.reputationReported) if (!members.has(ip)) this.reputationReported.delete(key);
    this.restrictions(state, members);
  }

  /**
   * The gauge of restrictions, rebuilt from pool state: a restriction that has ended leaves it.
   * Restrictions toward single sites (restriction-scope.ts) are counted in one series per IP,
   * action and rule, labelled `<provider>:sites`: the sites are named by whoever answers, so one
   * series each would let them grow the metrics without bound. The log line names each site.
   * Only `members` are reported: pool state shared with other nodes holds their IPs too.
   */
  restrictions(state: PoolStateCache, members: ReadonlyMap<string, unknown>): void {
    this.metrics.ipRestricted.reset();
    for (const { ip, scope, restriction } of state.restrictions()) {
      if (!members.has(ip)) continue;
      const labels = { egress_ip: ip, provider: gaugeScope(scope), action: restriction.action, reason: restriction.rule };
      if (scope.kind === 'site') this.metrics.ipRestricted.inc(labels);
      else this.metrics.ipRestricted.set(labels, 1);
    }
  }

  /**
   * A restriction this process has just made (`replaced`: the one it replaces, or null): a
   * warning naming its scope (`provider`, plus `site` for a site), and the gauge at once (the
   * next refresh rebuilds it from pool state).
   */
  newRestriction(ip: string, scope: Scope, restriction: Restriction, replaced: Restriction | null): void {
    const labels = { egress_ip: ip, provider: gaugeScope(scope), action: restriction.action, reason: restriction.rule };
    if (scope.kind !== 'site') this.metrics.ipRestricted.set(labels, 1);
    else if (!replaced) this.metrics.ipRestricted.inc(labels);
    const site = scope.kind === 'site' ? scope.site : undefined;
    this.log.warn(
      { event: `ippool.${restriction.action}`, ip, provider: scopeProvider(scope), site, rule: restriction.rule, until: new Date(restriction.until).toISOString(), reply: restriction.reason, ratePerHour: restriction.ratePerHour },
      `egress IP ${ip} ${restriction.action === 'suspend' ? 'suspended' : 'throttled'} for ${describeScope(scope)}: ${restriction.rule}`,
    );
  }

  /** A reaction toward one more site that was not kept: the IP is restricted toward `max` sites already. */
  siteRestrictionsFull(ip: string, scope: Scope, restriction: Restriction, max: number): void {
    this.log.warn(
      { event: 'ippool.site.restrictions.full', ip, provider: scopeProvider(scope), site: scope.kind === 'site' ? scope.site : undefined, rule: restriction.rule, max },
      `egress IP ${ip} is restricted toward ${max} sites already; not kept for ${describeScope(scope)}: ${restriction.rule}`,
    );
  }

  /**
   * Which pool each egress IP is in and the name it greets with (rookery_ip_info, 1 per IP), so
   * a dashboard can pick the other per-IP series of one pool; rebuilt whole for each setup.
   */
  membership(members: Iterable<{ address: string; pool: string; hostname: string }>): void {
    this.metrics.ipInfo.reset();
    for (const m of members) this.metrics.ipInfo.set({ egress_ip: m.address, pool: m.pool, hostname: m.hostname }, 1);
  }

  /** An attempt through `ip` to `provider`, with its disposition after the reaction rules: volume per IP and provider. */
  attempt(ip: string, provider: ProviderName, disposition: string): void {
    this.series.inc(this.metrics.ipAttempts, { egress_ip: ip, provider, disposition });
  }

  /**
   * The reputation of `ip` with `provider` now. A null score (fewer outcomes in the window than
   * reputation.minSamples) removes the score's series: a low value left standing would keep
   * RookeryIpReputationLow firing after the pool stopped judging the IP by it.
   */
  reputation(ip: string, provider: ProviderName, snapshot: ReputationSnapshot): void {
    const labels = { egress_ip: ip, provider };
    if (snapshot.score !== null) this.series.set(this.metrics.ipReputationScore, labels, snapshot.score);
    else this.series.remove(this.metrics.ipReputationScore, labels);
    for (const kind of REPUTATION_INPUTS) this.series.set(this.metrics.ipReputationInputs, { ...labels, kind }, snapshot[kind]);
    this.reputationReported.set(JSON.stringify([ip, provider]), { ip, provider });
  }

  /**
   * Every (IP, provider) the reputation tracker holds now, for the `members`: the window slides
   * without any delivery, so a score is refreshed here (with the pool's periodic work), and a
   * pair the tracker has dropped (nothing left in its window) leaves the gauges.
   */
  reputations(entries: readonly ReputationEntry[], members: ReadonlyMap<string, unknown>): void {
    const held = new Set<string>();
    for (const { ip, provider, snapshot } of entries) {
      if (!members.has(ip)) continue;
      held.add(JSON.stringify([ip, provider]));
      this.reputation(ip, provider, snapshot);
    }
    for (const [key, { ip, provider }] of this.reputationReported) {
      if (held.has(key)) continue;
      this.series.remove(this.metrics.ipReputationScore, { egress_ip: ip, provider });
      for (const kind of REPUTATION_INPUTS) this.series.remove(this.metrics.ipReputationInputs, { egress_ip: ip, provider, kind });
      this.reputationReported.delete(key);
    }
  }

  /**
   * The weight an IP has for a provider now; a change of the reason is logged, so operators see
   * why an IP gets less traffic (and when it recovers). Reported for every eligible IP at every
   * selection: the gauge is written only when the weight changed.
   */
  weight(ip: string, provider: ProviderName, weight: number, reason: string | null): void {
    const written = this.weights.get(ip);
    if (written?.get(provider) !== weight) {
      this.series.set(this.metrics.ipWeight, { egress_ip: ip, provider }, weight);
      if (written) written.set(provider, weight);
      else this.weights.set(ip, new Map([[provider, weight]]));
    }
    const reasons = this.weightReasons.get(ip);
    if ((reasons?.get(provider) ?? null) === reason) return;
    if (reason) {
      this.log.warn({ event: 'ippool.weight.lowered', ip, provider, weight, reason }, reason);
      if (reasons) reasons.set(provider, reason);
      else this.weightReasons.set(ip, new Map([[provider, reason]]));
    } else {
      this.log.info({ event: 'ippool.weight.restored', ip, provider, weight }, `weight of ${ip} for ${provider} back to ${weight}`);
      reasons?.delete(provider);
    }
  }

  /** The plan day of a warming IP; null once it is warm (the gauge goes away). */
  warmupDay(ip: string, plan: string, day: number | null): void {
    if (day === null) this.series.remove(this.metrics.ipWarmupDay, { egress_ip: ip, plan });
    else this.series.set(this.metrics.ipWarmupDay, { egress_ip: ip, plan }, day);
  }

  warmupWindow(ip: string, provider: ProviderName, window: 'hour' | 'day', cap: number, used: number): void {
    const labels = { egress_ip: ip, provider, window };
    this.series.set(this.metrics.ipWarmupCap, labels, cap);
    this.series.set(this.metrics.ipWarmupUsage, labels, used);
  }
}

const REPUTATION_INPUTS = ['accepted', 'deferred', 'blocked', 'complaints'] as const;

/** The provider label of the restriction gauge: '*', the provider, or `<provider>:sites` for the count of sites. */
function gaugeScope(scope: Scope): string {
  return scope.kind === 'site' ? `${scope.provider}:sites` : scopeLabel(scope);
}

/** The series of per-IP metrics written for each egress IP, so that an IP's series can go with it. */
class IpSeries {
  /** IP -> metric -> its labels (as JSON) -> how to remove that series. */
  private readonly written = new Map<string, Map<object, Map<string, () => void>>>();

  set<T extends string>(gauge: Gauge<T>, labels: LabelValues<T> & { egress_ip: string }, value: number): void {
    gauge.set(labels, value);
    this.track(gauge, labels, () => gauge.remove(labels));
  }

  /** Counters too: an IP's attempts leave /metrics with it (rate() over the gap is what it was). */
  inc<T extends string>(counter: Counter<T>, labels: LabelValues<T> & { egress_ip: string }): void {
    counter.inc(labels);
    this.track(counter, labels, () => counter.remove(labels));
  }

  private track(metric: object, labels: { egress_ip: string }, remove: () => void): void {
    let byMetric = this.written.get(labels.egress_ip);
    if (!byMetric) this.written.set(labels.egress_ip, (byMetric = new Map()));
    let series = byMetric.get(metric);
    if (!series) byMetric.set(metric, (series = new Map()));
    series.set(JSON.stringify(labels), remove);
  }

  remove<T extends string>(gauge: Gauge<T>, labels: LabelValues<T> & { egress_ip: string }): void {
    gauge.remove(labels);
    this.written.get(labels.egress_ip)?.get(gauge)?.delete(JSON.stringify(labels));
  }

  /** Removes every series of the IPs that are not `members`. */
  keepOnly(members: ReadonlyMap<string, unknown>): void {
    for (const [ip, byGauge] of this.written) {
      if (members.has(ip)) continue;
      for (const series of byGauge.values()) for (const remove of series.values()) remove();
      this.written.delete(ip);
    }
  }
}
