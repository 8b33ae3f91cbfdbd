import type { ProviderName, ReputationFeed } from './contracts.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { blocklistWeight } from './blocklist-effects.ts';
import type { BlocklistRestriction, WarmupOverride, WeightOverride } from './restrictions.ts';

/**
 * A member's settings as selection uses them now: an operator's override (ip-operations.ts) in
 * place of the configured value. One reading for selection, GET /v1/ips and GET /v1/explain, so
 * what the API shows is what selection does.
 */

/** The warm-up plan in force: the one an operator (re)started, else the configured one; null for a warm IP. */
export function warmupOf(member: PoolMember, override: WarmupOverride | null): PoolMember['warmup'] {
  return override ? { plan: override.plan, start: override.start } : member.warmup;
}

export interface MemberWeight {
  /** Before reputation: the operator's weight, else the configured one. */
  base: number;
  /** As selection weighs the member for the provider; 0 takes it out of rotation. */
  weight: number;
  /** Why a blocklist listing or reputation lowered it; null when neither did. */
  reason: string | null;
}

/**
 * The weight selection gives a member for a provider: its base lowered by the weight reactions
 * of blocklists it is listed on (blocklist-effects.ts), then by a reputation score below the
 * floor. A base of 0 stays 0 (reputation is not even read: an operator's drain or a configured 0
 * says all there is). An operator's weight stays the base: a delisting lifts only the factor.
 */
export function weightOf(input: {
  member: PoolMember;
  override: WeightOverride | null;
  /** The member's blocklist reactions in force (PoolStateCache.blocklistRestrictions). */
  blocklists: readonly BlocklistRestriction[];
  provider: ProviderName;
  reputation: Pick<ReputationFeed, 'snapshot'>;
  policy: Pick<PoolPolicy, 'adjustWeight'>;
  now: number;
}): MemberWeight {
  const { member, override, blocklists, provider, reputation, policy, now } = input;
  const base = override?.weight ?? member.weight;
  if (base === 0) return { base, weight: 0, reason: null };
  const listed = blocklistWeight(base, blocklists, provider);
  const { score } = reputation.snapshot(member.address, provider, now);
  const { weight, reason } = policy.adjustWeight({ baseWeight: listed.weight, score, provider });
  const reasons = [listed.reason, reason].filter((why) => why !== null);
  return { base, weight, reason: reasons.length ? reasons.join('; ') : null };
}
