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
