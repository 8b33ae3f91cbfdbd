import { createHash } from 'node:crypto';
import type { ReturnPathConfig } from '../config/return-path-schema.ts';
import type { BounceRule } from '../engine/bounce-rules.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { FeedbackRecipient } from '../storage/feedback-events.ts';
import { logSafe } from '../smtp/rejections.ts';
import type { Store } from '../storage/store.ts';
import { parseArfReport, type ArfReport } from './arf-report.ts';
import { bounceVerdict, type BounceVerdict } from './bounce-verdict.ts';
import { dsnEvidence, parseDsnReport, type DsnRecipient, type DsnReport } from './dsn-report.ts';
import type { FeedbackRecorder, FeedbackReport } from './feedback-recorder.ts';
import { inboundTarget, type InboundTarget } from './inbound-recipients.ts';
import type { MailtoUnsubscribe } from './unsubscribe-mailto.ts';
import { findOriginalRecipient } from './original-lookup.ts';
import { parsePlainBounce } from './plain-bounce.ts';
import { MalformedReportError, readReportMessage, type ReportLimits, type ReportMessage } from './report-message.ts';
import { addressKey, domainOf } from '../mail/address.ts';
import type { DomainCheckResolver } from '../sender-domains/domain-check-dns.ts';
import { authenticateReport, SignatureLookupError, signatureLog, type ReportAuthentication } from './report-authentication.ts';

/**
 * One message the inbound listener accepted, handled for each of its recipients: to an
 * unsubscribe address, the unsubscribe handler takes it; to a VERP return path, a DSN or a
 * plain-text bounce is recorded on the recipient the address names (a complaint sent there too);
 * to a feedback-loop address, an ARF complaint on the recipient the returned original names, when
 * a trusted feedback loop signed it (report-authentication.ts). What cannot be read, is not a
 * report (an out-of-office reply), names no recipient we hold, or is a complaint no trusted
 * reporter signed is logged, counted and dropped: telling the sender to retry cannot change it.
 * What could not be recorded (the store, an effect) or checked (a trusted signer's key lookup
 * failed: SignatureLookupError) rejects, so the listener answers 451 and the sender retries; the
 * report's fingerprint keeps a retried one from counting twice.
 */

export interface ReportIntakeDeps {
  store: Pick<Store, 'findRecipientForFeedback' | 'findMessagesByHeaderId' | 'listRecipients'>;
  recorder: Pick<FeedbackRecorder, 'record'>;
  /** The bounce rules in effect (a reload may change them). */
  bounceRules: () => readonly BounceRule[];
  /** returnPath of the configuration in effect. */
  returnPath: () => ReturnPathConfig;
  unsubscribe?: MailtoUnsubscribe;
  limits: ReportLimits;
  metrics: Pick<Metrics, 'feedbackReports'>;
  clock: { now(): number };
  /** Looks up the keys that sign reports to feedback-loop addresses. */
  resolver: Pick<DomainCheckResolver, 'resolveTxt'>;
  /** inbound.fblReporters in effect: whose signed reports to feedback-loop addresses count. */
  fblReporters: () => readonly string[];
  /** inbound.fblAddresses in effect (lower case): a believed report is addressed To one of them (or postmaster@ a bounce domain). */
  fblAddresses: () => readonly string[];
}

export interface InboundMessage {
  raw: Buffer;
  targets: readonly InboundTarget[];
  /** Session logger (session id, client IP). */
  log: Logger;
  /** Aborted when the sender has been told to retry (processingTimeout): the DKIM key lookups end then. */
  signal?: AbortSignal;
}

type ReportKind = 'dsn' | 'plain-bounce' | 'arf' | 'other';
type Outcome = 'recorded' | 'duplicate' | 'unmatched' | 'ignored' | 'malformed' | 'unauthenticated';

export async function takeInboundMessage(deps: ReportIntakeDeps, message: InboundMessage): Promise<void> {
  const { raw, log } = message;
  const digest = createHash('sha256').update(raw).digest('hex');
  // Read once, for the first recipient that needs it; null once it proved unreadable.
  let report: ReportMessage | null | undefined;
  // Checked once, for the first feedback-loop address that needs it.
  let authentication: Promise<ReportAuthentication> | undefined;
  for (const target of message.targets) {
    if (target.kind === 'unsubscribe') {
      // Only a target the handler accepted at RCPT exists, so the handler is there.
      await deps.unsubscribe!.handle(target.address, raw, deps.clock.now());
      deps.metrics.feedbackReports.inc({ kind: 'unsubscribe', result: 'recorded' });
      continue;
    }
    if (report === undefined) report = await readOrDrop(deps, raw, log);
    if (report === null) continue;
    const read = report;
    const authenticate = () => (authentication ??= authenticated(deps, message, read));
    const { kind, outcome } = await takeReport(deps, target, read, digest, authenticate, log);
    deps.metrics.feedbackReports.inc({ kind, result: outcome });
  }
}

