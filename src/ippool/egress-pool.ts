import type { Clock } from '../clock.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PoolBackend, ProviderName, Reaction, ReactionAction, ReputationFeed } from './contracts.ts';
import type { Egress } from './egress.ts';
import type { RateLimit, Shaping } from './shaping.ts';
import { dayWindow, hourWindow, type EffectiveStart, type WarmupCaps } from './warmup.ts';
import { WeightedRoundRobin } from './weighted-round-robin.ts';

/** An egress IP as the pool sees it. */
export interface PoolMember {
  address: string;
  hostname: string;
  pool: string;
  /** Configured weight; 0 takes the IP out of rotation. */
  weight: number;
  /** Warm-up plan and its configured start (00:00 UTC, ms); null for a warm IP. */
  warmup: { plan: string; start: number } | null;
}

/** The pool's rules, composed by the daemon from its configuration and the data in config/. */
export interface PoolPolicy {
  providerOfSite(site: string): ProviderName;
  /** The day 0 a warming member's plan counts from now (a restart after a long idle time is flagged). */
  warmupStart(input: { configuredStart: number; lastSentAt: number | null; restartedAt: number | null; now: number }): EffectiveStart;
  warmupCaps(input: { plan: string; start: number; provider: ProviderName; now: number }): WarmupCaps;
  /** Limits per (egress IP, destination site) for a provider. */
  shaping(provider: ProviderName): Shaping;
  /** Configured weight lowered by a reputation score below the floor; the reason says why. */
  adjustWeight(input: { baseWeight: number; score: number | null; provider: ProviderName }): { weight: number; reason: string | null };
  /** Rate while an IP comes back after the restriction `action` that ended at `endedAt`; null once fully back. */
  recoveryRate(input: { action: ReactionAction; endedAt: number; now: number; normal: RateLimit }): RateLimit | null;
  /** How long the ramp after a restriction lasts, so its record can expire. */
  recoveryMs: number;
}

export type Selection =
  | { ok: true; egress: Egress; provider: ProviderName }
  | { ok: false; provider: ProviderName; retryAt: number; reason: WaitReason };

type WaitReason = 'no-ip' | 'suspended' | 'throttled' | 'rate' | 'warmup-cap';

/** A restriction of an IP, for one provider or all ("*"), kept in pool state until it ends. */
interface Restriction {
  action: 'suspend' | 'throttle';
  ratePerHour?: number;
  rule: string;
  reason: string;
  until: number;
}

/** After a restriction ends, the IP ramps back up from a reduced rate. */
interface Recovery {
  action: ReactionAction;
  endedAt: number;
}

type Verdict = { ok: true } | { ok: false; retryAt: number; reason: WaitReason };

const ALL = '*';
/** How long an IP the host lacks stays suspended before it is tried again. */
const UNAVAILABLE_RETRY_MS = 10 * 60_000;
/** How often last-sent times are written out (they only need day precision). */
const LAST_SENT_WRITE_MS = 5 * 60_000;
/** Pool state is re-read this often, to see changes made by operators or other processes. */
const STATE_REFRESH_MS = 10_000;

export interface EgressPoolDeps {
  members: readonly PoolMember[];
  backend: PoolBackend;
  reputation: ReputationFeed;
  reactions: { evaluate(input: { ip: string; provider: ProviderName; outcome: DeliveryOutcome; now: number }): Reaction[] };
  policy: PoolPolicy;
  /** The egress when no IPs are configured at all: the OS default source address. */
  defaultEgress: Egress;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Chooses the egress IP for each delivery and reacts to what the remote servers answer.
 * Eligible: in the message's pool, weight above 0, not suspended (for the provider or at all),
 * within throttles, shaping rate and warm-up caps; among those a smooth weighted round-robin,
 * with a retry staying on the IP used before while it is eligible (greylisting). Usage, caps
 * and restrictions live in the pool backend (Redis or the local store) so they survive a
 * restart and are shared by every node.
 */
export class EgressPool {
  private readonly byPool = new Map<string, PoolMember[]>();
  private readonly byAddress = new Map<string, PoolMember>();
  private readonly rotations = new Map<string, WeightedRoundRobin<string>>();
  /** Pool state cache: restrictions, recoveries, last-sent times, plan restarts. */
  private state = new Map<string, { value: string; expiresAt: number | null }>();
  private readonly lastSentWritten = new Map<string, number>();
  /** Why an (IP, provider)'s weight is lowered now, to log changes only. */
  private readonly weightReasons = new Map<string, string>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: EgressPoolDeps) {
    this.log = deps.logger.child({ component: 'ippool' });
    for (const member of deps.members) {
      this.byAddress.set(member.address, member);
      const list = this.byPool.get(member.pool) ?? [];
      list.push(member);
      this.byPool.set(member.pool, list);
    }
  }

