import { canonicalIp } from '../mail/ip-address.ts';
import type { BlocklistState } from '../storage/blocklist-states.ts';
import type { ProviderName, ReputationFeed, ReputationSnapshot, UsageCounters } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { counterKeys } from './pool-keys.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { scopeProvider, type Scope } from './restriction-scope.ts';
import { warmupOf as planInForce, weightOf } from './member-settings.ts';
import { asRestriction, blocklistScopes } from './blocklist-effects.ts';
import type { BlocklistRestriction, Restriction, WarmupOverride, WeightOverride } from './restrictions.ts';
import { dayWindow, hourWindow, type WarmupCaps } from './warmup.ts';

/**
 * What an operator sees of each egress IP (GET /v1/ips): read from the very state selection
 * uses (the pool's state cache, its usage counters, the reputation feed and the policy), never
 * a copy of it, and without side effects: no metric, no log line, no warm-up restart written.
 *
 * Times are epoch milliseconds here; the control API writes them as RFC 3339. The pool keeps no
 * count of messages sent per hour or day for an IP that is not warming: the only counts are the
 * warm-up usage of warming IPs and the reputation window's acceptances, both reported as such.
 */

export interface IpSnapshot {
  address: string;
  hostname: string;
  pool: string;
  /** The configured weight; 0 takes the IP out of rotation. */
  weight: number;
  /** The weight an operator set in its place (PUT /v1/ips/{address}/weight); null: the configured one applies. */
  weightOverride: WeightOverride | null;
  /** When this IP last sent, as far as this node knows (written out every few minutes); null if never. */
  lastSentAt: number | null;
  /** The warm-up plan an operator (re)started in place of the configured one (POST /v1/ips/{address}/warmup); null: the configured plan applies. */
  warmupOverride: WarmupOverride | null;
  /** The plan in force (the operator's, else the configured one); null for a warm IP. */
  warmup: WarmupSnapshot | null;
  /** Every destination provider, in match order (`other` last). */
  providers: ProviderSnapshot[];
  /** Restrictions in force now. */
  restrictions: RestrictionSnapshot[];
  /** Ramps back after a restriction that has ended, still below the normal rate. */
  recoveries: RecoverySnapshot[];
  /** What the blocklist watch last found on each list the IP is looked up in (none for a private address, or with the watch off). */
  blocklists: BlocklistState[];
}

export interface WarmupSnapshot {
  plan: string;
  /** `ips[].warmup.start`, or the day an operator (re)started the plan; 00:00 UTC. */
  configuredStart: number;
  /** The restart persisted after an idle time; null if the plan never restarted. */
  restartedAt: number | null;
  /** The day 0 the plan counts from now. */
  start: number;
  /** Idle longer than `warmup.idleRestart`: the plan starts again from today with the next message (then `start` is today). */
  restartsOnNextSend: boolean;
  phase: WarmupCaps['phase'];
  /** Day of the plan (negative while pending); null once warm. */
  day: number | null;
}

export interface ProviderSnapshot {
  provider: ProviderName;
  /** The configured weight as reputation leaves it for this provider. */
  effectiveWeight: number;
  /** Why the weight is lowered; null when it is not. */
  weightReason: string | null;
  reputation: ReputationSnapshot;
  /** Caps of the hour and day and what they have counted; null once the IP is warm (or never warming). */
  warmup: { hourly: WindowUsage; daily: WindowUsage } | null;
}

export interface WindowUsage {
  /** null = no cap. */
  cap: number | null;
  used: number;
  /** The counting window: a UTC clock hour or a UTC day. */
  windowStart: number;
  windowEnd: number;
}

export interface ScopeSnapshot {
  /** `all`: every provider; `provider`: one provider; `site`: one site of the fallback provider (`other`). */
  scope: Scope['kind'];
  provider: ProviderName | null;
  site: string | null;
}

export interface RestrictionSnapshot extends ScopeSnapshot {
  action: 'suspend' | 'throttle';
  /** Messages per hour while throttled; null for a suspension. */
  ratePerHour: number | null;
  /** The reaction rule behind it (or `egress-unavailable`, or `operator` for an operator's suspension). */
  rule: string;
  /** Who set an operator's suspension (the API token's name); null for a reaction's. */
  by: string | null;
  /** The remote reply (or local error) that triggered it. */
  reason: string;
  until: number;
}

export interface RecoverySnapshot extends ScopeSnapshot {
  /** What the IP is coming back from. */
  after: 'suspend' | 'throttle';
  /** When that restriction ended. */
  endedAt: number;
  /** The rate allowed now, messages per hour, rising toward `normalRatePerHour`. */
  ratePerHour: number;
  normalRatePerHour: number;
  /** When the ramp reaches the normal rate. */
  endsAt: number | null;
}

export interface SnapshotSources {
  members: readonly PoolMember[];
  state: PoolStateCache;
  counters: UsageCounters;
  reputation: ReputationFeed;
  policy: PoolPolicy;
  /** The blocklist states of the members (the store's, shared by every node). */
  blocklists: readonly BlocklistState[];
  now: number;
}

/** The snapshot of every member, or of the one whose address is `filter.address` (any spelling of it). */
export async function snapshotIps(sources: SnapshotSources, filter: { address?: string } = {}): Promise<IpSnapshot[]> {
  const wanted = filter.address === undefined ? null : canonicalIp(filter.address);
  const members = wanted === null ? sources.members : sources.members.filter((m) => canonicalIp(m.address) === wanted);
  const providers = sources.policy.providers();
  const warmups = members.map((member) => warmupOf(member, sources));
  const usage = await warmupUsage(members, warmups, providers, sources);
  return members.map((member, i) => snapshotOf(member, warmups[i]!, usage[i]!, providers, sources));
}