/** The message read as a report, or null (logged, counted) when it cannot be. */
async function readOrDrop(deps: ReportIntakeDeps, raw: Buffer, log: Logger): Promise<ReportMessage | null> {
  try {
    return await readReportMessage(raw, deps.limits);
  } catch (err) {
    if (!(err instanceof MalformedReportError)) throw err;
    deps.metrics.feedbackReports.inc({ kind: 'other', result: 'malformed' });
    log.warn({ event: 'feedback.report.malformed', reason: err.reason, err: err.message, bytes: raw.length }, 'message to a feedback address could not be read; dropped');
    return null;
  }
}

/** Who signed the report (asked once per message), logged when it is not believed. */
async function authenticated(deps: ReportIntakeDeps, { raw, log, signal }: InboundMessage, message: ReportMessage): Promise<ReportAuthentication> {
  const addressing = { returnPath: deps.returnPath(), fblAddresses: deps.fblAddresses() };
  const result = await authenticateReport(
    raw,
    { resolver: deps.resolver, reporters: deps.fblReporters(), isFeedbackAddress: (address) => inboundTarget(address, addressing).kind === 'fbl', now: deps.clock.now(), signal },
    message.fieldNames,
  );
  if (result.verdict === 'unauthenticated') {
    // Without a verified From (nothing was checked), the From as the report reads it; both are the sender's words.
    const fromDomain = result.fromDomain ?? (message.from ? domainOf(message.from) : null);
    log.warn(
      { event: 'feedback.report.unauthenticated', reason: result.reason, fromDomain: fromDomain && logSafe(fromDomain), dkim: signatureLog(result.signatures) },
      'complaint to a feedback-loop address not signed by a trusted reporter (inbound.fblReporters) for us; dropped',
    );
  }
  return result;
}

async function takeReport(
  deps: ReportIntakeDeps,
  target: Exclude<InboundTarget, { kind: 'unsubscribe' }>,
  message: ReportMessage,
  digest: string,
  authenticate: () => Promise<ReportAuthentication>,
  log: Logger,
): Promise<{ kind: ReportKind; outcome: Outcome }> {
  const arf = parseArfReport(message);
  if (arf) return { kind: 'arf', outcome: await takeComplaint(deps, target, arf, message, digest, authenticate, log) };
  // DSNs and plain bounces are taken at return paths only: those name the recipient, and no one has reason to send one to a feedback-loop address.
  if (target.kind !== 'verp') return ignored(log, 'other', target, 'not a complaint (no message/feedback-report part)');
  const dsn = parseDsnReport(message);
  if (dsn) return { kind: 'dsn', outcome: await takeDsn(deps, target, dsn, message, digest, log) };
  const plain = parsePlainBounce(message, deps.bounceRules());
  if (!plain) return ignored(log, 'plain-bounce', target, 'neither a DSN nor a bounce notice (an automatic reply?)');
  const recipient = await byVerp(deps, target, log);
  if (!recipient) return { kind: 'plain-bounce', outcome: 'unmatched' };
  const details = { format: 'plain', subject: message.subject.slice(0, 200), from: message.from, failedRecipients: plain.recipients };
  return { kind: 'plain-bounce', outcome: await recordBounce(deps, recipient, plain, message.from, details, digest) };
}

async function takeDsn(deps: ReportIntakeDeps, target: Extract<InboundTarget, { kind: 'verp' }>, dsn: DsnReport, message: ReportMessage, digest: string, log: Logger): Promise<Outcome> {
  const recipient = await byVerp(deps, target, log);
  if (!recipient) return 'unmatched';
  const entry = dsnEntryFor(dsn, recipient.recipient);
  if (!entry) {
    log.info({ event: 'feedback.report.ignored', messageId: recipient.messageId, recipientId: recipient.recipientId, actions: dsn.recipients.slice(0, 5).map((r) => r.action && logSafe(r.action)) }, 'DSN reports no failure or delay');
    return 'ignored';
  }
  const details = {
    format: 'dsn',
    reportingMta: dsn.reportingMta,
    remoteMta: entry.remoteMta,
    finalRecipient: entry.finalRecipient,
    originalRecipient: entry.originalRecipient,
    status: entry.status,
    diagnosticType: entry.diagnostic?.type ?? null,
    arrivalDate: dsn.arrivalDate,
  };
  const verdict = bounceVerdict(dsnEvidence(entry), deps.bounceRules());
  return recordBounce(deps, recipient, { ...verdict, disposition: entry.action === 'failed' ? 'permanent' : 'transient' }, dsn.reportingMta ?? message.from, details, digest);
}

/**
 * The DSN's entry for our recipient: the one naming its address (Original- or Final-Recipient:
 * a relay may have rewritten the final one), else the first failure or delay (the VERP address
 * already says which recipient it is). Other actions (delivered, relayed, expanded) are not bounces.
 */