  async start(): Promise<void> {
    await this.refresh();
    this.refreshTimer = setInterval(() => void this.refresh().catch((err: unknown) => this.log.error({ event: 'ippool.refresh.failed', err }, 'reading pool state failed')), STATE_REFRESH_MS);
    this.refreshTimer.unref();
  }

  stop(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
  }

  /** Pool names with at least one member. */
  pools(): string[] {
    return [...this.byPool.keys()];
  }

  /**
   * Chooses the egress for `count` messages of one transaction to `site`. When no IP may send
   * now, says when to look again: the delivery waits (throttled), it does not fail.
   */
  async select(request: { pool: string; site: string; count: number; previous: string | null }): Promise<Selection> {
    const started = performance.now();
    const now = this.deps.clock.now();
    const provider = this.deps.policy.providerOfSite(request.site);
    if (this.byAddress.size === 0) return { ok: true, provider, egress: this.deps.defaultEgress };
    const members = this.byPool.get(request.pool) ?? [];
    const weights = new Map<string, number>();
    for (const member of members) weights.set(member.address, this.effectiveWeight(member, provider, now));

    let retryAt = Infinity;
    let reason: WaitReason = 'no-ip';
    const eligible = async (address: string) => {
      const verdict = await this.check(this.byAddress.get(address)!, provider, request.site, request.count, now);
      if (!verdict.ok && verdict.retryAt < retryAt) {
        retryAt = verdict.retryAt;
        reason = verdict.reason;
      }
      return verdict.ok;
    };

    let chosen: string | undefined;
    const previous = request.previous;
    if (previous && (weights.get(previous) ?? 0) > 0) {
      if (await eligible(previous)) chosen = previous;
      else weights.delete(previous);
    }
    chosen ??= await this.rotation(request.pool, provider).pick(weights, eligible);
    this.deps.metrics.selectionSeconds.observe((performance.now() - started) / 1000);

    if (!chosen) {
      this.deps.metrics.selectionWaits.inc({ pool: request.pool, reason });
      return { ok: false, provider, reason, retryAt: Number.isFinite(retryAt) ? retryAt : now + 60_000 };
    }
    const member = this.byAddress.get(chosen)!;
    this.touch(member, now);
    return { ok: true, provider, egress: { address: member.address, hostname: member.hostname } };
  }

  /**
   * Feeds the outcomes of one transaction from `ip` to reputation and reaction rules, applies
   * the reactions (throttle, suspend), and returns the outcomes to record: a `bounce` reaction
   * makes an outcome permanent. An IP the host lacks is suspended so its mail goes elsewhere.
   */
  async afterDelivery(ip: string | null, site: string, outcomes: DeliveryOutcome[]): Promise<DeliveryOutcome[]> {
    if (!ip || !this.byAddress.has(ip)) return outcomes;
    const now = this.deps.clock.now();
    const provider = this.deps.policy.providerOfSite(site);
    const { reputation, reactions } = this.deps;
    const reacted = new Map<DeliveryOutcome, DeliveryOutcome>();
    const result: DeliveryOutcome[] = [];
    for (const outcome of outcomes) {
      if (outcome.bounceClass === 'egress-unavailable') {
        await this.restrict(ip, ALL, { action: 'suspend', rule: 'egress-unavailable', reason: outcome.response, until: now + UNAVAILABLE_RETRY_MS }, now);
        result.push(outcome);
        continue;
      }
      reputation.record(ip, provider, outcome, now);
      // One reaction per distinct reply: the recipients of a failed transaction share theirs.
      let final = reacted.get(outcome);
      if (!final) {
        final = outcome;
        for (const reaction of reactions.evaluate({ ip, provider, outcome, now })) {
          if (reaction.action.kind === 'bounce') final = { ...final, disposition: 'permanent' };
          else await this.apply(reaction, now);
        }
        reacted.set(outcome, final);
      }
      result.push(final);
    }
    this.reportReputation(ip, provider, now);
    return result;
  }

