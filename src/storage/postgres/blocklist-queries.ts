import { blocklistStateValues, type BlocklistState, type BlocklistStateRow } from '../blocklist-states.ts';
import type { Db } from './queries.ts';

/** The PostgreSQL statements of the blocklist states, one function per query. */

/** Creates or replaces the state of one (IP, list); each node writes only its own IPs' rows. */
export async function upsertBlocklistState(db: Db, state: BlocklistState): Promise<void> {
  await db.query({
    name: 'rookery_upsert_blocklist_state',
    text: `INSERT INTO blocklist_states (ip, list, listed, codes, reason, first_listed_at, last_checked_at, last_error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (ip, list) DO UPDATE SET
             listed = excluded.listed, codes = excluded.codes, reason = excluded.reason,
             first_listed_at = excluded.first_listed_at, last_checked_at = excluded.last_checked_at, last_error = excluded.last_error`,
    values: blocklistStateValues(state),
  });
}

/** The states of `ips` (every IP when null), by IP then list. */
export async function selectBlocklistStates(db: Db, ips: readonly string[] | null): Promise<BlocklistStateRow[]> {
  const { rows } = await db.query<BlocklistStateRow>({
    name: 'rookery_select_blocklist_states',
    text: `SELECT ip, list, listed, codes, reason, first_listed_at, last_checked_at, last_error
           FROM blocklist_states WHERE $1::text[] IS NULL OR ip = ANY ($1::text[]) ORDER BY ip, list`,
    values: [ips],
  });
  return rows;
}
