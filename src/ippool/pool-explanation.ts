import type { IpPauses, ProviderName, RateLimiter, ReputationFeed } from './contracts.ts';
import type { EgressPath, PathRates } from './egress-path.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { gatesOf, type Gate } from './eligibility.ts';
import { describeCheck, describeWeight, type GateReading, type IpCheck } from './gate-description.ts';
import { weightOf, type MemberWeight } from './member-settings.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import type { Shaping } from './shaping.ts';
import { peekTokens } from './token-buckets.ts';
import type { WarmupReservation } from './warmup-reservation.ts';

/**
 * Why each egress IP of a pool may or may not take a delivery to a site now (GET /v1/explain):
 * every gate selection would ask (eligibility.ts), each read without spending a token, a warm-up
 * count or a probe, and described with what it found. Selection stops at the first refusal; this
 * reports every one, so an operator sees all that stands in the way of an IP at once.
 */

export interface IpExplanation {
  address: string;
  hostname: string;
  /** The configured weight, the operator's in its place, and as reputation leaves it for the provider. */
  weight: MemberWeight & { configured: number };
  /** Every check passes: selection may choose this IP now. */
  eligible: boolean;
  /** Its share of the pool's mail to the provider now: its weight over the eligible IPs' (0 when not eligible). */
  share: number;
  /** The weight, then each gate in the order selection asks them; the failing ones are the reasons it is not eligible. */
  checks: IpCheck[];
}

export interface PoolExplanation {
  pool: string;
  site: string;
  provider: ProviderName;
  shaping: Shaping;
  /** No egress IPs are configured at all: the operating system's default source address sends, unchecked. */
  defaultEgress: boolean;
  /**
   * The pool's members in configuration order; empty when the pool has none and its mail waits
   * (`default`, which takes the mail of a pool without members, has none either).
   */
  ips: IpExplanation[];
}

export interface ExplanationSources {
  members: readonly PoolMember[];
  state: PoolStateCache;
  limiter: RateLimiter;
  paths: PathRates;
  warmup: Pick<WarmupReservation, 'read'>;
  reputation: Pick<ReputationFeed, 'snapshot'>;
  policy: PoolPolicy;
  pauses?: IpPauses | undefined;
  now: number;
}

/** Explains selection for mail of `pool` to `site`: `defaultEgress` when no IPs are configured. */
export async function explainPool(request: { pool: string; site: string }, sources: ExplanationSources): Promise<PoolExplanation> {
  const { members, policy } = sources;
  const { pool, site } = request;
  const provider = policy.providerOfSite(site);
  const base = { pool, site, provider, shaping: policy.shaping(provider) };
  if (members.length === 0) return { ...base, defaultEgress: true, ips: [] };
  const ips = await Promise.all(members.filter((m) => m.pool === pool).map((member) => explainMember(member, site, provider, sources)));
  const total = ips.reduce((sum, ip) => sum + (ip.eligible ? ip.weight.weight : 0), 0);
  return { ...base, defaultEgress: false, ips: ips.map((ip) => ({ ...ip, share: ip.eligible && total > 0 ? ip.weight.weight / total : 0 })) };
}

async function explainMember(member: PoolMember, site: string, provider: ProviderName, sources: ExplanationSources): Promise<IpExplanation> {
  const { state, now } = sources;
  const override = state.weightOverride(member.address);
  const blocklists = state.blocklistRestrictions(member.address, now);
  const weight = { ...weightOf({ member, override, blocklists, provider, reputation: sources.reputation, policy: sources.policy, now }), configured: member.weight };
  const path = { ip: member.address, site, provider };
  const readings = await Promise.all(gatesOf(member, path, sources, now).map((gate) => readGate(gate, member, path, sources)));
  const checks = [describeWeight(weight, override), ...readings.map((reading) => describeCheck(reading, now))];
  return { address: member.address, hostname: member.hostname, weight, eligible: checks.every((c) => c.ok), share: 0, checks };
}

/** What a gate would decide for one message now, read without spending anything. */
async function readGate(gate: Gate, member: PoolMember, path: EgressPath & { ip: string }, sources: ExplanationSources): Promise<GateReading> {
  const { limiter, now } = sources;
  switch (gate.kind) {
    case 'pause':
      return { kind: gate.kind, gate };
    case 'suspension':
      return { kind: gate.kind, gate };
    case 'throttle':
      return { kind: gate.kind, gate, taken: await peekTokens(limiter, gate.key, gate.limit, now) };
    case 'recovery':
      return { kind: gate.kind, gate, taken: await peekTokens(limiter, gate.key, gate.limit, now) };
    case 'rate':
      return { kind: gate.kind, gate, path: await sources.paths.peekMessages(path, now) };
    case 'warmup':
      return { kind: gate.kind, gate, warmup: await sources.warmup.read(member, gate.warmup, path.provider, now) };
  }
}
