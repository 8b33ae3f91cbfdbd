/*
 * What the oldest-queued gauge (src/engine/queue-age.ts) reads from the store. There is no index
 * on the creation time of unfinished recipients; but recipient ids are given in acceptance order
 * and a finished row never goes back to the queue, so the oldest waiting row is found by walking
 * the primary key from a point below which every row is known to be finished or scheduled for
 * later (what is scheduled is reported, so the walk can come back to it at its send time). Each
 * read is bounded by an id range, so no call scans more than that range. Part of every Store.
 */

/** What one id range holds of unfinished (queued or delivering) recipients. */
export interface UnfinishedScan {
  /**
   * The lowest id still queued or being delivered whose message is in the queue by `now` (not
   * scheduled later), and since when: its acceptance or, for a scheduled send, its send time.
   * Null when none.
   */
  oldest: { id: number; since: number } | null;
  /**
   * The unfinished recipients below `oldest` (in the whole range when there is none), all of
   * them scheduled for later than `now`: the lowest id among them and the earliest send time
   * (of any of them, not necessarily of that id). Null when there are none. A send time never
   * changes, so until the earliest comes no row below `oldest` waits.
   */
  scheduled: { firstId: number; sendAt: number } | null;
}

/** With QueueControl's lastRecipientId, which bounds the walk. */
export interface QueueAgeReads {
  /** The unfinished recipients with an id in [fromId, toId), as of `now`. */
  scanUnfinished(fromId: number, toId: number, now: number): Promise<UnfinishedScan>;
}
