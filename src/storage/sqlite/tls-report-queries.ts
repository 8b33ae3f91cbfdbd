import type { DatabaseSync } from 'node:sqlite';
import type { StsPolicyDbRow, StsPolicyValues, TlsCountDbRow, TlsCountValues } from '../tls-report-rows.ts';
import type { TlsReportEnd } from '../tls-reports.ts';

/** The SQLite statements of the outbound TLS tables (tls-reports.ts), prepared once; writes run in the store's batches. */
export function prepareTlsReportQueries(db: DatabaseSync) {
  const selectPolicy = db.prepare(`
    SELECT domain, policy_id, mode, mx, max_age, lines, fetched_at, expires_at FROM mta_sts_policies WHERE domain = ?`);

  const upsertPolicy = db.prepare(`
    INSERT INTO mta_sts_policies (domain, policy_id, mode, mx, max_age, lines, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id, mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age,
      lines = excluded.lines, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at`);

  const addCount = db.prepare(`
    INSERT INTO tls_session_counts (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx,
                                    policy_lines, policy_mx, sessions)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx) DO UPDATE SET
      sessions = sessions + excluded.sessions, policy_lines = excluded.policy_lines, policy_mx = excluded.policy_mx`);

  // A finished report takes no more counts: they could no longer be reported.
  const finished = db.prepare(`SELECT 1 FROM tls_reports WHERE day = ? AND policy_domain = ? AND state <> 'claimed'`);

  // A claim that ran out counts as none: the node that held it stopped before it finished.
  const due = db.prepare(`
    SELECT DISTINCT c.policy_domain AS domain FROM tls_session_counts c
    WHERE c.day = ?1 AND NOT EXISTS (
      SELECT 1 FROM tls_reports r WHERE r.day = c.day AND r.policy_domain = c.policy_domain AND (r.state <> 'claimed' OR r.claimed_until > ?2))
    ORDER BY c.policy_domain LIMIT ?3`);

  const selectCounts = db.prepare(`
    SELECT day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx, policy_lines, policy_mx, sessions
    FROM tls_session_counts WHERE policy_domain = ? AND day = ?
    ORDER BY policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx`);

  const claim = db.prepare(`
    INSERT INTO tls_reports (day, policy_domain, state, claimed_by, claimed_until) VALUES (?1, ?2, 'claimed', ?3, ?4)
    ON CONFLICT (day, policy_domain) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until
    WHERE tls_reports.state = 'claimed' AND tls_reports.claimed_until <= ?5`);

  const finish = db.prepare(`
    UPDATE tls_reports SET state = ?1, finished_at = ?2
    WHERE day = ?3 AND policy_domain = ?4 AND state = 'claimed' AND claimed_by = ?5`);

  const purgeCounts = db.prepare(`DELETE FROM tls_session_counts WHERE day < ?`);
  const purgeReports = db.prepare(`DELETE FROM tls_reports WHERE day < ?`);
  const purgePolicies = db.prepare(`DELETE FROM mta_sts_policies WHERE expires_at < ?`);

  return {
    selectPolicy: (domain: string) => selectPolicy.get(domain) as StsPolicyDbRow | undefined,
    upsertPolicy: (values: StsPolicyValues) => void upsertPolicy.run(...values),
    /** Returns how many rows were dropped, their report finished. */
    addCounts(rows: readonly TlsCountValues[]): number {
      let dropped = 0;
      for (const values of rows) {
        if (finished.get(values[0], values[1])) dropped++;
        else addCount.run(...values);
      }
      return dropped;
    },
    due: (day: string, now: number, limit: number) => (due.all(day, now, limit) as { domain: string }[]).map((r) => r.domain),
    selectCounts: (domain: string, day: string) => selectCounts.all(domain, day) as unknown as TlsCountDbRow[],
    claim: (domain: string, day: string, owner: string, until: number, now: number) => Number(claim.run(day, domain, owner, until, now).changes) > 0,
    finish: (domain: string, day: string, owner: string, end: TlsReportEnd, now: number) => Number(finish.run(end, now, day, domain, owner).changes) > 0,
    purge(beforeDay: string, expiredBefore: number): number {
      return [purgeCounts.run(beforeDay), purgeReports.run(beforeDay), purgePolicies.run(expiredBefore)].reduce((n, r) => n + Number(r.changes), 0);
    },
  };
}

export type SqliteTlsReportQueries = ReturnType<typeof prepareTlsReportQueries>;