function warmupOf(member: PoolMember, { state, policy, now }: SnapshotSources): WarmupSnapshot | null {
  const warmup = planInForce(member, state.warmupOverride(member.address));
  if (!warmup) return null;
  const restartedAt = state.warmupRestart(member.address);
  const { start, restarted } = policy.warmupStart({ configuredStart: warmup.start, lastSentAt: state.lastSent(member.address), restartedAt, now });
  // The phase and day do not depend on the provider (only the caps' scale does).
  const caps = policy.warmupCaps({ plan: warmup.plan, start, provider: policy.providers()[0]!, now });
  return { plan: warmup.plan, configuredStart: warmup.start, restartedAt, start, restartsOnNextSend: restarted, phase: caps.phase, day: caps.day };
}

/** The hour's and day's counts of every warming member and provider, in one read of the counters. */
async function warmupUsage(
  members: readonly PoolMember[],
  warmups: ReadonlyArray<WarmupSnapshot | null>,
  providers: readonly ProviderName[],
  { counters, now }: SnapshotSources,
): Promise<Array<Map<ProviderName, { hour: number; day: number }>>> {
  const hour = hourWindow(now).start;
  const day = dayWindow(now).start;
  const windows: Array<{ key: string; windowStart: number }> = [];
  members.forEach((member, i) => {
    if (!warmups[i] || warmups[i].phase === 'warm') return;
    for (const provider of providers) {
      windows.push({ key: counterKeys.warmup(member.address, provider, 'hour'), windowStart: hour });
      windows.push({ key: counterKeys.warmup(member.address, provider, 'day'), windowStart: day });
    }
  });
  const totals = await counters.get(windows);
  let next = 0;
  return members.map((_, i) => {
    const byProvider = new Map<ProviderName, { hour: number; day: number }>();
    if (!warmups[i] || warmups[i].phase === 'warm') return byProvider;
    for (const provider of providers) byProvider.set(provider, { hour: totals[next++] ?? 0, day: totals[next++] ?? 0 });
    return byProvider;
  });
}

function snapshotOf(
  member: PoolMember,
  warmup: WarmupSnapshot | null,
  usage: Map<ProviderName, { hour: number; day: number }>,
  providers: readonly ProviderName[],
  { state, reputation, policy, blocklists, now }: SnapshotSources,
): IpSnapshot {
  const { address } = member;
  const view = state.view(address, now);
  const hour = hourWindow(now);
  const day = dayWindow(now);
  return {
    address,
    hostname: member.hostname,
    pool: member.pool,
    weight: member.weight,
    weightOverride: view.weightOverride,
    lastSentAt: view.lastSent,
    warmupOverride: view.warmupOverride,
    warmup,
    providers: providers.map((provider) => {
      const score = reputation.snapshot(address, provider, now);
      // As selection weighs it: the operator's weight in place of the configured one; 0 stays 0.
      const adjusted = weightOf({ member, override: view.weightOverride, blocklists: state.blocklistRestrictions(address, now), provider, reputation, policy, now });
      const counted = usage.get(provider);
      const caps = warmup && counted ? policy.warmupCaps({ plan: warmup.plan, start: warmup.start, provider, now }) : null;
      return {
        provider,
        effectiveWeight: adjusted.weight,
        weightReason: adjusted.reason,
        reputation: score,
        warmup:
          caps && counted
            ? {
                hourly: { cap: caps.hourly, used: counted.hour, windowStart: hour.start, windowEnd: hour.start + hour.ms },
                daily: { cap: caps.daily, used: counted.day, windowStart: day.start, windowEnd: day.start + day.ms },
              }
            : null,
      };
    }),
    restrictions: [
      ...[...view.operatorSuspensions, ...view.restrictions].map(({ value, scope }) => restrictionOf(value, scope)),
      ...blocklistRestrictionsOf(state.blocklistRestrictions(address, now)),
    ].sort((a, b) => a.until - b.until),
    blocklists: blocklists.filter((b) => b.ip === address),
    recoveries: view.recoveries.flatMap(({ value, scope, expiresAt }) => {
      if (value.endedAt > now) return []; // the restriction still runs: it is listed above
      const normal = policy.shaping(scopeProvider(scope)).messageRate;
      const ramp = policy.recoveryRate({ action: value.action, endedAt: value.endedAt, now, normal });
      if (!ramp) return [];
      return [
        {
          ...scopeOf(scope),
          after: value.action.kind === 'throttle' ? ('throttle' as const) : ('suspend' as const),
          endedAt: value.endedAt,
          ratePerHour: ramp.ratePerSecond * 3600,
          normalRatePerHour: normal.ratePerSecond * 3600,
          endsAt: expiresAt,
        },
      ];
    }),
  };
}

/** The blocklist suspensions as restrictions (rule `blocklist:<list>`), one per scope; weight reactions show in the providers' weights. */
function blocklistRestrictionsOf(entries: readonly BlocklistRestriction[]): RestrictionSnapshot[] {
  return entries.filter((entry) => entry.action === 'suspend').flatMap((entry) => blocklistScopes(entry).map((scope) => restrictionOf(asRestriction(entry), scope)));
}

export function restrictionOf(value: Restriction, scope: Scope): RestrictionSnapshot {
  return { ...scopeOf(scope), action: value.action, ratePerHour: value.ratePerHour ?? null, rule: value.rule, by: value.by ?? null, reason: value.reason, until: value.until };
}

function scopeOf(scope: Scope): ScopeSnapshot {
  switch (scope.kind) {
    case 'all':
      return { scope: 'all', provider: null, site: null };
    case 'provider':
      return { scope: 'provider', provider: scope.provider, site: null };
    case 'site':
      return { scope: 'site', provider: scope.provider, site: scope.site };
  }
}
