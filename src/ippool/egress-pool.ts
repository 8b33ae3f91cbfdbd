import type { Clock } from '../clock.ts';
import type { BlocklistState } from '../storage/blocklist-states.ts';
import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { IpPauses, PoolBackend, ProviderName, Reaction, ReactionAction, Verdict, WaitReason } from './contracts.ts';
import type { EgressPath, PathRates } from './egress-path.ts';
import type { Egress } from './egress.ts';
import { gatesOf } from './eligibility.ts';
import type { IpOperations } from './ip-operations.ts';
import { weightOf } from './member-settings.ts';
import { explainPool, type PoolExplanation } from './pool-explanation.ts';
import { PoolReporting } from './pool-reporting.ts';
import { snapshotIps, type IpSnapshot } from './pool-snapshot.ts';
import { activateSetup, sendingPool, type ActiveSetup, type PoolSetup } from './pool-setup.ts';
import { PoolStateCache } from './pool-state-cache.ts';
import { ALL_PROVIDERS, scopeProvider, type Scope } from './restriction-scope.ts';
import type { ReputationTracker } from './reputation.ts';
import type { BlocklistRestriction, Recovery, Restriction } from './restrictions.ts';
import type { RateLimit, Shaping } from './shaping.ts';
import { bucketSize, takeTokens, type Taken } from './token-buckets.ts';
import type { EffectiveStart, WarmupCaps } from './warmup.ts';
import { WeightedRoundRobin } from './weighted-round-robin.ts';

/** An egress IP as the pool sees it. */
export interface PoolMember {
  address: string;
  hostname: string;
  pool: string;
  /** Configured weight; 0 takes the IP out of rotation (an operator's override replaces it: ip-operations.ts). */
  weight: number;
  /** Warm-up plan and its configured start (00:00 UTC, ms); null for a warm IP. */
  warmup: { plan: string; start: number } | null;
}

/** The pool's rules, composed by the daemon from its configuration and the data in config/. */
export interface PoolPolicy {
  providerOfSite(site: string): ProviderName;
  /** Every destination provider, in match order (the fallback last). */
  providers(): readonly ProviderName[];
  /** The day 0 a warming member's plan counts from now (a restart after a long idle time is flagged). */
  warmupStart(input: { configuredStart: number; lastSentAt: number | null; restartedAt: number | null; now: number }): EffectiveStart;
  warmupCaps(input: { plan: string; start: number; provider: ProviderName; now: number }): WarmupCaps;
  /** The names of the warm-up plans (config/warmup-plans.yaml and warmup.plans). */
  warmupPlans(): readonly string[];
  /** Limits per (egress IP, destination site) for a provider. */
  shaping(provider: ProviderName): Shaping;
  /** Configured weight lowered by a reputation score below the floor; the reason says why. */
  adjustWeight(input: { baseWeight: number; score: number | null; provider: ProviderName }): { weight: number; reason: string | null };
  /** Rate while an IP comes back after the restriction `action` that ended at `endedAt`; null once fully back. */
  recoveryRate(input: { action: ReactionAction; endedAt: number; now: number; normal: RateLimit }): RateLimit | null;
  /**
   * When the ramp after the restriction `action` that ends at `endedAt` reaches the provider's
   * normal rate, so that its record expires then (for every provider: the default shaping's).
   */
  recoveryEndsAt(input: { action: ReactionAction; endedAt: number; provider: ProviderName }): number;
}

export type Selection =
  /** `granted`: how many of the `count` messages may go in this transaction; the rest are to be selected again. */
  | { ok: true; egress: Egress; path: EgressPath; granted: number }
  /** `asked`: the IPs asked, each of which refused (the reason and retryAt are the earliest one's). */
  | { ok: false; provider: ProviderName; retryAt: number; reason: WaitReason; asked: readonly string[] };

