/**
 * When each (egress IP, list) pair is looked up: once per interval, the pairs spread evenly over
 * it (pair i of n at i/n of the interval), so a node with 20 IPs and 5 lists asks one question
 * every 18 s of a 30-minute interval rather than 100 at once, which lists rate-limit and
 * resolvers drop. Pure: the watch keeps the times and moves them on.
 */

export interface Scheduled<T> {
  pair: T;
  /** When its next lookup is due (ms). */
  dueAt: number;
}

/** A new schedule of `pairs` from `now`: the first due at once, the others at their offsets. */
export function spreadOver<T>(pairs: readonly T[], intervalMs: number, now: number): Scheduled<T>[] {
  return pairs.map((pair, i) => ({ pair, dueAt: now + Math.floor((i * intervalMs) / pairs.length) }));
}

/**
 * The next due time of a pair looked up for its `dueAt`: one interval on, keeping its place in
 * the spread; when the watch fell behind by more than an interval (a suspended process, a long
 * outage), one interval from `now` instead of a burst of lookups to catch up.
 */
export function nextDue(dueAt: number, intervalMs: number, now: number): number {
  const next = dueAt + intervalMs;
  return next > now ? next : now + intervalMs;
}

/**
 * The schedule of `pairs` made again (a start, or a reload that changed the pairs or the
 * interval). A pair `previous` holds keeps its due time (no later than one new interval from
 * now): spreading every pair from now again could put a listed pair's next lookup after the end
 * of the reaction its last lookup set, and the IP would send while listed. The new pairs are
 * spread from now, each no later than `dueBy` says (when known: a stored listing, whose reaction
 * runs from its last lookup), and never before now.
 */
export function replan<T>(
  pairs: readonly T[],
  previous: readonly Scheduled<T>[],
  same: (a: T, b: T) => boolean,
  intervalMs: number,
  now: number,
  dueBy: (pair: T) => number | null,
): Scheduled<T>[] {
  const kept = (pair: T) => previous.find((entry) => same(entry.pair, pair));
  const fresh = spreadOver(
    pairs.filter((pair) => !kept(pair)),
    intervalMs,
    now,
  );
  return pairs.map((pair) => {
    const before = kept(pair);
    if (before) return { pair, dueAt: Math.min(before.dueAt, now + intervalMs) };
    const spread = fresh.find((entry) => entry.pair === pair)!.dueAt;
    const by = dueBy(pair);
    return { pair, dueAt: by === null ? spread : Math.min(spread, Math.max(now, by)) };
  });
}
