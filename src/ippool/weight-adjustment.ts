import type { ProviderName } from './contracts.ts';

/**
 * Lowers an IP's selection weight for a provider whose reputation score has fallen below the
 * configured floor, so the pool sends that provider less through the IP while its standing
 * recovers, and says why in words an operator can act on.
 *
 * Below the floor the weight falls in proportion: weight = base × score / floor, rounded, and at
 * least 1 so the IP keeps a trickle of traffic (without traffic its score could never recover).
 * A base weight of 0 (taken out of rotation by the operator) stays 0.
 */

export interface WeightAdjustmentInput {
  /** The IP's configured weight. */
  baseWeight: number;
  /** The reputation score for the provider, 0..1; null when there are too few samples to judge. */
  score: number | null;
  /** The configured floor, 0..1. */
  floor: number;
  /** The provider the score is for, named in the reason. */
  provider?: ProviderName;
}

export interface WeightAdjustment {
  weight: number;
  /** Why the weight was lowered, e.g. "score 0.42 below floor 0.70 for gmail: weight 100 -> 60"; null when unchanged. */
  reason: string | null;
}

export function adjustedWeight({ baseWeight, score, floor, provider }: WeightAdjustmentInput): WeightAdjustment {
  if (score === null || score >= floor || baseWeight <= 0) return { weight: baseWeight, reason: null };
  const weight = Math.max(1, Math.round((baseWeight * Math.max(0, score)) / floor));
  if (weight >= baseWeight) return { weight: baseWeight, reason: null };
  const target = provider ? ` for ${provider}` : '';
  return { weight, reason: `score ${score.toFixed(2)} below floor ${floor.toFixed(2)}${target}: weight ${baseWeight} -> ${weight}` };
}
