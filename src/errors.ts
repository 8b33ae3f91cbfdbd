/**
 * One registry of the errors Rookery reports to clients: a stable code, the SMTP reply
 * (basic + enhanced status) and the HTTP status that go with it.
 */
export interface ErrorSpec {
  smtp: number;
  enhanced: string;
  http: number;
  message: string;
}

export const ERRORS = {
  RELAY_DENIED: { smtp: 554, enhanced: '5.7.1', http: 403, message: 'Relay access denied' },
  AUTH_REQUIRED: { smtp: 530, enhanced: '5.7.0', http: 401, message: 'Authentication required' },
  AUTH_FAILED: { smtp: 535, enhanced: '5.7.8', http: 401, message: 'Authentication credentials invalid' },
  AUTH_LOCKED: { smtp: 454, enhanced: '4.7.0', http: 429, message: 'Too many failed authentications, try again later' },
  AUTH_BUSY: { smtp: 454, enhanced: '4.7.0', http: 503, message: 'Too many logins in progress, try again later' },
  SENDER_NOT_ALLOWED: { smtp: 553, enhanced: '5.7.1', http: 403, message: 'Sender address not allowed for this user' },
  BAD_ADDRESS: { smtp: 553, enhanced: '5.1.3', http: 400, message: 'Bad address syntax' },
  TOO_MANY_RECIPIENTS: { smtp: 452, enhanced: '4.5.3', http: 400, message: 'Too many recipients' },
  MESSAGE_TOO_LARGE: { smtp: 552, enhanced: '5.3.4', http: 413, message: 'Message size exceeds fixed maximum message size' },
  BARE_LINE_ENDING: { smtp: 554, enhanced: '5.6.0', http: 400, message: 'Message contains a bare CR or LF; only CRLF line endings are accepted' },
  TOO_MANY_CONNECTIONS: { smtp: 421, enhanced: '4.7.0', http: 429, message: 'Too many connections from your address' },
  SESSION_TIME_EXCEEDED: { smtp: 421, enhanced: '4.4.2', http: 408, message: 'Session time limit exceeded' },
  SHUTTING_DOWN: { smtp: 421, enhanced: '4.3.2', http: 503, message: 'Service shutting down' },
  STORAGE_FAILED: { smtp: 451, enhanced: '4.3.0', http: 503, message: 'Temporary storage failure, try again later' },
  BUFFERS_FULL: { smtp: 452, enhanced: '4.3.1', http: 503, message: 'Insufficient system storage, try again later' },
  STORAGE_LOW: { smtp: 452, enhanced: '4.3.1', http: 503, message: 'Insufficient system storage, try again later' },
  BAD_AUTHOR_HEADER: { smtp: 554, enhanced: '5.6.0', http: 400, message: 'From or Sender header cannot be read one way only' },
  HEADER_TOO_LARGE: { smtp: 552, enhanced: '5.3.4', http: 413, message: 'Message header block exceeds the size limit' },
  BAD_REQUEST: { smtp: 501, enhanced: '5.5.4', http: 400, message: 'Bad request' },
  /** The envelope sender's domain is not one of the tenant's senderDomains. */
  TENANT_SENDER_NOT_ALLOWED: { smtp: 553, enhanced: '5.7.1', http: 403, message: 'Sender domain not allowed for this tenant' },
  /** The tenant's `rate` is used up for now; the error says when to try again. */
  TENANT_RATE_LIMITED: { smtp: 451, enhanced: '4.7.1', http: 429, message: 'Sending rate of this tenant exceeded, try again later' },
  /** The tenant's `dailyQuota` is used up until the next UTC day. */
  TENANT_QUOTA_EXCEEDED: { smtp: 451, enhanced: '4.7.1', http: 429, message: 'Daily quota of this tenant exceeded, try again tomorrow' },
  /** More recipients in one message than the tenant's rate burst or daily quota: it could never be accepted, so it is refused for good. */
  TENANT_LIMIT_TOO_SMALL: { smtp: 554, enhanced: '5.7.1', http: 422, message: 'Message has more recipients than this tenant may send at once' },
  /** A pool named in the request that its client may not choose (the HTTP API's `pool`). */
  POOL_NOT_ALLOWED: { smtp: 550, enhanced: '5.7.1', http: 403, message: 'Pool not allowed for this client' },
  /**
   * The recipient is on the suppression list of the mail's tenant (suppression.action reject):
   * SMTP refuses it at RCPT; HTTP refuses a message only when every recipient is (else it answers per recipient).
   */
  RECIPIENT_SUPPRESSED: { smtp: 550, enhanced: '5.7.1', http: 422, message: 'Recipient suppressed' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error that carries its registry code; SMTP and HTTP layers turn it into a reply. */
export class RookeryError extends Error {
  readonly code: ErrorCode;
  readonly responseCode: number;
  readonly statusCode: number;
  /** When the request may succeed if made again (a rate or quota refusal): HTTP answers it as Retry-After. */
  readonly retryAfterMs: number | null;

  constructor(code: ErrorCode, message?: string, options: { retryAfterMs?: number } = {}) {
    const spec = ERRORS[code];
    super(`${spec.enhanced} ${message ?? spec.message}`);
    this.name = 'RookeryError';
    this.code = code;
    this.retryAfterMs = options.retryAfterMs ?? null;
    // smtp-server replies with `responseCode` and the error message.
    this.responseCode = spec.smtp;
    this.statusCode = spec.http;
  }
}

/*
 * Replies only one door gives: the SMTP session's protocol replies (they answer a command, not a
 * request an HTTP client could make) and the control API's own answers. Their codes are distinct
 * from those of ERRORS; each table keeps only the face its door shows.
 */

/** The SMTP face of an error: reply code, enhanced status code, text. */
export type SmtpReplySpec = Pick<ErrorSpec, 'smtp' | 'enhanced' | 'message'>;

export const SMTP_REPLIES = {
  COMMAND_TOO_LONG: { smtp: 500, enhanced: '5.5.2', message: 'Error: line too long' },
  STARTTLS_REQUIRED: { smtp: 530, enhanced: '5.7.0', message: 'Must issue a STARTTLS command first' },
  AUTH_NOT_ENABLED: { smtp: 503, enhanced: '5.5.1', message: 'Error: authentication not enabled' },
  AUTH_IN_TRANSACTION: { smtp: 503, enhanced: '5.5.1', message: 'Error: AUTH not allowed during a mail transaction' },
  CONTROL_CHARACTER: { smtp: 501, enhanced: '5.5.4', message: 'Control characters are not allowed in MAIL and RCPT commands' },
  EARLY_TALKER: { smtp: 421, enhanced: '4.5.0', message: 'Protocol error: data sent before the greeting' },
  COMMAND_TIMEOUT: { smtp: 421, enhanced: '4.4.2', message: 'Timeout waiting for the next command' },
  DATA_TOO_SLOW: { smtp: 421, enhanced: '4.4.2', message: 'Message data arriving too slowly' },
  /** The inbound listener (feedback/) takes mail for its VERP return paths, feedback-loop and unsubscribe addresses only. */
  RECIPIENT_NOT_ACCEPTED: { smtp: 550, enhanced: '5.7.1', message: 'Recipient address rejected: relay access denied' },
  /** The inbound listener could not read and record a message within inbound.processingTimeout. */
  PROCESSING_TIMEOUT: { smtp: 451, enhanced: '4.3.0', message: 'Message could not be processed in time, try again later' },
  /** The key of a trusted feedback loop's DKIM signature could not be looked up (a DNS failure): the report comes again. */
  SIGNATURE_LOOKUP_FAILED: { smtp: 451, enhanced: '4.4.3', message: 'DKIM key of the report could not be looked up, try again later' },
  /** RFC 6531 3.6.1: a non-ASCII address in a transaction not opened with MAIL FROM ... SMTPUTF8. */
  SMTPUTF8_REQUIRED: { smtp: 553, enhanced: '5.6.7', message: 'Non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM' },
  /** The SMTPUTF8 parameter on a listener that does not offer the extension (RFC 5321 4.1.1.11: 555). */
  SMTPUTF8_NOT_OFFERED: { smtp: 555, enhanced: '5.5.4', message: 'SMTPUTF8 is not offered here' },
  /** Bytes beyond ASCII in MAIL or RCPT that are not UTF-8. */
  NOT_UTF8: { smtp: 501, enhanced: '5.6.7', message: 'Address is not valid UTF-8' },
} as const satisfies Record<string, SmtpReplySpec>;

export type SmtpReplyCode = keyof typeof SMTP_REPLIES;

/** The text of an SMTP reply: the enhanced status code, then the message. */
export function smtpReplyText(spec: SmtpReplySpec): string {
  return `${spec.enhanced} ${spec.message}`;
}

/** The HTTP face of an error: status and message. */
export type HttpErrorSpec = Pick<ErrorSpec, 'http' | 'message'>;

export const API_ERRORS = {
  /** The message names the method and path: `Route GET /nope not found`. */
  NOT_FOUND: { http: 404, message: 'Route not found' },
  UNAVAILABLE: { http: 503, message: 'Service unavailable' },
  INTERNAL: { http: 500, message: 'Internal server error' },
  /** A valid token whose role does not include the route (see src/control-api/v1/route-roles.ts). */
  FORBIDDEN: { http: 403, message: 'The token\'s role does not allow this request' },
  /** The request does not match the route's schema; the problem lists each failing path. */
  INVALID_REQUEST: { http: 400, message: 'The request does not match its schema' },
  PAYLOAD_TOO_LARGE: { http: 413, message: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, message: 'Unsupported content type' },
  /** GET /v1/messages/{id} for an id the queue does not hold (never accepted, or purged after storage.retention). */
  MESSAGE_NOT_FOUND: { http: 404, message: 'No such message' },
  /** POST /v1/reload found problems in the configuration file (each listed with its config path); nothing changed. */
  CONFIG_INVALID: { http: 422, message: 'The configuration has problems; nothing was changed' },
  /** GET or DELETE /v1/suppressions/{address} for an address the tenant's list does not hold. */
  SUPPRESSION_NOT_FOUND: { http: 404, message: 'No such suppression entry' },
  /** The Idempotency-Key of a send was used with another request within its 24 hours (src/control-api/v1/idempotency.ts). */
  IDEMPOTENCY_KEY_REUSED: { http: 422, message: 'The Idempotency-Key was used with another request' },
  /** The unsubscribe listener (src/feedback/unsubscribe-server.ts): a token that is no token Rookery makes (wrong length, alphabet or version). */
  UNSUBSCRIBE_LINK_MALFORMED: { http: 400, message: 'This is not an unsubscribe link' },
  /** A well-formed unsubscribe token that does not authenticate: forged, altered, or made with a secret no longer configured. */
  UNSUBSCRIBE_LINK_UNKNOWN: { http: 404, message: 'This unsubscribe link is not valid' },
  /** A POST to an unsubscribe link without the body List-Unsubscribe=One-Click (RFC 8058). */
  UNSUBSCRIBE_NOT_ONE_CLICK: { http: 400, message: 'Send List-Unsubscribe=One-Click to unsubscribe' },
  /** Too many requests from one client address to the unsubscribe listener (unsubscribe.rateLimit). */
  RATE_LIMITED: { http: 429, message: 'Too many requests from this address, try again later' },
  /** A webhook endpoint id the store does not hold, or one of another tenant (/v1/webhooks/{id}). */
  WEBHOOK_NOT_FOUND: { http: 404, message: 'No such webhook endpoint' },
  /** A delivery id the endpoint does not have (purged after webhooks.retention, or never made). */
  WEBHOOK_DELIVERY_NOT_FOUND: { http: 404, message: 'No such webhook delivery' },
  /** A tenant (or mail of no tenant) has webhooks.maxEndpointsPerTenant endpoints already. */
  WEBHOOK_LIMIT_REACHED: { http: 409, message: 'No more webhook endpoints for this tenant' },
} as const satisfies Record<string, HttpErrorSpec>;

export type ApiErrorCode = keyof typeof API_ERRORS;

/*
 * What an operator sees when the daemon cannot (or did not) start: `rookery check-config` and
 * `rookery run` report these. Not replies to a client, so they have no SMTP or HTTP face; the
 * CLI exits 1.
 */

export const OPERATOR_ERRORS = {
  /** The configuration cannot be used; every problem is listed with its config path. */
  CONFIG_INVALID: { message: 'invalid configuration' },
  /** The configuration is fine but something at run time refused the start (a port in use, storage unreachable). */
  START_FAILED: { message: 'rookery failed to start' },
} as const satisfies Record<string, Pick<ErrorSpec, 'message'>>;

export type OperatorErrorCode = keyof typeof OPERATOR_ERRORS;

/*
 * What an operator is warned of: the configuration works, and the daemon starts with it, but it
 * leaves something open. `rookery check-config` prints these on stderr (and still exits 0); the
 * daemon logs them at start.
 */

export const OPERATOR_WARNINGS = {
  /** api.listen.host is not a loopback address, and no API token is configured. */
  API_EXPOSED: { message: 'the control API has no API tokens configured and listens beyond this machine' },
} as const satisfies Record<string, Pick<ErrorSpec, 'message'>>;

export type OperatorWarningCode = keyof typeof OPERATOR_WARNINGS;
