import { recordFields } from './mta-sts-policy.ts';
import type { TlsFailureType, TlsPolicyType, TlsReportPolicy, TlsSessionCount } from '../../storage/tls-reports.ts';

/**
 * SMTP TLS Reporting (RFC 8460) as data: the `_smtp._tls` TXT record that asks for reports, the
 * session counts kept per policy domain and UTC day, and the aggregate report made of them
 * (section 4). Pure: recording, storing and sending are done by tls-report-*.ts.
 */

export { TLS_FAILURE_TYPES, type TlsFailureType, type TlsPolicyType, type TlsReportPolicy, type TlsSessionCount } from '../../storage/tls-reports.ts';

/** Who reports (config delivery.tlsReports). */
export interface TlsReporter {
  organization: string;
  contact: string;
  /** Our host name, in the report's Submitter and file name. */
  submitter: string;
}

/** RFC 8460 4.4 JSON, the field names as the RFC spells them. */
export interface TlsReportJson {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: Array<{
    policy: { 'policy-type': TlsPolicyType; 'policy-string'?: string[]; 'policy-domain': string; 'mx-host'?: string[] };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: Array<{
      'result-type': TlsFailureType;
      'sending-mta-ip'?: string;
      'receiving-ip'?: string;
      'receiving-mx-hostname'?: string;
      'failed-session-count': number;
    }>;
  }>;
}

/** The UTC day of a time, YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Start and end (inclusive, to the second) of a UTC day, in ms. */
export function dayRange(day: string): { start: number; end: number } {
  const start = Date.parse(`${day}T00:00:00Z`);
  return { start, end: start + 86_400_000 - 1000 };
}

/** RFC 8460 3 sets no limit; a record asking for more destinations than this gets the first ones only. */
export const TLSRPT_MAX_RUA = 5;
/** Longest rua URI taken (a record is at most a few KiB; a longer URI is not a reporting address). */
const MAX_URI_CHARS = 2048;
/** A plain local part (dot-atom, RFC 5322 3.2.3): no quotes, spaces, commas, controls or NULs. */
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
/** A DNS name of two labels or more: no address literal, no IDN in U-labels (the record is ASCII). */
const DNS_DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export interface TlsRptDestinations {
  mailto: string[];
  https: string[];
  /** URIs not used, with why (for the log): not mailto or https, malformed, a repeat, past the limit. */
  ignored: Array<{ uri: string; why: string }>;
}

/**
 * Where reports go, from the `_smtp._tls` TXT answer (RFC 8460 3): exactly one record starting
 * with "v=TLSRPTv1", its rua a comma-separated list of mailto: and https: URIs. Only plain
 * local@domain addresses and https URLs without credentials are taken, each once, at most
 * TLSRPT_MAX_RUA of them: the record is written by whoever owns the domain, and a report must
 * not become a way to make us mail or POST to a long list or to odd targets. Others are ignored;
 * null when there is no usable record.
 */
export function parseTlsRptRecord(records: readonly (readonly string[])[]): TlsRptDestinations | null {
  const rpt = records.map((strings) => strings.join('')).filter((text) => /^v=TLSRPTv1\s*(;|$)/.test(text));
  if (rpt.length !== 1) return null;
  const rua = recordFields(rpt[0]!).get('rua');
  if (!rua) return null;
  const found: TlsRptDestinations = { mailto: [], https: [], ignored: [] };
  const seen = new Set<string>();
  for (const raw of rua.split(',').map((u) => u.trim())) {
    if (raw === '') continue;
    const taken = ruaDestination(raw);
    const why = 'why' in taken ? taken.why : seen.has(taken.key) ? 'a repeat' : seen.size >= TLSRPT_MAX_RUA ? `past the first ${TLSRPT_MAX_RUA}` : null;
    if ('why' in taken || why !== null) {
      found.ignored.push({ uri: raw.slice(0, 200), why: why! });
      continue;
    }
    seen.add(taken.key);
    found[taken.kind].push(taken.value);
  }
  return found.mailto.length || found.https.length ? found : null;
}

