import { describe, expect, it } from 'vitest';
import { WeightedRoundRobin } from '../../src/ippool/weighted-round-robin.ts';

async function picks(rr: WeightedRoundRobin<string>, weights: Map<string, number>, n: number, eligible: (m: string) => boolean = () => true) {
  const out: Array<string | undefined> = [];
  for (let i = 0; i < n; i++) out.push(await rr.pick(weights, eligible));
  return out;
}

describe('smooth weighted round-robin', () => {
  it('gives each member its weight share, evenly spread', async () => {
    // nginx's documented sequence for weights 5, 1, 1.
    expect(await picks(new WeightedRoundRobin(), new Map([['a', 5], ['b', 1], ['c', 1]]), 7)).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('follows the weights exactly over many picks and never picks weight 0', async () => {
    const result = await picks(new WeightedRoundRobin(), new Map([['a', 100], ['b', 50], ['c', 25], ['z', 0]]), 7000);
    const count = (m: string) => result.filter((x) => x === m).length;
    expect([count('a'), count('b'), count('c'), count('z')]).toEqual([4000, 2000, 1000, 0]);
  });

  it('passes over ineligible members, which come back to their share without a burst', async () => {
    const rr = new WeightedRoundRobin<string>();
    const weights = new Map([['a', 1], ['b', 1]]);
    expect(await picks(rr, weights, 6, (m) => m !== 'a')).toEqual(['b', 'b', 'b', 'b', 'b', 'b']);
    const after = await picks(rr, weights, 6);
    expect(after.filter((m) => m === 'a')).toHaveLength(3);
  });

  it('asks about members in credit order and stops at the first eligible one', async () => {
    const asked: string[] = [];
    const chosen = await new WeightedRoundRobin<string>().pick(new Map([['a', 3], ['b', 2], ['c', 1]]), (m) => {
      asked.push(m);
      return m === 'b';
    });
    expect(chosen).toBe('b');
    expect(asked).toEqual(['a', 'b']);
  });

  it('keeps the shares exact when picks overlap while eligibility is being checked', async () => {
    const rr = new WeightedRoundRobin<string>();
    const weights = new Map([['a', 1], ['b', 1], ['c', 1], ['d', 1]]);
    const slowYes = () => new Promise<boolean>((resolve) => setImmediate(() => resolve(true)));
    const chosen = await Promise.all(Array.from({ length: 40 }, () => rr.pick(weights, slowYes)));
    expect(['a', 'b', 'c', 'd'].map((m) => chosen.filter((c) => c === m).length)).toEqual([10, 10, 10, 10]);
  });

  it('returns undefined when nothing is eligible, and the usual sequence resumes afterwards', async () => {
    const rr = new WeightedRoundRobin<string>();
    const weights = new Map([['a', 3], ['b', 1]]);
    expect(await picks(rr, weights, 5, () => false)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(await picks(rr, weights, 4)).toEqual(['a', 'a', 'b', 'a']);
  });
});