  /**
   * The deliverer's limits for (ip, site): concurrent connections and messages per connection,
   * and a gate that waits until the connection rate allows a new connection.
   */
  connectionShaping(ip: string | null, site: string): { limits: { maxConnections: number; maxMessagesPerConnection: number }; beforeConnect: () => Promise<void> } {
    const shaping = this.deps.policy.shaping(this.deps.policy.providerOfSite(site));
    const key = `connect:${ip ?? 'default'}:${site}`;
    return {
      limits: { maxConnections: shaping.maxConnections, maxMessagesPerConnection: shaping.maxMessagesPerConnection },
      beforeConnect: async () => {
        for (;;) {
          const taken = await this.deps.backend.limiter.take(key, shaping.connectionRate, this.deps.clock.now());
          if (taken.allowed) return;
          await new Promise((resolve) => setTimeout(resolve, Math.max(taken.retryAfterMs, 1)));
        }
      },
    };
  }

  /** Why an IP may not send to a provider now, or ok. Side effect when ok: its usage is counted. */
  private async check(member: PoolMember, provider: ProviderName, site: string, count: number, now: number): Promise<Verdict> {
    const { backend, policy } = this.deps;
    const ip = member.address;
    for (const scope of [ALL, provider]) {
      const restriction = this.restriction(ip, scope, now);
      if (restriction?.action === 'suspend') return { ok: false, retryAt: restriction.until, reason: 'suspended' };
      if (restriction?.action === 'throttle') {
        const rate = { ratePerSecond: (restriction.ratePerHour ?? 0) / 3600, burst: 1 };
        const taken = await this.take(`throttle:${ip}:${scope}`, rate, now, count);
        if (!taken.allowed) return { ok: false, retryAt: now + taken.retryAfterMs, reason: 'throttled' };
      }
    }
    const normal = policy.shaping(provider).messageRate;
    const recovering = this.recovery(ip, provider, now);
    if (recovering) {
      const rate = policy.recoveryRate({ ...recovering, now, normal });
      if (rate) {
        const taken = await this.take(`recover:${ip}:${provider}`, rate, now, count);
        if (!taken.allowed) return { ok: false, retryAt: now + taken.retryAfterMs, reason: 'throttled' };
      }
    }
    const taken = await this.take(`rate:${ip}:${site}`, normal, now, count);
    if (!taken.allowed) return { ok: false, retryAt: now + taken.retryAfterMs, reason: 'rate' };
    return member.warmup ? this.reserveWarmup(member, member.warmup, provider, count, now) : { ok: true };
  }

  /**
   * Takes `count` tokens. A transaction with more recipients than the bucket holds takes the
   * whole bucket: it waits for a full bucket rather than never going out. A rate of zero (a
   * throttle to nothing) never allows.
   */
  private async take(key: string, limit: RateLimit, now: number, count: number): Promise<{ allowed: boolean; retryAfterMs: number }> {
    if (!(limit.ratePerSecond > 0)) return { allowed: false, retryAfterMs: 3_600_000 };
    const burst = Math.max(1, Math.floor(limit.burst));
    return this.deps.backend.limiter.take(key, { ratePerSecond: limit.ratePerSecond, burst }, now, Math.min(count, burst));
  }

  /** Counts `count` messages against the hour's and the day's cap, refusing when either would be exceeded. */
  private async reserveWarmup(member: PoolMember, warmup: NonNullable<PoolMember['warmup']>, provider: ProviderName, count: number, now: number): Promise<Verdict> {
    const { backend, policy, metrics } = this.deps;
    const start = this.warmupStart(member, warmup, now);
    const caps = policy.warmupCaps({ plan: warmup.plan, start, provider, now });
    const day = { egress_ip: member.address, plan: warmup.plan };
    if (caps.phase === 'warm') {
      metrics.ipWarmupDay.remove(day);
      return { ok: true };
    }
    metrics.ipWarmupDay.set(day, caps.day!);
    const labels = { egress_ip: member.address, provider };
    // The hour first: when it refuses, the day's count is untouched. A refusal by the day after
    // the hour accepted leaves the hour over-counted by `count`, which only errs on the safe side.
    for (const [name, window, cap] of [
      ['hour', hourWindow(now), caps.hourly],
      ['day', dayWindow(now), caps.daily],
    ] as const) {
      if (cap === null) continue;
      const { ok, total } = await backend.counters.reserve(`warmup:${member.address}:${provider}:${name}`, window.start, window.ms, count, cap);
      metrics.ipWarmupCap.set({ ...labels, window: name }, cap);
      metrics.ipWarmupUsage.set({ ...labels, window: name }, total);
      if (!ok) return { ok: false, retryAt: window.start + window.ms, reason: 'warmup-cap' };
    }
    return { ok: true };
  }