/** One rua URI as a destination, or why it is not one. */
function ruaDestination(raw: string): { kind: 'mailto' | 'https'; value: string; key: string } | { why: string } {
  if (raw.length > MAX_URI_CHARS) return { why: `longer than ${MAX_URI_CHARS} characters` };
  if (/^mailto:/i.test(raw)) {
    // A mailto URI may carry ?headers; only the address is used (RFC 8460 3 gives none).
    const address = decodeUri(raw.slice(7).split('?')[0]!);
    if (address === null) return { why: 'a malformed %-escape' };
    const at = address.lastIndexOf('@');
    const local = address.slice(0, at);
    const domain = address.slice(at + 1);
    if (at <= 0 || local.length > 64 || !LOCAL_PART.test(local) || !DNS_DOMAIN.test(domain)) return { why: 'not a plain local@domain address' };
    return { kind: 'mailto', value: address, key: `mailto:${local}@${domain.toLowerCase()}` };
  }
  if (!URL.canParse(raw)) return { why: 'neither a mailto: nor an https: URI' };
  const url = new URL(raw);
  if (url.protocol !== 'https:') return { why: `${url.protocol} is not https:` };
  if (url.username || url.password) return { why: 'an https URL with credentials' };
  return { kind: 'https', value: url.href, key: url.href };
}

/** decodeURIComponent without its URIError: null for a malformed escape. */
function decodeUri(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

/** The aggregate report of one policy domain's sessions on one day (RFC 8460 4.4). */
export function buildTlsReport(reporter: TlsReporter, domain: string, day: string, counts: readonly TlsSessionCount[], reportId: string): TlsReportJson {
  const { start, end } = dayRange(day);
  const byPolicy = new Map<string, { policy: TlsReportPolicy; rows: TlsSessionCount[] }>();
  for (const row of counts) {
    if (row.policy.domain !== domain || row.day !== day) continue;
    const key = `${row.policy.type}\n${row.policy.id}`;
    const entry = byPolicy.get(key) ?? { policy: row.policy, rows: [] };
    entry.rows.push(row);
    byPolicy.set(key, entry);
  }
  return {
    'organization-name': reporter.organization,
    'date-range': { 'start-datetime': isoSeconds(start), 'end-datetime': isoSeconds(end) },
    'contact-info': reporter.contact,
    'report-id': reportId,
    policies: [...byPolicy.values()].map(({ policy, rows }) => {
      const failures = rows.filter((r): r is TlsSessionCount & { result: TlsFailureType } => r.result !== 'success');
      const sum = (list: readonly TlsSessionCount[]) => list.reduce((n, r) => n + r.count, 0);
      return {
        policy: {
          'policy-type': policy.type,
          ...(policy.type === 'sts' ? { 'policy-string': policy.lines, 'mx-host': policy.mx } : {}),
          'policy-domain': policy.domain,
        },
        summary: { 'total-successful-session-count': sum(rows.filter((r) => r.result === 'success')), 'total-failure-session-count': sum(failures) },
        ...(failures.length
          ? {
              'failure-details': failures.map((f) => ({
                'result-type': f.result,
                ...(f.sendingIp ? { 'sending-mta-ip': f.sendingIp } : {}),
                ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
                ...(f.receivingMx ? { 'receiving-mx-hostname': f.receivingMx } : {}),
                'failed-session-count': f.count,
              })),
            }
          : {}),
      };
    }),
  };
}

/**
 * The attachment's file name (RFC 8460 5.3): submitter!policy-domain!begin!end!unique-id.json.gz,
 * the times in seconds since the epoch.
 */
export function tlsReportFileName(reporter: TlsReporter, domain: string, day: string, uniqueId: string): string {
  const { start, end } = dayRange(day);
  return `${reporter.submitter}!${domain}!${start / 1000}!${(end + 1000) / 1000}!${uniqueId}.json.gz`;
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
