import type { StsPolicyDbRow, StsPolicyValues, TlsCountDbRow, TlsCountValues } from '../tls-report-rows.ts';
import type { TlsReportEnd } from '../tls-reports.ts';
import type { Db } from './queries.ts';

/** The PostgreSQL statements of the outbound TLS tables (tls-reports.ts), one function per query. */

export async function selectStsPolicy(db: Db, domain: string): Promise<StsPolicyDbRow | undefined> {
  const { rows } = await db.query<StsPolicyDbRow>({
    name: 'rookery_select_sts_policy',
    text: `SELECT domain, policy_id, mode, mx, max_age, lines, fetched_at, expires_at FROM mta_sts_policies WHERE domain = $1`,
    values: [domain],
  });
  return rows[0];
}

export async function upsertStsPolicy(db: Db, values: StsPolicyValues): Promise<void> {
  await db.query({
    name: 'rookery_upsert_sts_policy',
    text: `
      INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, lines, fetched_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
      ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id, mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
        lines = excluded.lines, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at`,
    values,
  });
}

/**
 * All rows in one statement from arrays; their keys are distinct (tlsCountValues adds duplicates
 * up). Rows of a finished report are left out; returns the rows added or grown.
 */
export async function addTlsCounts(db: Db, rows: readonly TlsCountValues[]): Promise<number> {
  const column = (i: number) => rows.map((r) => r[i]);
  const { rowCount } = await db.query({
    name: 'rookery_add_tls_counts',
    text: `
      INSERT INTO tls_session_counts (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx,
                                      policy_lines, policy_mx, sessions)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                           $9::text[], $10::text[], $11::bigint[])
        AS u (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx, policy_lines, policy_mx, sessions)
      WHERE NOT EXISTS (SELECT 1 FROM tls_reports r WHERE r.day = u.day AND r.policy_domain = u.policy_domain AND r.state <> 'claimed')
      ON CONFLICT (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx) DO UPDATE SET
        sessions = tls_session_counts.sessions + excluded.sessions, policy_lines = excluded.policy_lines, policy_mx = excluded.policy_mx`,
    values: Array.from({ length: 11 }, (_, i) => column(i)),
  });
  return rowCount ?? 0;
}

/** A claim that ran out counts as none: the node that held it stopped before it finished. */
export async function selectTlsReportsDue(db: Db, day: string, now: number, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ domain: string }>({
    name: 'rookery_select_tls_reports_due',
    text: `
      SELECT DISTINCT c.policy_domain AS domain FROM tls_session_counts c
      WHERE c.day = $1 AND NOT EXISTS (
        SELECT 1 FROM tls_reports r WHERE r.day = c.day AND r.policy_domain = c.policy_domain AND (r.state <> 'claimed' OR r.claimed_until > $2))
      ORDER BY c.policy_domain LIMIT $3`,
    values: [day, now, limit],
  });
  return rows.map((r) => r.domain);
}

export async function selectTlsCounts(db: Db, domain: string, day: string): Promise<TlsCountDbRow[]> {
  const { rows } = await db.query<TlsCountDbRow>({
    name: 'rookery_select_tls_counts',
    text: `
      SELECT day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx, policy_lines, policy_mx, sessions
      FROM tls_session_counts WHERE policy_domain = $1 AND day = $2
      ORDER BY policy_type COLLATE "C", policy_id COLLATE "C", result COLLATE "C", sending_ip COLLATE "C", receiving_ip COLLATE "C", receiving_mx COLLATE "C"`,
    values: [domain, day],
  });
  return rows;
}

/** Of two nodes claiming at once, the second waits on the row's lock and then finds the claim held. */
export async function claimTlsReport(db: Db, domain: string, day: string, owner: string, until: number, now: number): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'rookery_claim_tls_report',
    text: `
      INSERT INTO tls_reports (day, policy_domain, state, claimed_by, claimed_until) VALUES ($1, $2, 'claimed', $3, $4)
      ON CONFLICT (day, policy_domain) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until
      WHERE tls_reports.state = 'claimed' AND tls_reports.claimed_until <= $5`,
    values: [day, domain, owner, until, now],
  });
  return (rowCount ?? 0) > 0;
}

export async function finishTlsReport(db: Db, domain: string, day: string, owner: string, end: TlsReportEnd, now: number): Promise<boolean> {
  const { rowCount } = await db.query({
    name: 'rookery_finish_tls_report',
    text: `UPDATE tls_reports SET state = $1, finished_at = $2 WHERE day = $3 AND policy_domain = $4 AND state = 'claimed' AND claimed_by = $5`,
    values: [end, now, day, domain, owner],
  });
  return (rowCount ?? 0) > 0;
}

export async function purgeTlsReports(db: Db, beforeDay: string, expiredBefore: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>({
    name: 'rookery_purge_tls_reports',
    text: `
      WITH c AS (DELETE FROM tls_session_counts WHERE day < $1 RETURNING 1),
           r AS (DELETE FROM tls_reports WHERE day < $1 RETURNING 1),
           p AS (DELETE FROM mta_sts_policies WHERE expires_at < $2 RETURNING 1)
      SELECT ((SELECT count(*) FROM c) + (SELECT count(*) FROM r) + (SELECT count(*) FROM p))::text AS n`,
    values: [beforeDay, expiredBefore],
  });
  return Number(rows[0]?.n ?? 0);
}
