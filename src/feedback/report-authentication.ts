import { domainOf, normalizeDomain, splitAddress } from '../mail/address.ts';
import { parsedAddresses } from '../mail/authors.ts';
import { splitHeader } from '../mail/message-headers.ts';
import { logSafe } from '../smtp/rejections.ts';
import { mailauthResolver, type DomainCheckResolver } from '../sender-domains/domain-check-dns.ts';
import { dkimVerify, getAlignment, parseHeaders, type DKIMVerifyOptions, type ParsedHeader } from '../vendor/mailauth.ts';
import { reportKeyResolver } from './report-key-lookups.ts';

/**
 * Who sent a report that came to a feedback-loop address. Anyone can write an ARF report, and
 * one naming a Message-ID and a recipient would suppress that recipient and count a complaint
 * against the egress IP; so such a report is believed only from a feedback loop the operator
 * trusts (inbound.fblReporters): it carries a DKIM signature that verifies (on the bytes as
 * received) by one of those domains or a subdomain, and that domain is aligned with the report's
 * From (relaxed, by organizational domain), so a reporter's signature on someone else's From
 * does not count. A domain that also hosts mailboxes signs its users' mail as well, so an entry
 * may be one address instead (local@domain): then the report's From must be that address, and
 * the signature, by its domain or a parent of it, is what proves it came from there. The
 * signature must also cover the report's To, which must name one of our feedback addresses: a
 * feedback loop sends every subscriber signed reports, and one it sent to someone else (about a
 * message they wrote, naming our Message-ID and another's address) would otherwise count here
 * when passed on unchanged. It must cover the Content-Type as well, whose boundary says which
 * bytes of the signed body are the report. A report with two of a field that says what it is (SINGLE_FIELDS)
 * is not checked: DKIM verifies the bottom one, the report reader reads the top one. A DNS
 * failure while looking up a trusted signer's key is neither: the report is answered 451 and
 * comes again. Only keys of trusted signers are looked up, within the report's time
 * (report-key-lookups.ts).
 *
 * Reports to a VERP return path are not checked here: the HMAC tag of that address already
 * names the recipient, which no one without the secret can forge.
 */

/** What a signature came to, for the decision and the log (domains and verdicts, never content). */
export interface SignatureVerdict {
  /** d=, as the comparison uses it (lower case, A-label); as written when it is no domain name. */
  domain: string;
  /** mailauth's result: pass, fail, neutral, policy, temperror, ...; NOT_CHECKED for a signer no entry vouches for. */
  result: string;
  /** Body bytes an l= tag left unsigned: content anyone could have added. */
  underSized: number;
  /** The header fields it covers (lower case): those h= names that the message has. */
  signedFields: readonly string[];
}

/** Why a report is not believed (the log's `reason`). */
export type UnauthenticatedReason =
  | 'no-reporters'
  | 'too-many-signatures'
  | 'duplicate-fields'
  | 'from-unclear'
  | 'no-signature'
  | 'signer-not-trusted'
  | 'from-not-aligned'
  | 'reporter-address-mismatch'
  | 'not-addressed-to-us'
  | 'to-not-signed'
  | 'content-type-not-signed'
  | 'signature-failed'
  | 'unverifiable';

export type ReportAuthentication =
  | { verdict: 'trusted'; fromDomain: string; signer: string }
  | { verdict: 'unauthenticated'; reason: UnauthenticatedReason; fromDomain: string | null; signatures: SignatureVerdict[] }
  | { verdict: 'temperror'; fromDomain: string | null; signatures: SignatureVerdict[] };

/**
 * More signatures than a feedback loop puts on a report: each is a key lookup (one after the
 * other), so a report with more is not checked at all.
 */
export const MAX_REPORT_SIGNATURES = 10;

/** The result of a signature by a domain no entry vouches for: its key is not looked up. */
export const NOT_CHECKED = 'not-checked';

/**
 * Fields a report may have once only. DKIM verifies the bottom-most instance of a field, the
 * report reader (mailparser) reads the top one: an unsigned Content-Type put on top would split
 * the signed body into other parts, an unsigned From or To would be read in place of the signed.
 */
const SINGLE_FIELDS = ['from', 'to', 'subject', 'content-type', 'content-transfer-encoding'];

