import { blocklistSuspensions } from './blocklist-effects.ts';
import type { IpPauses } from './contracts.ts';
import type { EgressPath } from './egress-path.ts';
import type { PoolMember, PoolPolicy } from './egress-pool.ts';
import { warmupOf } from './member-settings.ts';
import { bucketKeys, type BucketKey } from './pool-keys.ts';
import type { PoolStateCache } from './pool-state-cache.ts';
import { rampScope, scopesOf, type Scope } from './restriction-scope.ts';
import type { Recovery, Restriction } from './restrictions.ts';
import type { RateLimit } from './shaping.ts';

/**
 * What an egress IP must pass to take a delivery on a path now: the gates, in the order
 * selection asks them. An operator's pause of the IP, then every suspension (the operator's, the
 * reaction rules', the blocklist listings'; a throttle's token taken for a path that a
 * narrower scope suspends would be lost to the paths that may use it), then each throttle, the
 * ramp back after a restriction ended, the path's message rate (shaping; a path that cannot reach
 * its site passes nothing), and the warm-up caps.
 *
 * Read from pool state and the policy, without side effects. Selection (EgressPool.check) spends
 * each gate's tokens or cap in turn and stops at the first refusal; an explanation
 * (pool-explanation.ts) reads every gate and spends nothing. Both walk this one list, so what
 * GET /v1/explain says is what selection does.
 */
export type Gate =
  /** An operator's pause of the IP (POST /v1/queue/pause): out of selection for every destination. */
  | { kind: 'pause'; until: number | null }
  /** An operator's suspension (rule `operator`), a reaction's, or a blocklist listing's (rule `blocklist:<list>`), in force for one of the path's scopes. */
  | { kind: 'suspension'; scope: Scope; restriction: Restriction }
  /** A reaction's throttle: a bucket of one at its rate per hour, so a larger transaction is split. */
  | { kind: 'throttle'; scope: Scope; restriction: Restriction; key: BucketKey; limit: RateLimit }
  /** The reduced rate after a restriction ended, rising back to the normal one. */
  | { kind: 'recovery'; scope: Scope; recovery: Recovery; key: BucketKey; limit: RateLimit }
  /** The path's message rate (shaping messageRate), kept by the engine's ready queues (PathRates). */
  | { kind: 'rate'; limit: RateLimit }
  /** The warm-up plan in force (configured, or an operator's restart). */
  | { kind: 'warmup'; warmup: NonNullable<PoolMember['warmup']> };

export interface GateSources {
  state: PoolStateCache;
  policy: Pick<PoolPolicy, 'shaping' | 'recoveryRate'>;
  pauses?: IpPauses | undefined;
}

/** The gates `member` must pass to send on `path` at `now`. */
export function gatesOf(member: PoolMember, path: EgressPath & { ip: string }, { state, policy, pauses }: GateSources, now: number): Gate[] {
  const { ip, provider } = path;
  const scopes = scopesOf(path);
  const gates: Gate[] = [];
  const paused = pauses?.pauseOf(ip, now);
  if (paused) gates.push({ kind: 'pause', until: paused.until });
  const restrictions = scopes.map((scope) => ({ scope, restriction: state.restriction(ip, scope, now) }));
  for (const scope of scopes) {
    const restriction = state.operatorSuspension(ip, [scope], now);
    if (restriction) gates.push({ kind: 'suspension', scope, restriction });
  }
  for (const { scope, restriction } of restrictions) {
    if (restriction?.action === 'suspend') gates.push({ kind: 'suspension', scope, restriction });
  }
  for (const suspension of blocklistSuspensions(state.blocklistRestrictions(ip, now), provider)) gates.push({ kind: 'suspension', ...suspension });
  for (const { scope, restriction } of restrictions) {
    if (restriction?.action !== 'throttle') continue;
    const limit = { ratePerSecond: (restriction.ratePerHour ?? 0) / 3600, burst: 1 };
    gates.push({ kind: 'throttle', scope, restriction, key: bucketKeys.throttle(ip, scope), limit });
  }
  const normal = policy.shaping(provider).messageRate;
  const recovering = state.recovery(ip, scopes, now);
  const ramp = recovering && policy.recoveryRate({ ...recovering.recovery, now, normal });
  if (recovering && ramp) {
    gates.push({ kind: 'recovery', scope: recovering.scope, recovery: recovering.recovery, key: bucketKeys.recovery(ip, rampScope(recovering.scope, provider)), limit: ramp });
  }
  gates.push({ kind: 'rate', limit: normal });
  const warmup = warmupOf(member, state.warmupOverride(member.address));
  if (warmup) gates.push({ kind: 'warmup', warmup });
  return gates;
}