/** How long an IP the host lacks stays suspended before it is tried again. */
const UNAVAILABLE_RETRY_MS = 10 * 60_000;
/**
 * While an operator's pause of an IP leaves a pool without one, its mail looks again this often
 * (or at the pause's end, when sooner): a resume is not announced to the rows that wait. Each look
 * is an event row per recipient, so not every minute: a large backlog held through a long pause
 * would write that many rows a minute. POST /v1/queue/retry of the pool sends it at once.
 */
const PAUSED_IP_RECHECK_MS = 10 * 60_000;
/** Pool state is re-read this often, to see changes made by operators or other processes. */
const STATE_REFRESH_MS = 10_000;
/**
 * Sites of the fallback provider one IP may be restricted toward at once. Each is a row of pool
 * state that every node lists every refresh, and the sites are chosen by whoever answers: beyond
 * this, a site's reaction is logged and not kept (its replies still defer its own mail).
 */
const MAX_SITE_RESTRICTIONS_PER_IP = 200;

export interface EgressPoolDeps extends PoolSetup {
  backend: PoolBackend;
  /** Its entries() refresh the reputation gauges with the pool's periodic work. */
  reputation: ReputationTracker;
  /** Each path's message rate (the engine's ready queues). */
  paths: PathRates;
  /** The egress when no IPs are configured at all: the OS default source address. */
  defaultEgress: Egress;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** The operator's pauses of egress IPs; none by default. */
  pauses?: IpPauses;
  /** What the blocklist watch last found for these IPs (blocklistStatesOf), for snapshots; none by default. */
  blocklistStates?: (ips: readonly string[]) => Promise<BlocklistState[]>;
}

/**
 * Chooses the egress IP for each delivery and reacts to what the remote servers answer.
 * Eligible: in the message's pool (the default pool when the message's pool has no IP:
 * pool-setup.ts), weight above 0, not paused by an operator, not suspended (for the provider,
 * for the site when the provider is the fallback one, or at all: restriction-scope.ts), within
 * throttles, the path's message rate and warm-up caps; among those a smooth weighted
 * round-robin, with a retry staying on the IP used before while it is eligible (greylisting).
 * Usage, caps and restrictions live in the pool backend (Redis or the local store) so they
 * survive a restart and are shared by every node.
 *
 * The members, policy and reaction rules (the setup) are replaced whole when the configuration
 * is reloaded; each selection and each delivery's feedback reads one setup from start to end.
 * What the pool learned (restrictions, usage, reputation, the rotations' places) is kept.
 */
