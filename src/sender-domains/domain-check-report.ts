/**
 * What `rookery domains check` reports: one entry per thing checked, each with a status, a
 * sentence for the operator and, when something is wrong, the fix. The facts behind each entry
 * are fields of their own so that scripts (`--json`) and the control API need not parse prose.
 */

export type CheckStatus = 'ok' | 'warn' | 'error';
export type CheckArea = 'dkim' | 'spf' | 'dmarc' | 'return-path';

interface CheckBase {
  area: CheckArea;
  status: CheckStatus;
  /** What was looked at: a DNS name, an IP address. */
  subject: string;
  message: string;
  /** What to do about it; null when nothing needs doing. */
  fix: string | null;
}

/** Which domain's keys sign mail From: the checked domain. */
export interface DkimSigningCheck extends CheckBase {
  area: 'dkim';
  check: 'dkim-signing';
  /** d= of the signatures; null when the mail leaves unsigned. */
  signingDomain: string | null;
  source: 'domain' | 'parent' | 'fallback' | 'none';
}

/** One selector: its key file and its DNS record. */
export interface DkimKeyCheck extends CheckBase {
  area: 'dkim';
  check: 'dkim-key';
  selector: string;
  signingDomain: string;
  recordName: string;
  /** False for a selector asked for with --selector that no configured key uses: presence only. */
  configured: boolean;
  keyFile: string | null;
  keyType: 'rsa' | 'ed25519' | null;
  bits: number | null;
  /** The record found (strings joined), null when there is none. */
  record: string | null;
  /** The record value the key file needs; null without a readable key. */
  expectedRecord: string | null;
  /** Whether the published key is the key file's; null when either is missing. */
  matches: boolean | null;
}

export interface SpfRecordCheck extends CheckBase {
  area: 'spf';
  check: 'spf-record';
  domain: string;
  record: string | null;
}

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';

/** SPF evaluated by mailauth for one egress IP, as a receiver would for MAIL FROM postmaster@domain. */
export interface SpfIpCheck extends CheckBase {
  area: 'spf';
  check: 'spf-ip';
  domain: string;
  ip: string;
  /** The EHLO name the IP greets with. */
  hostname: string;
  pool: string;
  result: SpfResult;
}

/** Mail would leave from addresses the configuration does not name (no `ips`). */
export interface SpfNoIpsCheck extends CheckBase {
  area: 'spf';
  check: 'spf-no-ips';
}

export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface DmarcRecordCheck extends CheckBase {
  area: 'dmarc';
  check: 'dmarc-record';
  /** The record's text; null when none applies. */
  record: string | null;
  /** Where the record was found: _dmarc.<domain> or the organizational domain's. */
  recordDomain: string | null;
  /** The policy applied to mail From: the checked domain (sp= for an inherited record). */
  policy: DmarcPolicy | null;
  pct: number | null;
  adkim: 'r' | 's' | null;
  aspf: 'r' | 's' | null;
  rua: readonly string[];
}

export interface DmarcAlignmentCheck extends CheckBase {
  area: 'dmarc';
  check: 'dmarc-alignment';
  dkimAligned: boolean;
  spfAligned: boolean;
}

export interface ReturnPathCheck extends CheckBase {
  area: 'return-path';
  check: 'return-path-mx';
  domain: string;
  mx: ReadonlyArray<{ exchange: string; priority: number }>;
  /** Addresses of the domain itself, looked up when it has no MX (the implicit MX, RFC 5321 5.1). */
  addresses: readonly string[];
}

export type DomainCheck =
  | DkimSigningCheck
  | DkimKeyCheck
  | SpfRecordCheck
  | SpfIpCheck
  | SpfNoIpsCheck
  | DmarcRecordCheck
  | DmarcAlignmentCheck
  | ReturnPathCheck;

export interface DomainReport {
  domain: string;
  /** The envelope sender domain checked for bounces and SPF alignment. */
  returnPathDomain: string;
  /** ISO 8601. */
  checkedAt: string;
  /** The worst status of all checks. */
  status: CheckStatus;
  counts: Record<CheckStatus, number>;
  checks: DomainCheck[];
}

const RANK: Record<CheckStatus, number> = { ok: 0, warn: 1, error: 2 };

export function worstStatus(statuses: Iterable<CheckStatus>): CheckStatus {
  let worst: CheckStatus = 'ok';
  for (const status of statuses) if (RANK[status] > RANK[worst]) worst = status;
  return worst;
}
