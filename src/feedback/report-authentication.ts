import { domainOf, normalizeDomain, splitAddress } from '../mail/address.ts';
import { headerValues, splitHeader } from '../mail/message-headers.ts';
import { mailauthResolver, type DomainCheckResolver } from '../sender-domains/domain-check-dns.ts';
import { dkimVerify, getAlignment, type DKIMVerifyOptions } from '../vendor/mailauth.ts';

/**
 * Who sent a report that came to a feedback-loop address. Anyone can write an ARF report, and
 * one naming a Message-ID and a recipient would suppress that recipient and count a complaint
 * against the egress IP; so such a report is believed only from a feedback loop the operator
 * trusts (inbound.fblReporters): it carries a DKIM signature that verifies (on the bytes as
 * received) by one of those domains or a subdomain, and that domain is aligned with the report's
 * From (relaxed, by organizational domain), so a reporter's signature on someone else's From
 * does not count. A domain that also hosts mailboxes signs its users' mail as well, so an entry
 * may be one address instead (local@domain): then the report's From must be that address, and
 * the signature, aligned with it, is what proves it came from there. A DNS failure while looking
 * up a trusted signer's key is neither: the report is answered 451 and comes again.
 *
 * Reports to a VERP return path are not checked here: the HMAC tag of that address already
 * names the recipient, which no one without the secret can forge.
 */

/** What a signature came to, for the decision and the log (domains and verdicts, never content). */
export interface SignatureVerdict {
  /** d=, as the comparison uses it (lower case, A-label); as written when it is no domain name. */
  domain: string;
  /** mailauth's result: pass, fail, neutral, policy, temperror, ... */
  result: string;
  /** Body bytes an l= tag left unsigned: content anyone could have added. */
  underSized: number;
}

/** Why a report is not believed (the log's `reason`). */
export type UnauthenticatedReason =
  | 'no-reporters'
  | 'too-many-signatures'
  | 'from-unclear'
  | 'no-signature'
  | 'signer-not-trusted'
  | 'from-not-aligned'
  | 'reporter-address-mismatch'
  | 'signature-failed'
  | 'unverifiable';

export type ReportAuthentication =
  | { verdict: 'trusted'; fromDomain: string; signer: string }
  | { verdict: 'unauthenticated'; reason: UnauthenticatedReason; fromDomain: string | null; signatures: SignatureVerdict[] }
  | { verdict: 'temperror'; fromDomain: string | null; signatures: SignatureVerdict[] };

/**
 * More signatures than a feedback loop puts on a report: each is a key lookup (one after the
 * other), on names the sender chooses, so a report with more is not checked at all.
 */
export const MAX_REPORT_SIGNATURES = 10;

export interface ReportAuthenticationDeps {
  /** TXT lookups of the signers' keys (the daemon's resolver). */
  resolver: Pick<DomainCheckResolver, 'resolveTxt'>;
  /** inbound.fblReporters in effect: domains (lower-case A-labels) and addresses (local@A-label). */
  reporters: readonly string[];
  /** The time t= and x= are checked against. */
  now: number;
}

export async function authenticateReport(raw: Buffer, deps: ReportAuthenticationDeps): Promise<ReportAuthentication> {
  // Nobody to trust (postmaster@ a bounce domain without fblReporters): no lookups for nothing.
  if (deps.reporters.length === 0) return { verdict: 'unauthenticated', reason: 'no-reporters', fromDomain: null, signatures: [] };
  if (headerValues(splitHeader(raw).header, 'DKIM-Signature').length > MAX_REPORT_SIGNATURES) {
    return { verdict: 'unauthenticated', reason: 'too-many-signatures', fromDomain: null, signatures: [] };
  }
  let verified: Awaited<ReturnType<typeof dkimVerify>>;
  try {
    verified = await dkimVerify(raw, {
      // mailauth's resolver type names only TXT-like answers, which is all DKIM asks for.
      resolver: mailauthResolver(deps.resolver) as DKIMVerifyOptions['resolver'],
      curTime: new Date(deps.now),
      // RFC 8301 3.1: rsa-sha1 must not be taken as valid.
      rejectRsaSha1: true,
    });
  } catch {
    // Lookup failures come back as temperror results; a throw is a message mailauth cannot read.
    return { verdict: 'unauthenticated', reason: 'unverifiable', fromDomain: null, signatures: [] };
  }
  // One From field with one address, or there is no single author for a signature to align with.
  const from = verified.fromFields === 1 && verified.headerFrom.length === 1 ? verified.headerFrom[0]! : null;
  // An unsigned message has one result, `none`: no signature at all.
  const signatures = verified.results.filter((r) => r.status.result !== 'none').map((r) => ({
    domain: (r.signingDomain && normalizeDomain(r.signingDomain)) || (r.signingDomain ?? ''),
    result: r.status.result,
    underSized: r.status.underSized ?? 0,
  }));
  return judgeReport(from, signatures, deps.reporters);
}

/**
 * The decision, from the From address (null when not one address) and each signature's verdict.
 * Each reason narrows the one before: no signer the entries vouch for, none aligned with the From,
 * none whose entry admits this From (an address entry and another address of its domain).
 */
export function judgeReport(from: string | null, signatures: readonly SignatureVerdict[], reporters: readonly string[]): ReportAuthentication {
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
  const candidates = aligned.filter((s) => entries.some((e) => vouchesFor(e, s.domain) && admits(e, sender)));
  if (candidates.length === 0) return unauthenticated('reporter-address-mismatch');
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
 * of it; for an address, any signer of the address's organization (relaxed alignment), since a
 * feedback loop may sign with its parent domain (d=example.com on From: fbl@mail.example.com).
 */
function vouchesFor(entry: ReporterEntry, signer: string): boolean {
  if (entry.local === null) return signer === entry.domain || signer.endsWith(`.${entry.domain}`);
  return Boolean(getAlignment(entry.domain, [signer], false));
}

/** Whether the report's From is one the entry trusts: any, for a domain; that address (its domain in any case) for an address. */
function admits(entry: ReporterEntry, from: { local: string; domain: string } | null): boolean {
  return entry.local === null || (from !== null && from.local === entry.local && from.domain === entry.domain);
}

/** A report whose trusted signer's key could not be looked up: the listener answers 451 and it comes again. */
export class SignatureLookupError extends Error {
  override readonly name = 'SignatureLookupError';
  constructor(readonly authentication: Extract<ReportAuthentication, { verdict: 'temperror' }>) {
    super('the DKIM key of a trusted feedback reporter could not be looked up');
  }
}
