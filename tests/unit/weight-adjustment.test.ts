import { describe, expect, it } from 'vitest';
import { adjustedWeight } from '../../src/ippool/weight-adjustment.ts';

describe('adjustedWeight', () => {
  it('keeps the base weight when the score is at or above the floor', () => {
    expect(adjustedWeight({ baseWeight: 100, score: 0.95, floor: 0.7, provider: 'gmail' })).toEqual({ weight: 100, reason: null });
    expect(adjustedWeight({ baseWeight: 100, score: 0.7, floor: 0.7, provider: 'gmail' })).toEqual({ weight: 100, reason: null });
  });

  it('keeps the base weight when there are too few samples to judge', () => {
    expect(adjustedWeight({ baseWeight: 100, score: null, floor: 0.7, provider: 'gmail' })).toEqual({ weight: 100, reason: null });
  });

  it('lowers the weight in proportion below the floor and says why', () => {
    expect(adjustedWeight({ baseWeight: 100, score: 0.42, floor: 0.7, provider: 'gmail' })).toEqual({
      weight: 60,
      reason: 'score 0.42 below floor 0.70 for gmail: weight 100 -> 60',
    });
    expect(adjustedWeight({ baseWeight: 250, score: 0.35, floor: 0.7, provider: 'outlook' })).toEqual({
      weight: 125,
      reason: 'score 0.35 below floor 0.70 for outlook: weight 250 -> 125',
    });
    expect(adjustedWeight({ baseWeight: 100, score: 0.5, floor: 0.8 }).reason).toBe('score 0.50 below floor 0.80: weight 100 -> 63');
  });

  it('never goes below 1, so the IP keeps a trickle to recover with', () => {
    expect(adjustedWeight({ baseWeight: 100, score: 0, floor: 0.7, provider: 'yahoo' })).toEqual({
      weight: 1,
      reason: 'score 0.00 below floor 0.70 for yahoo: weight 100 -> 1',
    });
    expect(adjustedWeight({ baseWeight: 100, score: 0.001, floor: 0.9, provider: 'yahoo' }).weight).toBe(1);
  });

  it('leaves an IP taken out of rotation (weight 0) at 0, and a weight of 1 at 1', () => {
    expect(adjustedWeight({ baseWeight: 0, score: 0.1, floor: 0.7, provider: 'gmail' })).toEqual({ weight: 0, reason: null });
    expect(adjustedWeight({ baseWeight: 1, score: 0.1, floor: 0.7, provider: 'gmail' })).toEqual({ weight: 1, reason: null });
  });

  it('a floor of 0 never lowers anything', () => {
    expect(adjustedWeight({ baseWeight: 100, score: 0, floor: 0, provider: 'gmail' })).toEqual({ weight: 100, reason: null });
  });
});
