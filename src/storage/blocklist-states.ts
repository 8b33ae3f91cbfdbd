/*
 * What the blocklist watch (src/ippool/blocklist-watch.ts) last found for each (egress IP, list):
 * kept in the store so every node shows the same state (GET /v1/ips), and a restart knows what
 * was already listed (no second alert, no reaction lifted and set again). Part of every Store.
 */

/** The state of one egress IP on one list. */
export interface BlocklistState {
  /** The egress IP, in its canonical spelling. */
  ip: string;
  /** The list's configured name (never its zone, which may hold a DQS key). */
  list: string;
  listed: boolean;
  /** The A answers of the listing (127.0.0.x), sorted; empty when not listed. */
  codes: string[];
  /** The list's TXT record for the listing (why, and where to ask for removal); null when none or not listed. */
  reason: string | null;
  /** Since when the IP has been listed without a break; null when not listed. */
  firstListedAt: number | null;
  /** The last lookup, answered or not; null before the first. */
  lastCheckedAt: number | null;
  /** Why the last lookup gave no answer (timeout, SERVFAIL, a refusal); null when it was answered. */
  lastError: string | null;
}

export interface BlocklistStates {
  /** Creates or replaces the state of (state.ip, state.list). */
  saveBlocklistState(state: BlocklistState): Promise<void>;

  /** The states of `ips` (every IP when null), by IP then list. */
  listBlocklistStates(ips: readonly string[] | null): Promise<BlocklistState[]>;
}

/** A blocklist_states row as both backends read it. */
export interface BlocklistStateRow {
  ip: string;
  list: string;
  listed: number | boolean;
  codes: string;
  reason: string | null;
  first_listed_at: number | string | null;
  last_checked_at: number | string | null;
  last_error: string | null;
}

/** The values of a state in the column order of both backends' upsert. */
export function blocklistStateValues(s: BlocklistState): [string, string, boolean, string, string | null, number | null, number | null, string | null] {
  return [s.ip, s.list, s.listed, JSON.stringify(s.codes), clean(s.reason), s.firstListedAt, s.lastCheckedAt, clean(s.lastError)];
}

export function toBlocklistState(row: BlocklistStateRow): BlocklistState {
  const time = (value: number | string | null) => (value === null ? null : Number(value));
  return {
    ip: row.ip,
    list: row.list,
    listed: Boolean(row.listed),
    codes: JSON.parse(row.codes) as string[],
    reason: row.reason,
    firstListedAt: time(row.first_listed_at),
    lastCheckedAt: time(row.last_checked_at),
    lastError: row.last_error,
  };
}

/** Text from a remote TXT record: bounded, and without NUL (PostgreSQL text cannot hold it). */
function clean(text: string | null): string | null {
  return text === null ? null : text.replaceAll('\u0000', '\uFFFD').slice(0, 1000);
}
