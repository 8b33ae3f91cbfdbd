import type { DatabaseSync } from 'node:sqlite';
import { blocklistStateValues, type BlocklistState, type BlocklistStateRow } from '../blocklist-states.ts';

/** The SQLite statements of the blocklist states, prepared once; the upsert runs in the store's write batches. */
export function prepareBlocklistQueries(db: DatabaseSync) {
  const upsert = db.prepare(`
    INSERT INTO blocklist_states (ip, list, listed, codes, reason, first_listed_at, last_checked_at, last_error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (ip, list) DO UPDATE SET
      listed = excluded.listed, codes = excluded.codes, reason = excluded.reason,
      first_listed_at = excluded.first_listed_at, last_checked_at = excluded.last_checked_at, last_error = excluded.last_error`);

  const selectAll = db.prepare(`
    SELECT ip, list, listed, codes, reason, first_listed_at, last_checked_at, last_error
    FROM blocklist_states ORDER BY ip, list`);

  // The IPs as a JSON array: one statement whatever their number.
  const selectOf = db.prepare(`
    SELECT ip, list, listed, codes, reason, first_listed_at, last_checked_at, last_error
    FROM blocklist_states WHERE ip IN (SELECT value FROM json_each(?)) ORDER BY ip, list`);

  return {
    upsert(state: BlocklistState): void {
      const [ip, list, listed, ...rest] = blocklistStateValues(state);
      upsert.run(ip, list, listed ? 1 : 0, ...rest);
    },

    select(ips: readonly string[] | null): BlocklistStateRow[] {
      return (ips === null ? selectAll.all() : selectOf.all(JSON.stringify(ips))) as unknown as BlocklistStateRow[];
    },
  };
}

export type SqliteBlocklistQueries = ReturnType<typeof prepareBlocklistQueries>;