export interface ReportAuthenticationDeps {
  /** TXT lookups of the signers' keys (the daemon's resolver). */
  resolver: Pick<DomainCheckResolver, 'resolveTxt'>;
  /** inbound.fblReporters in effect: domains (lower-case A-labels) and addresses (local@A-label). */
  reporters: readonly string[];
  /** Whether an address is one feedback reports come to here (inbound.fblAddresses, postmaster@ a bounce domain). */
  isFeedbackAddress(address: string): boolean;
  /** The time t= and x= are checked against. */
  now: number;
  /** Aborted when the report's time is up (inbound.processingTimeout): key lookups end then. */
  signal?: AbortSignal;
}

/**
 * `raw` as received; `readFields`, the names (lower case) of its header fields as the report
 * reader found them, which may see a field where mailauth sees the continuation of another.
 */
export async function authenticateReport(raw: Buffer, deps: ReportAuthenticationDeps, readFields: readonly string[] = []): Promise<ReportAuthentication> {
  const refused = (reason: UnauthenticatedReason): ReportAuthentication => ({ verdict: 'unauthenticated', reason, fromDomain: null, signatures: [] });
  // Nobody to trust (postmaster@ a bounce domain without fblReporters): no lookups for nothing.
  if (deps.reporters.length === 0) return refused('no-reporters');
  // The fields as mailauth reads them (a field name may be folded before its colon), before it looks anything up.
  const fields = parseHeaders(Buffer.from(splitHeader(raw).header, 'latin1')).parsed;
  const count = (names: readonly string[], name: string) => names.filter((key) => key === name).length;
  const keys = fields.map((field) => field.key);
  if (count(keys, 'dkim-signature') > MAX_REPORT_SIGNATURES) return refused('too-many-signatures');
  if (SINGLE_FIELDS.some((name) => count(keys, name) > 1 || count(readFields, name) > 1)) return refused('duplicate-fields');
  const entries = deps.reporters.map(reporterEntry);
  let verified: Awaited<ReturnType<typeof dkimVerify>>;
  try {
    verified = await dkimVerify(raw, {
      // Keys of trusted signers only, in time; mailauth's resolver type names only TXT-like answers, which is all DKIM asks for.
      resolver: mailauthResolver(
        reportKeyResolver({ resolver: deps.resolver, mayLookUp: (domain) => entries.some((entry) => vouchesFor(entry, domain)), signal: deps.signal }),
      ) as DKIMVerifyOptions['resolver'],
      curTime: new Date(deps.now),
      // RFC 8301 3.1: rsa-sha1 must not be taken as valid.
      rejectRsaSha1: true,
    });
  } catch {
    // Lookup failures come back as temperror results; a throw is a message mailauth cannot read.
    return refused('unverifiable');
  }
  // One From field with one address, or there is no single author for a signature to align with.
  const from = verified.fromFields === 1 && verified.headerFrom.length === 1 ? verified.headerFrom[0]! : null;
  const to = fields.find((field) => field.key === 'to');
  const addressedToUs = to !== undefined && addressesOf(to).some((address) => deps.isFeedbackAddress(address));
  // An unsigned message has one result, `none`: no signature at all.
  const signatures = verified.results.filter((r) => r.status.result !== 'none').map((r) => {
    const domain = (r.signingDomain && normalizeDomain(r.signingDomain)) || (r.signingDomain ?? '');
    return {
      domain,
      // Another signer's key was not looked up: its result would read as if it had no key.
      result: entries.some((entry) => vouchesFor(entry, domain)) ? r.status.result : NOT_CHECKED,
      underSized: r.status.underSized ?? 0,
      signedFields: (r.signingHeaders?.keys ?? '').split(':').map((name) => name.trim().toLowerCase()).filter(Boolean),
    };
  });
  return judgeReport({ from, addressedToUs }, signatures, deps.reporters);
}

/** What the decision reads of the report besides its signatures. */
export interface ReportSender {
  /** The From address; null when the report has not exactly one. */
  from: string | null;
  /** Whether its To names one of our feedback addresses. */
  addressedToUs: boolean;
}

/**
 * The decision, from the report's From and To and each signature's verdict. Each reason narrows
 * the one before: no signer the entries vouch for, none aligned with the From, none whose entry
 * admits this From (an address entry and another address of its domain), a report to someone
 * else, none covering the To.
 */
