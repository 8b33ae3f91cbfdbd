import type { ErrorCode, SmtpReplyCode } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * Reasons for smtpRejections{reason}: error registry codes and SMTP protocol replies, except
 * that AUTH_NOT_AVAILABLE counts the three replies that refuse AUTH (STARTTLS_REQUIRED,
 * AUTH_NOT_ENABLED, AUTH_IN_TRANSACTION in SMTP_REPLIES).
 */
export type RejectionReason =
  | ErrorCode
  | Exclude<SmtpReplyCode, 'STARTTLS_REQUIRED' | 'AUTH_NOT_ENABLED' | 'AUTH_IN_TRANSACTION'>
  | 'AUTH_NOT_AVAILABLE';

/** The log event for each refusal, so a log search can follow one kind. */
const REJECTION_EVENTS: Partial<Record<RejectionReason, string>> = {
  COMMAND_TOO_LONG: 'smtp.command.rejected',
  CONTROL_CHARACTER: 'smtp.command.rejected',
  SMTPUTF8_REQUIRED: 'smtp.command.rejected',
  SMTPUTF8_NOT_OFFERED: 'smtp.command.rejected',
  NOT_UTF8: 'smtp.command.rejected',
  AUTH_NOT_AVAILABLE: 'smtp.auth.refused',
  AUTH_LOCKED: 'smtp.auth.locked',
  AUTH_BUSY: 'smtp.auth.busy',
  AUTH_FAILED: 'smtp.auth.failed',
  SENDER_NOT_ALLOWED: 'smtp.sender.rejected',
  RELAY_DENIED: 'smtp.relay.denied',
  BAD_ADDRESS: 'smtp.recipient.rejected',
  TOO_MANY_RECIPIENTS: 'smtp.recipient.rejected',
  RECIPIENT_NOT_ACCEPTED: 'smtp.recipient.rejected',
  PROCESSING_TIMEOUT: 'smtp.message.rejected',
  SIGNATURE_LOOKUP_FAILED: 'smtp.message.rejected',
  RECIPIENT_SUPPRESSED: 'smtp.recipient.rejected',
  MESSAGE_TOO_LARGE: 'smtp.message.rejected',
  BARE_LINE_ENDING: 'smtp.message.rejected',
  BAD_AUTHOR_HEADER: 'smtp.message.rejected',
  HEADER_TOO_LARGE: 'smtp.message.rejected',
  BUFFERS_FULL: 'smtp.message.rejected',
  STORAGE_LOW: 'smtp.sender.rejected',
  SESSION_TIME_EXCEEDED: 'smtp.session.expired',
  COMMAND_TIMEOUT: 'smtp.session.expired',
  DATA_TOO_SLOW: 'smtp.session.expired',
  EARLY_TALKER: 'smtp.session.refused',
  TOO_MANY_CONNECTIONS: 'smtp.session.refused',
  SHUTTING_DOWN: 'smtp.session.refused',
};

/** Counts and logs the submission server's refusals; the caller sends the reply. */
export class Rejections {
  constructor(
    /** The counter of refusals: smtpRejections, or another door's own with the same labels (feedback/). */
    private readonly metrics: Pick<Metrics, 'smtpRejections'>,
    /** The log of refusals outside a session (a connection refused before it got one). */
    private readonly log: Logger,
  ) {}

  /** Logs on the session's logger when there is a session. */
  reject(session: { log: Logger } | undefined, reason: RejectionReason, fields: Record<string, unknown>): void {
    this.count(reason);
    (session?.log ?? this.log).info({ event: REJECTION_EVENTS[reason] ?? 'smtp.rejected', reason, ...fields }, `SMTP refused: ${reason}`);
  }

  /** Counts a refusal the caller logs itself. */
  count(reason: RejectionReason): void {
    this.metrics.smtpRejections.inc({ reason });
  }
}

/** Text from the client (usernames, header addresses): bounded and printable before it reaches a log line. */
export function logSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}