function dsnEntryFor(dsn: DsnReport, address: string): DsnRecipient | null {
  const bounces = dsn.recipients.filter((r) => r.action === 'failed' || r.action === 'delayed');
  // By key (mail/address.ts): a remote that got the address downgraded reports its domain as the A-label.
  const key = addressKey(address);
  return bounces.find((r) => (r.originalRecipient && addressKey(r.originalRecipient) === key) || (r.finalRecipient && addressKey(r.finalRecipient) === key)) ?? bounces[0] ?? null;
}

async function recordBounce(
  deps: ReportIntakeDeps,
  recipient: FeedbackRecipient,
  verdict: BounceVerdict,
  reporter: string | null,
  details: Record<string, unknown>,
  digest: string,
): Promise<Outcome> {
  const action = verdict.disposition === 'permanent' ? 'failed' : 'delayed';
  const report: FeedbackReport = {
    recipient,
    kind: 'bounce',
    action,
    code: verdict.code,
    enhanced: verdict.enhanced,
    diagnostic: verdict.text,
    bounceClass: verdict.bounceClass,
    reporter,
    details,
    fingerprint: fingerprintOf(digest, recipient, 'bounce', action),
  };
  return (await deps.recorder.record(report)).duplicate ? 'duplicate' : 'recorded';
}

async function takeComplaint(
  deps: ReportIntakeDeps,
  target: Exclude<InboundTarget, { kind: 'unsubscribe' }>,
  arf: ArfReport,
  message: ReportMessage,
  digest: string,
  authenticate: () => Promise<ReportAuthentication>,
  log: Logger,
): Promise<Outcome> {
  // At a feedback-loop address the report alone names the recipient, so who wrote it decides.
  // A VERP return path names it itself, under an HMAC tag only we can make: no check there.
  if (target.kind === 'fbl') {
    const authentication = await authenticate();
    if (authentication.verdict === 'temperror') throw new SignatureLookupError(authentication);
    if (authentication.verdict === 'unauthenticated') return 'unauthenticated';
  }
  const recipient =
    target.kind === 'verp'
      ? await byVerp(deps, target, log)
      : await findOriginalRecipient({ store: deps.store, returnPath: deps.returnPath() }, { original: arf.original, recipients: arf.originalRcptTo, mailFrom: arf.originalMailFrom });
  if (!recipient) {
    log.info(
      { event: 'feedback.report.unmatched', kind: 'complaint', messageIdHeader: arf.original?.messageId ? logSafe(arf.original.messageId) : null, userAgent: arf.userAgent && logSafe(arf.userAgent) },
      'complaint about no message this node holds (another sender, or purged)',
    );
    return 'unmatched';
  }
  const details = {
    format: 'arf',
    feedbackType: arf.feedbackType,
    userAgent: arf.userAgent,
    sourceIp: arf.sourceIp,
    arrivalDate: arf.arrivalDate,
    originalMailFrom: arf.originalMailFrom,
    originalRcptTo: arf.originalRcptTo.slice(0, 10),
    reportingMta: arf.reportingMta,
    from: message.from,
  };
  const report: FeedbackReport = {
    recipient,
    kind: 'complaint',
    action: null,
    code: null,
    enhanced: null,
    diagnostic: arf.feedbackType,
    bounceClass: null,
    reporter: message.from ?? arf.userAgent,
    details,
    fingerprint: fingerprintOf(digest, recipient, 'complaint', null),
  };
  return (await deps.recorder.record(report)).duplicate ? 'duplicate' : 'recorded';
}

/** The recipient a VERP address names; null (logged) when the message is gone (purged) or never was. */
async function byVerp(deps: ReportIntakeDeps, target: Extract<InboundTarget, { kind: 'verp' }>, log: Logger): Promise<FeedbackRecipient | null> {
  const found = await deps.store.findRecipientForFeedback(target.messageId, target.recipientId);
  if (!found) {
    log.info({ event: 'feedback.report.unmatched', messageId: target.messageId, recipientId: target.recipientId }, 'report for a recipient this node no longer holds (purged)');
  }
  return found;
}

/**
 * What makes a report the same as one recorded before. A complaint, and a failed bounce, count
 * once per recipient whatever their wording: reports that differ in a byte (a Subject, a
 * Received line) would otherwise each count against the egress IP again, which anyone who can
 * mail the feedback address could repeat at will. A delay notice is the same only as the same
 * message delivered again (it changes nothing, so several are kept).
 */
function fingerprintOf(digest: string, recipient: FeedbackRecipient, kind: FeedbackReport['kind'], action: FeedbackReport['action']): string {
  const once = kind === 'complaint' || action === 'failed';
  return once ? `${kind}:${action ?? ''}:${recipient.messageId}:${recipient.recipientId}` : `${digest}:${recipient.messageId}:${recipient.recipientId}:${kind}`;
}

function ignored(log: Logger, kind: ReportKind, target: InboundTarget, why: string): { kind: ReportKind; outcome: Outcome } {
  log.info({ event: 'feedback.report.ignored', kind, to: target.kind }, `message dropped: ${why}`);
  return { kind, outcome: 'ignored' };
}