export function judgeReport(report: ReportSender, signatures: readonly SignatureVerdict[], reporters: readonly string[]): ReportAuthentication {
  const { from } = report;
  const fromDomain = (from && domainOf(from)) || null;
  const all = [...signatures];
  const unauthenticated = (reason: UnauthenticatedReason): ReportAuthentication => ({ verdict: 'unauthenticated', reason, fromDomain, signatures: all });
  if (reporters.length === 0) return unauthenticated('no-reporters');
  if (from === null || fromDomain === null) return unauthenticated('from-unclear');
  if (all.length === 0) return unauthenticated('no-signature');
  const entries = reporters.map(reporterEntry);
  const trusted = all.filter((s) => entries.some((e) => vouchesFor(e, s.domain)));
  if (trusted.length === 0) return unauthenticated('signer-not-trusted');
  const aligned = trusted.filter((s) => Boolean(getAlignment(fromDomain, [s.domain], false)));
  if (aligned.length === 0) return unauthenticated('from-not-aligned');
  const sender = splitAddress(from);
  const admitted = aligned.filter((s) => entries.some((e) => vouchesFor(e, s.domain) && admits(e, sender)));
  if (admitted.length === 0) return unauthenticated('reporter-address-mismatch');
  // Whatever the signatures, a report to someone else never counts here: no retry either.
  if (!report.addressedToUs) return unauthenticated('not-addressed-to-us');
  const coveringTo = admitted.filter((s) => s.signedFields.includes('to'));
  if (coveringTo.length === 0) return unauthenticated('to-not-signed');
  // An unsigned Content-Type could name another boundary, and make a part of the original message
  // quoted in the signed body (which its sender wrote) read as the report.
  const candidates = coveringTo.filter((s) => s.signedFields.includes('content-type'));
  if (candidates.length === 0) return unauthenticated('content-type-not-signed');
  const passed = candidates.find((s) => s.result === 'pass' && s.underSized === 0);
  if (passed) return { verdict: 'trusted', fromDomain, signer: passed.domain };
  // Only a trusted signer's failed lookup is worth a retry: no other signature could count.
  if (candidates.some((s) => s.result === 'temperror')) return { verdict: 'temperror', fromDomain, signatures: all };
  return unauthenticated('signature-failed');
}

/** An entry of inbound.fblReporters: a domain, or one address of a domain (the config normalized both). */
type ReporterEntry = { domain: string; local: string | null };

function reporterEntry(entry: string): ReporterEntry {
  const at = entry.lastIndexOf('@');
  return at < 0 ? { domain: entry, local: null } : { domain: entry.slice(at + 1), local: entry.slice(0, at) };
}

/**
 * Whether a signature by `signer` can speak for the entry: a domain entry's domain or a subdomain
 * of it; for an address, its domain or a parent of it within its organization, since a feedback
 * loop may sign with its parent domain (d=example.com on From: fbl@mail.example.com). A sibling
 * (d=customer.example.com) or a subdomain is another party of that organization, one that may
 * host or sign for others.
 */
function vouchesFor(entry: ReporterEntry, signer: string): boolean {
  if (entry.local === null) return signer === entry.domain || signer.endsWith(`.${entry.domain}`);
  const parent = signer === entry.domain || entry.domain.endsWith(`.${signer}`);
  return parent && Boolean(getAlignment(entry.domain, [signer], false));
}

/** Whether the report's From is one the entry trusts: any, for a domain; that address (its domain in any case) for an address. */
function admits(entry: ReporterEntry, from: { local: string; domain: string } | null): boolean {
  return entry.local === null || (from !== null && from.local === entry.local && from.domain === entry.domain);
}

/** The addresses of an address field as mailauth parsed it: its value unfolded, read as UTF-8. */
function addressesOf(field: ParsedHeader): string[] {
  const line = field.line.toString('latin1');
  const value = line.slice(line.indexOf(':') + 1).replace(/\r\n/g, '');
  return parsedAddresses(Buffer.from(value, 'latin1').toString('utf8')).filter(Boolean);
}

/** The signatures as a log line shows them: each one's domain and result, no more of them than a report may have. */
export function signatureLog(signatures: readonly SignatureVerdict[]): Array<{ domain: string; result: string }> {
  return signatures.slice(0, MAX_REPORT_SIGNATURES).map((s) => ({ domain: logSafe(s.domain), result: logSafe(s.result) }));
}

/** A report whose trusted signer's key could not be looked up: the listener answers 451 and it comes again. */
export class SignatureLookupError extends Error {
  override readonly name = 'SignatureLookupError';
  constructor(readonly authentication: Extract<ReportAuthentication, { verdict: 'temperror' }>) {
    super('the DKIM key of a trusted feedback reporter could not be looked up');
  }
}
