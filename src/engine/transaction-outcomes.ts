import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { Egress } from '../ippool/egress.ts';
import type { SMTPError } from '../vendor/nodemailer.ts';
import type { BounceRule } from './bounce-rules.ts';
import { readable } from '../mail/remote-text.ts';
import { classifyError, classifyReply, parseReply, type ReplyContext } from './classify.ts';
import type { OpenFailure, SendResult } from './outbound-connection.ts';
import type { DownPath } from './path-health.ts';
import type { NextHop } from './routing.ts';

/**
 * The outcomes the deliverer reports (src/engine/smtp-deliverer.ts): per recipient, from a
 * transaction's replies, from a failed session setup, or from the deliverer's own state
 * (shutting down, interrupted, no reachable hop).
 */

/** Not an attempt: the message waits in the queue for the next start ('throttled' does not count as an attempt). */
export function shuttingDown(egress: Egress): DeliveryOutcome {
  return { disposition: 'throttled', code: null, enhanced: '4.3.2', response: 'delivery is shutting down', stage: 'queue', bounceClass: 'other', remoteHost: null, egressIp: egress.address };
}

/**
 * Not an attempt: the transaction could not start (a limiter or another part of this node failed
 * before anything was sent); the message waits like a first retry.
 */
export function notStarted(egressIp: string | null, reason: string): DeliveryOutcome {
  return { disposition: 'throttled', code: null, enhanced: '4.3.0', response: `not tried: ${readable(reason)}`, stage: 'queue', bounceClass: 'other', remoteHost: null, egressIp };
}

/** Not an attempt: another node took the recipient's claim over while this delivery waited; it is left to that node. */
export function claimLost(egressIp: string | null): DeliveryOutcome {
  return { disposition: 'throttled', code: null, enhanced: '4.3.0', response: 'not sent: another claim took the recipient over while this delivery waited', stage: 'queue', bounceClass: 'other', remoteHost: null, egressIp };
}

/**
 * Not an attempt: the path's connections to the site failed moments ago (PathHealth), so none is
 * opened; the delivery waits for the path's probe.
 */
export function pathDown(egress: Egress, down: DownPath): DeliveryOutcome {
  const response = `not tried: ${down.path.site} cannot be reached from ${egress.address ?? 'the default address'} now (${down.outcome.response})`;
  return { disposition: 'throttled', code: null, enhanced: '4.4.1', response, stage: 'connect', bounceClass: 'connection', remoteHost: null, egressIp: egress.address };
}

/**
 * Marks a failure after the final dot was sent, before the server's reply: the server may have
 * accepted the message, so the retry may deliver it twice. Postfix logs the same ("message may
 * be sent more than once"); the mark travels in the event and the log line.
 */
const POSSIBLE_DUPLICATE = 'after the message was sent, before the reply: it may have been delivered (possible duplicate)';

/** Whether a recorded outcome carries the possible-duplicate mark (a failure after the final dot, before the reply). */
export function isPossibleDuplicate(outcome: DeliveryOutcome): boolean {
  return outcome.stage === 'dot' && outcome.code === null && outcome.response.endsWith(POSSIBLE_DUPLICATE);
}

/** A transaction cut by abort(). A failed attempt, and once the final dot was sent, a possible duplicate. */
export function interrupted(stage: DeliveryOutcome['stage'], remoteHost: string | null, egressIp: string | null): DeliveryOutcome {
  const response =
    stage === 'dot' ? `delivery interrupted by shutdown ${POSSIBLE_DUPLICATE}` : 'delivery interrupted by shutdown before the message was sent';
  return { disposition: 'transient', code: null, enhanced: '4.3.2', response, stage, bounceClass: 'other', remoteHost, egressIp };
}

export function localOutcome(egress: Egress, response: string, enhanced: string, bounceClass: DeliveryOutcome['bounceClass']): DeliveryOutcome {
  return { disposition: 'transient', code: null, enhanced, response, stage: 'connect', bounceClass, remoteHost: null, egressIp: egress.address };
}

/**
 * A failure while setting up a session. It is never final for the message: another MX, or the
 * same one later, may accept it (as Postfix treats a 5xx greeting), so a permanent reply here
 * is reported as transient.
 */
export function setupOutcome(failure: OpenFailure, hop: NextHop, egress: Egress, rules: readonly BounceRule[]): DeliveryOutcome {
  const outcome = classifyError(failure.error, { stage: failure.stage, remoteHost: hop.name, egressIp: egress.address }, rules);
  return outcome.disposition === 'permanent' ? { ...outcome, disposition: 'transient' } : outcome;
}

/** Of two failures, the one to report: a reply from a server beats a connection error; else the later. */
export function moreRelevant(previous: DeliveryOutcome | null, next: DeliveryOutcome): DeliveryOutcome {
  if (previous && previous.code !== null && next.code === null) return previous;
  return next;
}

export function successOutcomes(
  info: { response: string; rejectedErrors?: SMTPError[] },
  recipients: string[],
  ctx: Omit<ReplyContext, 'stage'>,
  rules: readonly BounceRule[],
): DeliveryOutcome[] {
  const reply = parseReply(info.response);
  const delivered = classifyReply({ code: reply?.code ?? 250, text: info.response, stage: 'dot', ...ctx }, rules);
  const rejected = rejectionsByRecipient(info.rejectedErrors ?? [], ctx, rules);
  return recipients.map((r) => rejected.get(r.trim()) ?? delivered);
}

export function failureOutcomes(result: Extract<SendResult, { ok: false }>, recipients: string[], ctx: Omit<ReplyContext, 'stage'>, rules: readonly BounceRule[]): DeliveryOutcome[] {
  const classified = classifyError(result.error, { ...ctx, stage: result.stage }, rules);
  // No reply to the final dot (the connection closed, reset or timed out): the server may have the message.
  const failure = classified.stage === 'dot' && classified.code === null ? { ...classified, response: `${classified.response} ${POSSIBLE_DUPLICATE}` } : classified;
  // A refused MAIL FROM applies to everyone; otherwise recipients refused at RCPT keep their own reply.
  if (failure.stage === 'mail') return recipients.map(() => failure);
  const rejected = rejectionsByRecipient(result.rejectedErrors, ctx, rules);
  return recipients.map((r) => rejected.get(r.trim()) ?? failure);
}

function rejectionsByRecipient(errors: SMTPError[], ctx: Omit<ReplyContext, 'stage'>, rules: readonly BounceRule[]): Map<string, DeliveryOutcome> {
  const byRecipient = new Map<string, DeliveryOutcome>();
  for (const err of errors) {
    const recipient = (err as SMTPError & { recipient?: string }).recipient;
    if (recipient) byRecipient.set(recipient, classifyError(err, { ...ctx, stage: 'rcpt' }, rules));
  }
  return byRecipient;
}