export class EgressPool {
  private setup: ActiveSetup;
  /** Per pool, per provider. */
  private readonly rotations = new Map<string, Map<ProviderName, WeightedRoundRobin<string>>>();
  private readonly state: PoolStateCache;
  private readonly reporting: PoolReporting;
  private refreshTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: EgressPoolDeps) {
    this.log = deps.logger.child({ component: 'ippool' });
    this.state = new PoolStateCache(deps.backend.state, this.log);
    this.reporting = new PoolReporting(deps.metrics, this.log);
    this.setup = this.activate(deps);
    this.reporting.membership(this.setup.members);
  }

  private activate(setup: PoolSetup): ActiveSetup {
    return activateSetup(setup, { counters: this.deps.backend.counters, state: this.state, reporting: this.reporting, log: this.log, clock: this.deps.clock });
  }

  /** The operator's run-time changes (the control API): suspensions and weights. */
  get operations(): IpOperations {
    return this.setup.operations;
  }

  /**
   * What the blocklist listing of `ip` on `list` does to it (blocklist-watch.ts): a suspension or
   * a lower weight for some providers, or null when it is delisted (or the list's reaction is
   * none). In pool state, so it applies here at once and survives a restart; its suspensions
   * show in rookery_ip_restricted like the reaction rules' ones.
   */
  async setBlocklistRestriction(ip: string, list: string, restriction: BlocklistRestriction | null): Promise<void> {
    await this.state.setBlocklistRestriction(ip, list, restriction);
    // The restriction gauge shows a blocklist suspension (reason blocklist:<list>) at once.
    this.reporting.restrictions(this.state, this.setup.byAddress);
  }

  /** Takes a reloaded configuration's members, policy and reaction rules, from the next selection on. */
  reconfigure(setup: PoolSetup): void {
    this.setup = this.activate(setup);
    this.reporting.reconfigured(this.setup.byAddress, this.state);
    this.reporting.membership(this.setup.members);
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
    return [...this.setup.byPool.keys()];
  }

  /**
   * Each member as selection sees it now (GET /v1/ips): weights, warm-up, reputation,
   * restrictions and recovery ramps; `address` picks one (an empty list when none has it).
   * Read-only: reads the same state as select(), changes nothing, logs nothing.
   */
  async snapshot(filter: { address?: string } = {}): Promise<IpSnapshot[]> {
    const { backend, reputation, clock } = this.deps;
    const { members, policy } = this.setup;
    const blocklists = (await this.deps.blocklistStates?.(members.map((m) => m.address))) ?? [];
    return snapshotIps({ members, state: this.state, counters: backend.counters, reputation, policy, blocklists, now: clock.now() }, filter);
  }

  /**
   * Why each IP of `pool` (of `default` when `pool` has none, as select() does) may or may not
   * take a delivery to `site` now (GET /v1/explain): every gate selection asks, read without
   * spending a token or a warm-up count, restarting a plan or reporting a metric; selection
   * itself is not touched (its rotation included).
   */
  async explain(request: { pool: string; site: string }): Promise<PoolExplanation> {
    const { backend, paths, reputation, clock } = this.deps;
    const { members, policy, warmup } = this.setup;
    return explainPool({ ...request, pool: sendingPool(this.setup, request.pool) }, { members, state: this.state, limiter: backend.limiter, paths, warmup, reputation, policy, pauses: this.deps.pauses, now: clock.now() });
  }

  /**
   * Chooses the egress for up to `count` messages of one transaction to `site`, and says how many
   * it may take: a warm-up cap or a bucket may have room for fewer (then the first ones go, and
   * the rest are selected again). When no IP may send now, says when to look again: the delivery
   * waits (throttled), it does not fail.
   */
  async select(request: { pool: string; site: string; count: number; previous: string | null }): Promise<Selection> {
    const started = performance.now();
    const now = this.deps.clock.now();
    const setup = this.setup;
    const { site } = request;
    const provider = setup.policy.providerOfSite(site);
    if (setup.byAddress.size === 0) return { ok: true, egress: this.deps.defaultEgress, path: { ip: this.deps.defaultEgress.address, site, provider }, granted: request.count };
    const pool = sendingPool(setup, request.pool);
    if (pool !== request.pool) this.reporting.poolFallback(request.pool, pool);
    const members = setup.byPool.get(pool) ?? [];
    const weights = new Map<string, number>();
    for (const member of members) weights.set(member.address, this.effectiveWeight(setup.policy, member, provider, now));

    let retryAt = Infinity;
    let reason: WaitReason = 'no-ip';
    let granted = 0;
    const asked: string[] = [];
    const eligible = async (address: string) => {
      const verdict = await this.check(setup, setup.byAddress.get(address)!, { ip: address, site, provider }, request.count, now);
      if (verdict.ok) granted = verdict.granted;
      else {
        asked.push(address);
        if (verdict.retryAt < retryAt) {
          retryAt = verdict.retryAt;
          reason = verdict.reason;
        }
      }
      return verdict.ok;
    };

    let chosen: string | undefined;
    const previous = request.previous;
    if (previous && (weights.get(previous) ?? 0) > 0) {
      if (await eligible(previous)) chosen = previous;
      else weights.delete(previous);
    }
    chosen ??= await this.rotation(pool, provider).pick(weights, eligible);
    this.reporting.selection((performance.now() - started) / 1000);

    if (!chosen) {
      this.reporting.selectionWait(pool, reason);
      return { ok: false, provider, reason, retryAt: Number.isFinite(retryAt) ? retryAt : now + 60_000, asked };
    }
    const member = setup.byAddress.get(chosen)!;
    this.state.recordSent(member.address, now);
    return { ok: true, egress: { address: member.address, hostname: member.hostname }, path: { ip: member.address, site, provider }, granted };
  }

  /**
   * Feeds the outcomes of one transaction on `path` to reputation and reaction rules, applies
   * the reactions (throttle, suspend), and returns the outcomes to record: a `bounce` reaction
   * makes an outcome permanent. An IP the host lacks is suspended so its mail goes elsewhere.
   */
  async afterDelivery(path: EgressPath, outcomes: DeliveryOutcome[]): Promise<DeliveryOutcome[]> {
    const { ip, provider, site } = path;
    const setup = this.setup;
    if (!ip || !setup.byAddress.has(ip)) return outcomes;
    const now = this.deps.clock.now();
    const { reputation } = this.deps;
    const { reactions, policy } = setup;
    const reacted = new Map<DeliveryOutcome, DeliveryOutcome>();
    const result: DeliveryOutcome[] = [];
    for (const outcome of outcomes) {
      if (outcome.bounceClass === 'egress-unavailable') {
        await this.restrict(policy, ip, ALL_PROVIDERS, { action: 'suspend', rule: 'egress-unavailable', reason: outcome.response, until: now + UNAVAILABLE_RETRY_MS }, now);
        result.push(outcome);
        continue;
      }
      reputation.record(ip, provider, outcome, now);
      // One reaction per distinct reply: the recipients of a failed transaction share theirs.
      let final = reacted.get(outcome);
      if (!final) {
        final = outcome;
        for (const reaction of reactions.evaluate({ ip, provider, site, outcome, now })) {
          if (reaction.action.kind === 'bounce') final = { ...final, disposition: 'permanent' };
          else await this.apply(policy, reaction, now);
        }
        reacted.set(outcome, final);
      }
      this.reporting.attempt(ip, provider, final.disposition);
      result.push(final);
    }
    this.reporting.reputation(ip, provider, reputation.snapshot(ip, provider, now));
    return result;
  }

  /**
   * Why an IP may not send on a path now, or how many of `count` messages it may send: its gates
   * (eligibility.ts: an operator's pause of the IP first) in order, each asked only for what the
   * ones before granted. Side effect when ok: the granted usage is counted (a bucket followed by a
   * limit that grants fewer keeps the difference taken: tokens, which refill, never a warm-up
   * count, which is asked last).
   */
  private async check(setup: ActiveSetup, member: PoolMember, path: EgressPath & { ip: string }, count: number, now: number): Promise<Verdict> {
    const { backend, paths } = this.deps;
    let granted = count;
    for (const gate of gatesOf(member, path, { state: this.state, policy: setup.policy, pauses: this.deps.pauses }, now)) {
      let verdict: Verdict;
      switch (gate.kind) {
        case 'pause':
          // Looked at again now and then: a resume on another node ends it without telling this one.
          return { ok: false, retryAt: Math.min(gate.until ?? Infinity, now + PAUSED_IP_RECHECK_MS), reason: 'paused' };
        case 'suspension':
          return { ok: false, retryAt: gate.restriction.until, reason: 'suspended' };
        case 'throttle':
        case 'recovery':
          verdict = await this.grant(granted, gate.limit, now, 'throttled', (cost) => takeTokens(backend.limiter, gate.key, gate.limit, now, cost));
          break;
        case 'rate':
          verdict = await this.grant(granted, gate.limit, now, 'rate', (cost) => paths.takeMessages(path, cost, now));
          break;
        case 'warmup':
          verdict = await setup.warmup.reserve(member, gate.warmup, path.provider, granted, now);
          break;
      }
      if (!verdict.ok) return verdict;
      granted = verdict.granted;
    }
    return { ok: true, granted };
  }

  /** Takes up to `count` tokens of a bucket of `limit`, at most its size: the messages that may go now, or a wait. */
  private async grant(count: number, limit: RateLimit, now: number, reason: WaitReason, take: (cost: number) => Promise<Taken>): Promise<Verdict> {
    const granted = Math.min(count, bucketSize(limit));
    const taken = await take(granted);
    return taken.allowed ? { ok: true, granted } : { ok: false, retryAt: now + taken.retryAfterMs, reason };
  }

  private effectiveWeight(policy: PoolPolicy, member: PoolMember, provider: ProviderName, now: number): number {
    const override = this.state.weightOverride(member.address);
    const blocklists = this.state.blocklistRestrictions(member.address, now);
    const { base, weight, reason } = weightOf({ member, override, blocklists, provider, reputation: this.deps.reputation, policy, now });
    // The gauge follows an operator's drain; a configured 0 was never reported.
    if (base > 0 || override) this.reporting.weight(member.address, provider, weight, reason);
    return weight;
  }

  private rotation(pool: string, provider: ProviderName): WeightedRoundRobin<string> {
    let byProvider = this.rotations.get(pool);
    if (!byProvider) this.rotations.set(pool, (byProvider = new Map()));
    let rotation = byProvider.get(provider);
    if (!rotation) byProvider.set(provider, (rotation = new WeightedRoundRobin<string>()));
    return rotation;
  }

  private async apply(policy: PoolPolicy, reaction: Reaction, now: number): Promise<void> {
    const until = now + reaction.durationMs;
    const base = { rule: reaction.rule, reason: reaction.reason, until };
    switch (reaction.action.kind) {
      case 'throttle':
        return this.restrict(policy, reaction.ip, reaction.scope, { ...base, action: 'throttle', ratePerHour: reaction.action.ratePerHour }, now);
      case 'suspend-provider':
        return this.restrict(policy, reaction.ip, reaction.scope, { ...base, action: 'suspend' }, now);
      case 'suspend-ip':
        return this.restrict(policy, reaction.ip, ALL_PROVIDERS, { ...base, action: 'suspend' }, now);
      case 'bounce':
      case 'none':
        return;
    }
  }

  /** Records a restriction and the recovery ramp that follows it; reports new ones (gauge and log line). */
  private async restrict(policy: PoolPolicy, ip: string, scope: Scope, restriction: Restriction, now: number): Promise<void> {
    const current = this.state.restriction(ip, scope, now);
    if (scope.kind === 'site' && !current && this.state.siteRestrictions(ip, now) >= MAX_SITE_RESTRICTIONS_PER_IP) {
      this.reporting.siteRestrictionsFull(ip, scope, restriction, MAX_SITE_RESTRICTIONS_PER_IP);
      return;
    }
    // A throttle never shortens a running suspension, and a repeat never shortens a restriction.
    if (current?.action === 'suspend' && restriction.action === 'throttle') return;
    if (current && current.action === restriction.action && current.until >= restriction.until - 60_000) return;
    const action: ReactionAction = restriction.action === 'throttle' ? { kind: 'throttle', ratePerHour: restriction.ratePerHour ?? 0 } : { kind: 'suspend-provider' };
    const recovery: Recovery = { action, endedAt: restriction.until };
    await this.state.restrict(ip, scope, restriction, recovery, policy.recoveryEndsAt({ action, endedAt: restriction.until, provider: scopeProvider(scope) }));
    this.reporting.newRestriction(ip, scope, restriction, current);
  }

  /**
   * Re-reads pool state and rebuilds the restriction gauges from it (from what is left when the
   * backend cannot be read); refreshes the reputation gauges, whose window slides without deliveries.
   */
  private async refresh(): Promise<void> {
    const now = this.deps.clock.now();
    this.reporting.reputations(this.deps.reputation.entries(now), this.setup.byAddress);
    await this.state.refresh(now).finally(() => this.reporting.restrictions(this.state, this.setup.byAddress));
  }
}
