import type { Config } from '../config/schema.ts';
import type { ReactionAction } from './contracts.ts';
import type { PoolPolicy } from './egress-pool.ts';
import type { PoolData } from './pool-data.ts';
import { recoveryCompleteAt, recoveryRate } from './reaction-rules.ts';
import { effectiveStart, warmupCaps } from './warmup.ts';
import { adjustedWeight } from './weight-adjustment.ts';

/** The pool's rules: the data of config/ (plans, providers, shaping) and the reputation settings. */
export function createPoolPolicy(data: PoolData, reputation: Config['reputation']): PoolPolicy {
  return {
    providerOfSite: (site) => data.providers.providerOfSite(site),
    providers: () => data.providers.groups.map((group) => group.name),
    warmupStart: (input) => effectiveStart({ ...input, idleRestartMs: data.warmup.idleRestartMs }),
    warmupCaps: ({ plan, start, provider, now }) => {
      const caps = data.plans.get(plan);
      // Config validation refuses unknown plans; this only guards a plan removed from the data.
      if (!caps) throw new Error(`unknown warm-up plan ${JSON.stringify(plan)}`);
      return warmupCaps({ plan: caps, start, now, activeHours: data.warmup.activeHours, scale: data.providers.warmupScale(provider) });
    },
    warmupPlans: () => [...data.plans.keys()],
    shaping: (provider) => data.shaping.shapingFor(provider),
    adjustWeight: ({ baseWeight, score, provider }) => adjustedWeight({ baseWeight, score, floor: reputation.floor, provider }),
    recoveryRate: ({ action, endedAt, now, normal }: { action: ReactionAction; endedAt: number; now: number; normal: { ratePerSecond: number; burst: number } }) => {
      const rate = recoveryRate({ reaction: { action }, now, endsAt: endedAt, normalRatePerSecond: normal.ratePerSecond });
      if (rate >= normal.ratePerSecond) return null;
      return { ratePerSecond: rate, burst: Math.max(1, Math.floor(rate)) };
    },
    recoveryEndsAt: ({ action, endedAt, provider }) =>
      recoveryCompleteAt({ reaction: { action }, endsAt: endedAt, normalRatePerSecond: data.shaping.shapingFor(provider).messageRate.ratePerSecond }),
  };
}