  /** The plan's start: the configured one, or a restart after the IP was idle too long (persisted). */
  private warmupStart(member: PoolMember, warmup: NonNullable<PoolMember['warmup']>, now: number): number {
    const { start, restarted } = this.deps.policy.warmupStart({
      configuredStart: warmup.start,
      lastSentAt: this.number(`last-sent:${member.address}`),
      restartedAt: this.number(`warmup-restart:${member.address}`),
      now,
    });
    if (restarted) {
      this.log.warn({ event: 'ippool.warmup.restarted', ip: member.address, plan: warmup.plan }, 'egress IP was idle too long: its warm-up plan starts again');
      void this.write(`warmup-restart:${member.address}`, String(start), null);
    }
    return start;
  }

  private effectiveWeight(member: PoolMember, provider: ProviderName, now: number): number {
    if (member.weight === 0) return 0;
    const { score } = this.deps.reputation.snapshot(member.address, provider, now);
    const { weight, reason } = this.deps.policy.adjustWeight({ baseWeight: member.weight, score, provider });
    this.deps.metrics.ipWeight.set({ egress_ip: member.address, provider }, weight);
    // Logged when it changes, so operators see why an IP gets less traffic (and when it recovers).
    const key = `${member.address}\n${provider}`;
    if ((this.weightReasons.get(key) ?? null) !== reason) {
      if (reason) this.log.warn({ event: 'ippool.weight.lowered', ip: member.address, provider, weight, reason }, reason);
      else this.log.info({ event: 'ippool.weight.restored', ip: member.address, provider, weight }, `weight of ${member.address} for ${provider} back to ${weight}`);
      if (reason) this.weightReasons.set(key, reason);
      else this.weightReasons.delete(key);
    }
    return weight;
  }

  private rotation(pool: string, provider: ProviderName): WeightedRoundRobin<string> {
    const key = `${pool}\n${provider}`;
    let rotation = this.rotations.get(key);
    if (!rotation) {
      rotation = new WeightedRoundRobin<string>();
      this.rotations.set(key, rotation);
    }
    return rotation;
  }

  private async apply(reaction: Reaction, now: number): Promise<void> {
    const until = now + reaction.durationMs;
    const base = { rule: reaction.rule, reason: reaction.reason, until };
    switch (reaction.action.kind) {
      case 'throttle':
        return this.restrict(reaction.ip, reaction.provider, { ...base, action: 'throttle', ratePerHour: reaction.action.ratePerHour }, now);
      case 'suspend-provider':
        return this.restrict(reaction.ip, reaction.provider, { ...base, action: 'suspend' }, now);
      case 'suspend-ip':
        return this.restrict(reaction.ip, ALL, { ...base, action: 'suspend' }, now);
      case 'bounce':
        return;
    }
  }

  /** Records a restriction and the recovery ramp that follows it; logs and reports new ones. */
  private async restrict(ip: string, scope: string, restriction: Restriction, now: number): Promise<void> {
    const current = this.restriction(ip, scope, now);
    // A throttle never shortens a running suspension, and a repeat never shortens a restriction.
    if (current?.action === 'suspend' && restriction.action === 'throttle') return;
    if (current && current.action === restriction.action && current.until >= restriction.until - 60_000) return;
    await this.write(`restrict:${ip}:${scope}`, JSON.stringify(restriction), restriction.until);
    const action: ReactionAction = restriction.action === 'throttle' ? { kind: 'throttle', ratePerHour: restriction.ratePerHour ?? 0 } : { kind: 'suspend-provider' };
    const recovery: Recovery = { action, endedAt: restriction.until };
    await this.write(`recover:${ip}:${scope}`, JSON.stringify(recovery), restriction.until + this.deps.policy.recoveryMs);
    this.deps.metrics.ipRestricted.set({ egress_ip: ip, provider: scope, action: restriction.action, reason: restriction.rule }, 1);
    this.log.warn(
      { event: `ippool.${restriction.action}`, ip, provider: scope, rule: restriction.rule, until: new Date(restriction.until).toISOString(), reply: restriction.reason, ratePerHour: restriction.ratePerHour },
      `egress IP ${ip} ${restriction.action === 'suspend' ? 'suspended' : 'throttled'} for ${scope === ALL ? 'every provider' : scope}: ${restriction.rule}`,
    );
  }

