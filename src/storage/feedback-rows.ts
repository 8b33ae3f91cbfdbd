import type { BounceClass } from '../mail/delivery-outcome.ts';
import type { FeedbackEvent, FeedbackKind, FeedbackRecipient, NewFeedbackEvent } from './feedback-events.ts';
import { FEEDBACK_KINDS } from './feedback-events.ts';
import { DataRefusedError, type RecipientState } from './store.ts';

/*
 * Rows of the feedback events shared by the SQLite and PostgreSQL backends: the checked values
 * both store, and their mapping back to the Store types.
 */

export interface FeedbackDbRow {
  id: number;
  message_id: string;
  recipient_id: number;
  recipient: string;
  kind: string;
  at: number;
  action: string | null;
  code: number | null;
  enhanced: string | null;
  diagnostic: string | null;
  bounce_class: string | null;
  reporter: string | null;
  details: string;
  egress_ip: string | null;
}

export interface FeedbackRecipientDbRow {
  message_id: string;
  id: number;
  recipient: string;
  domain: string;
  state: string;
  last_egress_ip: string | null;
  tenant: string | null;
  sender: string;
}

/** The values of one row, in the column order of the INSERT statements. */
export type FeedbackInsertValues = [
  string, number, string, string, number, string | null, number | null, string | null, string | null, string | null, string | null, string, string | null, string,
];

/** The columns of the INSERT statements, in the order of FeedbackInsertValues. */
export const FEEDBACK_INSERT_COLUMNS =
  'message_id, recipient_id, recipient, kind, at, action, code, enhanced, diagnostic, bounce_class, reporter, details, egress_ip, fingerprint';

export const FEEDBACK_COLUMNS = 'id, message_id, recipient_id, recipient, kind, at, action, code, enhanced, diagnostic, bounce_class, reporter, details, egress_ip';

/** Longest remote text kept in a column: reports come from anyone on the internet. */
const MAX_TEXT = 2000;
/** Longest details JSON kept; a larger one keeps its first fields only. */
export const MAX_DETAILS_BYTES = 8192;

/**
 * The event as stored, checked. Remote text is cut to a sane length and loses NUL characters
 * (PostgreSQL text cannot hold them, and both backends must store the same); details are JSON
 * text, in which JSON.stringify escapes a NUL.
 */
export function feedbackInsertValues(e: NewFeedbackEvent): FeedbackInsertValues {
  if (!FEEDBACK_KINDS.includes(e.kind)) throw new DataRefusedError(`recordFeedback: unknown kind ${JSON.stringify(e.kind)}`);
  if (!Number.isSafeInteger(e.at) || !Number.isSafeInteger(e.recipientId)) throw new DataRefusedError('recordFeedback: at and recipientId must be integers');
  if (e.code !== null && !Number.isInteger(e.code)) throw new DataRefusedError('recordFeedback: code must be an integer');
  if (!e.fingerprint) throw new DataRefusedError('recordFeedback: a fingerprint is required');
  return [
    e.messageId,
    e.recipientId,
    clean(e.recipient, 400)!,
    e.kind,
    e.at,
    clean(e.action, 40),
    e.code,
    clean(e.enhanced, 20),
    clean(e.diagnostic, MAX_TEXT),
    clean(e.bounceClass, 40),
    clean(e.reporter, 400),
    boundedJson(e.details),
    clean(e.egressIp, 64),
    clean(e.fingerprint, 200)!,
  ];
}

function clean(value: string | null, max: number): string | null {
  return value === null ? null : value.replaceAll('\u0000', '\uFFFD').slice(0, max);
}

/** The details as JSON of at most MAX_DETAILS_BYTES: fields are dropped from the end until it fits. */
function boundedJson(details: Record<string, unknown>): string {
  const entries = Object.entries(details);
  for (let n = entries.length; n >= 0; n--) {
    const json = JSON.stringify(Object.fromEntries(entries.slice(0, n)));
    if (Buffer.byteLength(json) <= MAX_DETAILS_BYTES) return json;
  }
  return '{}';
}

export function toFeedbackEvent(row: FeedbackDbRow): FeedbackEvent {
  return {
    id: row.id,
    messageId: row.message_id,
    recipientId: row.recipient_id,
    recipient: row.recipient,
    kind: row.kind as FeedbackKind,
    at: row.at,
    action: row.action,
    code: row.code,
    enhanced: row.enhanced,
    diagnostic: row.diagnostic,
    bounceClass: row.bounce_class as BounceClass | null,
    reporter: row.reporter,
    details: JSON.parse(row.details) as Record<string, unknown>,
    egressIp: row.egress_ip,
  };
}

export function toFeedbackRecipient(row: FeedbackRecipientDbRow): FeedbackRecipient {
  return {
    messageId: row.message_id,
    recipientId: row.id,
    recipient: row.recipient,
    domain: row.domain,
    state: row.state as RecipientState,
    egressIp: row.last_egress_ip,
    tenant: row.tenant,
    sender: row.sender,
  };
}

/** The last outcome a delivered recipient takes from an asynchronous bounce. */
export interface RecipientBounce {
  recipientId: number;
  messageId: string;
  code: number | null;
  enhanced: string | null;
  response: string;
  bounceClass: string;
  at: number;
}

/**
 * What the event changes on its recipient row: a 'failed' bounce bounces it (a delivered row
 * only: the statement checks the state), with the event's stored (cleaned) text; else nothing.
 */
export function recipientBounce(e: NewFeedbackEvent, values: FeedbackInsertValues): RecipientBounce | null {
  if (e.kind !== 'bounce' || e.action !== 'failed') return null;
  return { recipientId: e.recipientId, messageId: e.messageId, code: e.code, enhanced: values[7], response: values[8] ?? '', bounceClass: values[9] ?? 'other', at: e.at };
}
