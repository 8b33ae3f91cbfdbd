/**
 * Outbound TLS state shared by every node (src/engine/tls/): the MTA-STS policies fetched
 * (RFC 8461, cached for their max_age so all nodes apply the same one and fetch it once), the
 * TLS-RPT session counts per policy domain and UTC day (RFC 8460), and the claim on each day's
 * report so one node sends it once.
 */

export type StsMode = 'enforce' | 'testing' | 'none';

/** An MTA-STS policy as fetched, with the id of the TXT record it was fetched under. */
export interface StoredStsPolicy {
  /** The recipient (policy) domain, lower case. */
  domain: string;
  id: string;
  mode: StsMode;
  mx: string[];
  /** Seconds, as the policy gave it. */
  maxAge: number;
  /** The policy's lines as served. */
  lines: string[];
  fetchedAt: number;
  /** fetchedAt + max_age: past it the policy is no longer applied without a new fetch. */
  expiresAt: number;
}

/** RFC 8460 4.3: why a session failed. */
export const TLS_FAILURE_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'certificate-not-trusted',
  'validation-failure',
  'sts-policy-fetch-error',
  'sts-policy-invalid',
  'sts-webpki-invalid',
] as const;
export type TlsFailureType = (typeof TLS_FAILURE_TYPES)[number];

export type TlsPolicyType = 'sts' | 'no-policy-found';

/** The policy a session was held under, as a TLS report names it. */
export interface TlsReportPolicy {
  type: TlsPolicyType;
  /** The recipient domain the policy is for. */
  domain: string;
  /** The MTA-STS policy id ('' for no-policy-found): a policy changed during the day is reported apart. */
  id: string;
  /** The policy's lines (policy-string); empty for no-policy-found. */
  lines: string[];
  /** The policy's mx patterns (mx-host); empty for no-policy-found. */
  mx: string[];
}

/** Sessions of one result under one policy on one UTC day. */
export interface TlsSessionCount {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  policy: TlsReportPolicy;
  result: 'success' | TlsFailureType;
  /** For failures, where (empty strings for successes, which are only counted). */
  sendingIp: string;
  receivingIp: string;
  receivingMx: string;
  count: number;
}

/** How a day's report of a domain ended: sent, or not to be sent (the domain asks for none). */
export type TlsReportEnd = 'sent' | 'skipped';

export interface TlsReportStore {
  getStsPolicy(domain: string): Promise<StoredStsPolicy | null>;
  /** Stores the policy of a domain, replacing the one it had. */
  saveStsPolicy(policy: StoredStsPolicy): Promise<void>;
  /**
   * Adds sessions to the day's counts (a count already there grows; the policy's lines and mx are
   * the last given). Counts of a (domain, day) whose report is finished (sent or skipped) are
   * dropped, as they can no longer be reported; returns how many counts (distinct keys) were.
   */
  addTlsSessionCounts(counts: readonly TlsSessionCount[]): Promise<number>;
  /** Up to `limit` domains with sessions counted on `day` whose report is neither finished nor claimed (a claim past its time counts as none). */
  tlsReportsDue(day: string, now: number, limit: number): Promise<string[]>;
  tlsSessionCounts(domain: string, day: string): Promise<TlsSessionCount[]>;
  /** Claims the day's report of a domain until `until`: true when this caller holds it now (none held it, or its claim ran out). */
  claimTlsReport(domain: string, day: string, owner: string, until: number, now: number): Promise<boolean>;
  /** Ends the owner's claim for good; false when it no longer held it. A failed send is not ended: its claim runs out and it is tried again. */
  finishTlsReport(domain: string, day: string, owner: string, end: TlsReportEnd, now: number): Promise<boolean>;
  /** Deletes counts and reports of days before `beforeDay`, and policies expired before `expiredBefore`; returns the rows deleted. */
  purgeTlsReports(beforeDay: string, expiredBefore: number): Promise<number>;
}