  private restriction(ip: string, scope: string, now: number): Restriction | null {
    const entry = this.state.get(`restrict:${ip}:${scope}`);
    if (!entry || (entry.expiresAt !== null && entry.expiresAt <= now)) return null;
    return JSON.parse(entry.value) as Restriction;
  }

  /** The restriction an IP is coming back from (the latest that has ended), or null. */
  private recovery(ip: string, provider: ProviderName, now: number): Recovery | null {
    let latest: Recovery | null = null;
    for (const scope of [ALL, provider]) {
      const entry = this.state.get(`recover:${ip}:${scope}`);
      if (!entry || (entry.expiresAt !== null && entry.expiresAt <= now)) continue;
      const recovery = JSON.parse(entry.value) as Recovery;
      if (recovery.endedAt <= now && (!latest || recovery.endedAt > latest.endedAt)) latest = recovery;
    }
    return latest;
  }

  /** Last-sent time drives the idle restart of warm-up plans; written out now and then. */
  private touch(member: PoolMember, now: number): void {
    const key = `last-sent:${member.address}`;
    if (now - (this.lastSentWritten.get(member.address) ?? 0) < LAST_SENT_WRITE_MS) {
      this.state.set(key, { value: String(now), expiresAt: null });
      return;
    }
    this.lastSentWritten.set(member.address, now);
    void this.write(key, String(now), null);
  }

  private number(key: string): number | null {
    const entry = this.state.get(key);
    return entry ? Number(entry.value) : null;
  }

  /**
   * Updates pool state here at once and in the backend. A backend failure is logged, not thrown:
   * it must never fail a delivery that already happened, and this process still applies the
   * entry from its own copy.
   */
  private async write(key: string, value: string, expiresAt: number | null): Promise<void> {
    this.state.set(key, { value, expiresAt });
    try {
      await this.deps.backend.state.set(key, value, expiresAt);
    } catch (err) {
      this.log.error({ event: 'ippool.state.write.failed', key, err }, 'writing pool state failed');
    }
  }

  /** Re-reads pool state and refreshes the restriction gauges from it. */
  private async refresh(): Promise<void> {
    const now = this.deps.clock.now();
    const entries = await this.deps.backend.state.list('', now);
    const next = new Map(entries.map((e) => [e.key, { value: e.value, expiresAt: e.expiresAt }]));
    for (const [key, entry] of this.state) {
      // Last-sent times not yet written out are newer than what the backend holds.
      if (key.startsWith('last-sent:') && Number(entry.value) > Number(next.get(key)?.value ?? 0)) next.set(key, entry);
      // A restriction whose write failed, or landed after this listing, still applies here.
      const live = entry.expiresAt === null || entry.expiresAt > now;
      if ((key.startsWith('restrict:') || key.startsWith('recover:')) && live && !next.has(key)) next.set(key, entry);
    }
    this.state = next;
    this.deps.metrics.ipRestricted.reset();
    for (const [key, entry] of next) {
      if (!key.startsWith('restrict:')) continue;
      const [, ip, scope] = key.split(':');
      const restriction = JSON.parse(entry.value) as Restriction;
      this.deps.metrics.ipRestricted.set({ egress_ip: ip!, provider: scope!, action: restriction.action, reason: restriction.rule }, 1);
    }
  }

  private reportReputation(ip: string, provider: ProviderName, now: number): void {
    const snapshot = this.deps.reputation.snapshot(ip, provider, now);
    const labels = { egress_ip: ip, provider };
    if (snapshot.score !== null) this.deps.metrics.ipReputationScore.set(labels, snapshot.score);
    for (const kind of ['accepted', 'deferred', 'blocked', 'complaints'] as const) {
      this.deps.metrics.ipReputationInputs.set({ ...labels, kind }, snapshot[kind]);
    }
  }
}
