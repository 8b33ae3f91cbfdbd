import type { SMTPServerOptions } from 'smtp-server';
import type { BufferBudget } from '../engine/buffer-budget.ts';
import { RookeryError, SMTP_REPLIES, smtpReplyText, type SmtpReplySpec } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { watchSessionDataRate } from '../smtp/data-rate.ts';
import { collectMessage } from '../smtp/message-collector.ts';
import { logSafe, type Rejections } from '../smtp/rejections.ts';
import type { SessionRegistry } from '../smtp/session-registry.ts';
import { inboundTarget, type InboundAddressing, type InboundTarget } from './inbound-recipients.ts';
import type { InboundMessage } from './report-intake.ts';
import { SignatureLookupError, signatureLog } from './report-authentication.ts';

/**
 * MAIL, RCPT and DATA of the inbound listener. Any sender, the null one included (bounces come
 * from it). A recipient must be one of ours (inbound-recipients.ts): anyone else gets 550 5.7.1.
 * DATA is collected with the submission side's guards (size limit, CRLF line endings only, the
 * shared buffer budget, the minimum data rate), then read and recorded before the reply: 250 once
 * it is recorded (or dropped as unreadable or unauthenticated), 451 when the store failed, a
 * trusted reporter's DKIM key could not be looked up or processingTimeout passed, so the sender
 * keeps the message and tries again. Past processingTimeout the work is aborted (its key lookups
 * end), so a message the sender was told failed does not stay in the shared buffer budget.
 */

/** What the session checks read per command, from the configuration in effect. */
export interface InboundSettings {
  addressing: InboundAddressing;
  maxRecipients: number;
  processingTimeoutMs: number;
}

export interface InboundSessionDeps {
  settings: () => InboundSettings;
  sessions: SessionRegistry;
  rejections: Rejections;
  buffers: BufferBudget;
  maxMessageBytes: number;
  /** The DATA time limit: this much, plus a second for every minDataRate bytes (as on submission). */
  dataGraceMs: number;
  minDataRate: number;
  /** The listener's log, for a message whose session is no longer known. */
  log: Logger;
  /** Reads and records one message (report-intake.ts); rejects when it could not be recorded. */
  take: (message: InboundMessage) => Promise<void>;
  /** Keeps `work` among the in-flight messages until it settles (stop() waits for them). */
  track: (work: Promise<void>) => void;
}

export function inboundSessionHandlers(deps: InboundSessionDeps): Required<Pick<SMTPServerOptions, 'onMailFrom' | 'onRcptTo' | 'onData'>> {
  const { sessions, rejections } = deps;
  return {
    onMailFrom(_address, _session, callback) {
      callback();
    },

    onRcptTo(address, session, callback) {
      const state = sessions.get(session.id);
      const settings = deps.settings();
      if (session.envelope.rcptTo.length >= settings.maxRecipients) {
        rejections.reject(state, 'TOO_MANY_RECIPIENTS', { recipients: session.envelope.rcptTo.length });
        return callback(new RookeryError('TOO_MANY_RECIPIENTS'));
      }
      const target = inboundTarget(address.address, settings.addressing);
      if (target.kind === 'refused') {
        rejections.reject(state, 'RECIPIENT_NOT_ACCEPTED', { recipient: logSafe(address.address), reason: target.reason, sender: logSafe(session.envelope.mailFrom ? session.envelope.mailFrom.address : '') });
        return callback(refusal(SMTP_REPLIES.RECIPIENT_NOT_ACCEPTED));
      }
      callback();
    },

    onData(stream, session, callback) {
      const state = sessions.get(session.id);
      const log = state?.log ?? deps.log;
      const stopWatch = watchSessionDataRate(stream, state, { graceMs: deps.dataGraceMs, minBytesPerSecond: deps.minDataRate, rejections });
      collectMessage(stream, deps.maxMessageBytes, deps.buffers)
        .finally(stopWatch)
        .then(async (collected) => {
          if (!collected.ok) {
            rejections.reject(state, collected.reason, { bytes: collected.bytes });
            throw new RookeryError(collected.reason);
          }
          const settings = deps.settings();
          // Checked again: a reload since RCPT may have taken an address away.
          const targets = session.envelope.rcptTo.map((r) => inboundTarget(r.address, settings.addressing)).filter((t): t is InboundTarget => t.kind !== 'refused');
          // Aborted when the sender is told to retry: the work's DNS lookups (the one part of it a
          // sender can make slow, with signatures whose keys' DNS never answers) end at once.
          const processing = new AbortController();
          const work = deps.take({ raw: collected.body, targets, log, signal: processing.signal });
          // The body is held until the work is done, which an abort makes soon after a 451.
          deps.track(work.finally(() => deps.buffers.release(collected.body.length)));
          sessions.beginCommit(state);
          try {
            await withinTime(work, settings.processingTimeoutMs);
          } catch (err) {
            if (err instanceof TimeoutError) {
              processing.abort();
              rejections.reject(state, 'PROCESSING_TIMEOUT', { bytes: collected.body.length, timeoutMs: settings.processingTimeoutMs });
              throw refusal(SMTP_REPLIES.PROCESSING_TIMEOUT);
            }
            if (err instanceof SignatureLookupError) {
              const { fromDomain, signatures } = err.authentication;
              rejections.reject(state, 'SIGNATURE_LOOKUP_FAILED', { fromDomain: fromDomain && logSafe(fromDomain), dkim: signatureLog(signatures) });
              throw refusal(SMTP_REPLIES.SIGNATURE_LOOKUP_FAILED);
            }
            rejections.count('STORAGE_FAILED');
            log.error({ event: 'feedback.record.failed', err: (err as Error).message, bytes: collected.body.length }, 'message could not be recorded; the sender is told to retry');
            throw new RookeryError('STORAGE_FAILED');
          }
          return '2.0.0 Ok: received';
        })
        .then(
          (text) => callback(null, text),
          (err: Error) => {
            // The client went away (or was cut off) in the middle of the message.
            if (!(err instanceof RookeryError) && !('responseCode' in err)) log.info({ event: 'smtp.message.aborted', err: err.message }, 'message transfer aborted');
            callback(err);
          },
        )
        .finally(() => sessions.endCommit(state));
    },
  };
}

/** An SMTP-only refusal (SMTP_REPLIES): smtp-server replies with its responseCode and text. */
function refusal(spec: SmtpReplySpec): Error & { responseCode: number } {
  return Object.assign(new Error(smtpReplyText(spec)), { responseCode: spec.smtp });
}

class TimeoutError extends Error {}

/** Resolves as `work` does, or rejects with TimeoutError after `ms` (the work goes on unless aborted). */
function withinTime(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`not done within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
