/**
 * Smooth weighted round-robin (as nginx balances upstreams): in each round every taking part
 * member adds its weight to its running credit, the member with the most credit wins and pays
 * back the round's total. Over time each member gets its weight's share, spread evenly rather
 * than in bursts. A member found ineligible sits the round out, gaining and losing nothing, so an
 * IP coming back from a suspension takes its usual share, not a burst to catch up.
 */
export class WeightedRoundRobin<T extends string> {
  private readonly credit = new Map<T, number>();

  /**
   * Picks the member to use: the one with the most credit (plus its weight) among those still in
   * the round, asking `eligible` about each in that order until one says yes. Members with weight
   * 0 never take part. Returns undefined when none is eligible (nothing changes then).
   */
  async pick(weights: ReadonlyMap<T, number>, eligible: (member: T) => Promise<boolean> | boolean): Promise<T | undefined> {
    for (const member of this.credit.keys()) if (!weights.has(member)) this.credit.delete(member);
    const inRound = [...weights].filter(([, weight]) => weight > 0);
    while (inRound.length) {
      let best = 0;
      for (let i = 1; i < inRound.length; i++) {
        if (this.score(inRound[i]!) > this.score(inRound[best]!)) best = i;
      }
      const [member] = inRound[best]!;
      // The round is applied before the (asynchronous) eligibility check, so picks running at
      // the same time see it; it is taken back if the member cannot be used. The changes are
      // additive, so taking one back is right whatever other picks did meanwhile.
      const round = [...inRound];
      this.apply(round, member, 1);
      if (await eligible(member)) return member;
      this.apply(round, member, -1);
      inRound.splice(best, 1);
    }
    return undefined;
  }

  /** Adds (sign 1) or takes back (sign -1) one round in which `chosen` wins. */
  private apply(round: ReadonlyArray<[T, number]>, chosen: T, sign: 1 | -1): void {
    let total = 0;
    for (const [m, weight] of round) {
      this.credit.set(m, (this.credit.get(m) ?? 0) + sign * weight);
      total += weight;
    }
    this.credit.set(chosen, this.credit.get(chosen)! - sign * total);
  }

  private score([member, weight]: [T, number]): number {
    return (this.credit.get(member) ?? 0) + weight;
  }
}
