import { isPossibleDuplicate } from '../../engine/transaction-outcomes.ts';
import type { FeedbackEvent } from '../../storage/feedback-events.ts';
import { NOTHING_PAUSED, pausedFor, type PausedScopes } from '../../storage/queue-control.ts';
import type { AttemptEvent, DsnRecord, MessageInfo, MessageSummary, RecipientRow } from '../../storage/store.ts';

/**
 * What GET /v1/messages and GET /v1/messages/{id} answer, made from the store's records: times
 * in RFC 3339, never the body. Pure, so the shapes are decided in one place.
 */

/**
 * How long before its bounce is recorded a DSN is looked for. A DSN is made just before the
 * bounce is committed (src/engine/delivery-engine.ts) and the two commit together, so it is
 * older by the commit's time only, or by a store outage the result recorder waited out; past
 * this a DSN is not found (the recipient shows none).
 */
export const DSN_SEARCH_MS = 15 * 60_000;

export function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

function messageFields(m: MessageInfo) {
  return {
    id: m.id,
    sender: m.sender,
    pool: m.pool,
    tenant: m.tenant,
    size: m.size,
    createdAt: rfc3339(m.createdAt),
    messageId: m.messageIdHeader,
    source: m.source,
    submitter: m.submitter,
    clientAddress: m.clientAddress,
    sendAt: m.sendAt === null ? null : rfc3339(m.sendAt),
    tags: m.tags,
    metadata: m.metadata,
  };
}

export function messageSummaryView(m: MessageSummary) {
  return { ...messageFields(m), recipientStates: m.states };
}

/** One attempt as the API shows it (also in GET /v1/suppressions/{address}, for the attempt that caused an entry). */
export function eventView(e: AttemptEvent) {
  const o = e.outcome;
  return {
    at: rfc3339(e.at),
    attempt: e.attempt,
    disposition: o.disposition,
    code: o.code,
    enhanced: o.enhanced,
    response: o.response,
    stage: o.stage,
    bounceClass: o.bounceClass,
    remoteHost: o.remoteHost,
    egressIp: o.egressIp,
    possibleDuplicate: isPossibleDuplicate(o),
    tls: o.tls ?? null,
  };
}

/** What came back about a recipient after delivery: an asynchronous bounce, a complaint, an unsubscribe. */
function feedbackView(f: FeedbackEvent) {
  return {
    id: f.id,
    kind: f.kind,
    at: rfc3339(f.at),
    action: f.action,
    code: f.code,
    enhanced: f.enhanced,
    diagnostic: f.diagnostic,
    bounceClass: f.bounceClass,
    reporter: f.reporter,
    egressIp: f.egressIp,
    details: f.details,
  };
}

/**
 * The window (createdAt) in which the DSNs of a message's bounces were made, or null when none
 * can exist: no recipient bounced, or the message has the null sender (never answered).
 */
export function dsnSearchWindow(message: MessageInfo, recipients: readonly RecipientRow[], events: readonly AttemptEvent[]): { from: number; to: number } | null {
  if (message.sender === '') return null;
  const bounced = new Set(recipients.filter((r) => r.state === 'bounced').map((r) => r.recipientId));
  const times = events.filter((e) => bounced.has(e.recipientId) && e.outcome.disposition !== 'delivered').map((e) => e.at);
  if (times.length === 0) return null;
  return { from: Math.max(message.createdAt, Math.min(...times) - DSN_SEARCH_MS), to: Math.max(...times) };
}

export function messageDetailView(
  message: MessageInfo,
  recipients: readonly RecipientRow[],
  events: readonly AttemptEvent[],
  dsns: readonly DsnRecord[],
  feedback: readonly FeedbackEvent[],
  paused: PausedScopes = NOTHING_PAUSED,
) {
  const held = (r: RecipientRow) => r.state === 'queued' && pausedFor(paused, { domain: r.domain, pool: message.pool, tenant: message.tenant });
  return {
    ...messageFields(message),
    recipients: recipients.map((r) => {
      const dsn = r.state === 'bounced' ? dsns.find((d) => d.recipients.includes(r.recipient)) : undefined;
      return {
        address: r.recipient,
        domain: r.domain,
        state: r.state,
        attempts: r.attempts,
        nextAttemptAt: r.nextAttemptAt === null || r.state !== 'queued' ? null : rfc3339(r.nextAttemptAt),
        paused: held(r),
        updatedAt: rfc3339(r.updatedAt),
        dsn: dsn ? { id: dsn.id, createdAt: rfc3339(dsn.createdAt) } : null,
        events: events.filter((e) => e.recipientId === r.recipientId).map(eventView),
        feedback: feedback.filter((f) => f.recipientId === r.recipientId).map(feedbackView),
      };
    }),
  };
}
