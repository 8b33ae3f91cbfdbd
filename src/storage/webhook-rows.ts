import { randomBytes } from 'node:crypto';
import type { AttemptResult } from './store.ts';
import { DataRefusedError } from './store.ts';
import {
  MAX_EVENTS_PER_REQUEST,
  WEBHOOK_EVENT_TYPES,
  type ClaimedWebhookDelivery,
  type NewWebhookEndpoint,
  type StoredWebhookEvent,
  type WebhookChange,
  type WebhookDelivery,
  type WebhookDeliveryState,
  type WebhookEndpoint,
  type WebhookEvent,
  type WebhookEventType,
  type WebhookLeaseToken,
} from './webhook-outbox.ts';

/*
 * Rows of the webhook tables shared by the SQLite and PostgreSQL backends (same column names):
 * their mapping to the outbox types, and the checks both apply before a write is queued.
 */

/** Largest `data` of an event, as JSON. */
export const MAX_WEBHOOK_DATA_BYTES = 16_384;
/** Longest error text kept of a failed attempt. */
const MAX_ERROR = 500;
/** Deliveries purged per transaction or statement. */
export const WEBHOOK_PURGE_CHUNK = 1000;

export interface WebhookDbRow {
  id: string;
  /** '' for none. */
  tenant: string;
  url: string;
  /** JSON array. */
  event_types: string;
  description: string | null;
  max_events_per_request: number;
  secret: string;
  /** SQLite 0/1, PostgreSQL boolean. */
  enabled: number | boolean;
  disabled_reason: string | null;
  disabled_at: number | null;
  failing_since: number | null;
  created_at: number;
  updated_at: number;
}

/** The event columns of a delivery row (tags as the JSON of an array, as both backends select them). */
export interface WebhookEventDbRow {
  event_type: string;
  tenant: string;
  message_id: string | null;
  recipient: string | null;
  occurred_at: number;
  egress_ip: string | null;
  reply_code: number | null;
  reply_enhanced: string | null;
  reply_text: string | null;
  remote_host: string | null;
  bounce_class: string | null;
  attempt: number | null;
  tags: string | null;
  metadata: string | null;
  data: string | null;
}

export interface WebhookDeliveryDbRow extends WebhookEventDbRow {
  id: string;
  webhook_id: string;
  state: string;
  attempts: number;
  next_attempt_at: number;
  retry_until: number;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  finished_at: number | null;
  created_at: number;
}

export interface ClaimedWebhookDbRow extends WebhookEventDbRow {
  id: string;
  webhook_id: string;
  url: string;
  secret: string;
  max_events_per_request: number;
  attempts: number;
  retry_until: number;
  next_attempt_at: number;
}

/** The values of an event as both backends insert it, in this order. */
export type WebhookEventValues = [
  type: WebhookEventType,
  tenant: string,
  messageId: string | null,
  recipient: string | null,
  at: number,
  egressIp: string | null,
  replyCode: number | null,
  replyEnhanced: string | null,
  replyText: string | null,
  remoteHost: string | null,
  data: string | null,
];

export function newWebhookLeaseToken(): WebhookLeaseToken {
  return randomBytes(12).toString('base64url') as WebhookLeaseToken;
}

/**
 * The event a recorded attempt result makes, or null for none: a wait that is not an attempt
 * (throttled) tells a receiver nothing. An operator's cancellation is message.cancelled.
 */
export function webhookEventOfResult(r: Pick<AttemptResult, 'newState' | 'countsAsAttempt' | 'outcome'>): WebhookEventType | null {
  if (r.outcome.bounceClass === 'cancelled') return 'message.cancelled';
  if (r.newState === 'delivered') return 'recipient.delivered';
  if (r.newState === 'bounced') return 'recipient.bounced';
  return r.countsAsAttempt ? 'recipient.deferred' : null;
}

/** Checks events no backend could store and gives each one's values; DataRefusedError otherwise. */
export function webhookEventValues(events: readonly WebhookEvent[]): WebhookEventValues[] {
  return events.map((e, i) => {
    const where = `webhook event ${i}`;
    if (!WEBHOOK_EVENT_TYPES.includes(e.type)) throw new DataRefusedError(`${where}: unknown type ${JSON.stringify(e.type)}`);
    if (!Number.isSafeInteger(e.at)) throw new DataRefusedError(`${where}: at must be integer milliseconds`);
    const data = e.data == null ? null : JSON.stringify(e.data);
    if (data !== null && Buffer.byteLength(data) > MAX_WEBHOOK_DATA_BYTES) throw new DataRefusedError(`${where}: data is over ${MAX_WEBHOOK_DATA_BYTES} bytes as JSON`);
    const reply = e.reply ?? null;
    const values: WebhookEventValues = [
      e.type,
      e.tenant ?? '',
      e.messageId,
      e.recipient,
      e.at,
      e.egressIp,
      reply?.code ?? null,
      reply?.enhanced ?? null,
      reply ? reply.text : null,
      reply?.remoteHost ?? null,
      data,
    ];
    // PostgreSQL text cannot hold NUL, and both backends store the same.
    if (values.some((v) => typeof v === 'string' && v.includes('\u0000'))) throw new DataRefusedError(`${where}: text with a NUL character`);
    return values;
  });
}

/** An endpoint's values no backend could store; DataRefusedError for them. */
export function checkWebhookEndpoint(e: Pick<NewWebhookEndpoint, 'id' | 'url' | 'eventTypes' | 'secret'> & { description?: string | null; maxEventsPerRequest?: number }): void {
  for (const [name, value] of [['id', e.id], ['url', e.url], ['secret', e.secret]] as const) {
    if (typeof value !== 'string' || value === '' || value.includes('\u0000')) throw new DataRefusedError(`webhook: ${name} must be a non-empty string without NUL`);
  }
  if (e.eventTypes.length === 0 || e.eventTypes.some((t) => !WEBHOOK_EVENT_TYPES.includes(t))) throw new DataRefusedError('webhook: eventTypes must name known event types');
  if (e.description?.includes('\u0000')) throw new DataRefusedError('webhook: description with a NUL character');
  const batch = e.maxEventsPerRequest;
  if (batch !== undefined && !(Number.isInteger(batch) && batch >= 1 && batch <= MAX_EVENTS_PER_REQUEST)) {
    throw new DataRefusedError(`webhook: maxEventsPerRequest must be an integer from 1 to ${MAX_EVENTS_PER_REQUEST}`);
  }
}

/** Each event type once, in the order of WEBHOOK_EVENT_TYPES: the stored list, compared and shown the same way everywhere. */
export function normalEventTypes(types: readonly WebhookEventType[]): WebhookEventType[] {
  return WEBHOOK_EVENT_TYPES.filter((t) => types.includes(t));
}

/** An error text as kept: short, without NUL. */
export function errorText(error: string | null): string | null {
  return error === null ? null : error.replaceAll('\u0000', '\uFFFD').slice(0, MAX_ERROR);
}

export function toWebhookEndpoint(row: WebhookDbRow): WebhookEndpoint {
  return {
    id: row.id,
    tenant: row.tenant === '' ? null : row.tenant,
    url: row.url,
    eventTypes: JSON.parse(row.event_types) as WebhookEventType[],
    description: row.description,
    maxEventsPerRequest: row.max_events_per_request,
    secret: row.secret,
    enabled: row.enabled === true || row.enabled === 1,
    disabledReason: row.disabled_reason,
    disabledAt: row.disabled_at,
    failingSince: row.failing_since,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toStoredWebhookEvent(row: WebhookEventDbRow): StoredWebhookEvent {
  return {
    type: row.event_type as WebhookEventType,
    tenant: row.tenant === '' ? null : row.tenant,
    messageId: row.message_id,
    recipient: row.recipient,
    at: row.occurred_at,
    egressIp: row.egress_ip,
    reply: row.reply_text === null ? null : { code: row.reply_code, enhanced: row.reply_enhanced, text: row.reply_text, remoteHost: row.remote_host },
    attempt: row.attempt,
    bounceClass: row.bounce_class,
    tags: row.tags === null ? [] : (JSON.parse(row.tags) as string[]),
    metadata: row.metadata === null ? {} : (JSON.parse(row.metadata) as Record<string, string>),
    data: row.data === null ? null : (JSON.parse(row.data) as Record<string, unknown>),
  };
}

export function toWebhookDelivery(row: WebhookDeliveryDbRow): WebhookDelivery {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    event: toStoredWebhookEvent(row),
    state: row.state as WebhookDeliveryState,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    retryUntil: row.retry_until,
    lastAttemptAt: row.last_attempt_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    finishedAt: row.finished_at,
    createdAt: row.created_at,
  };
}

export function toClaimedWebhookDelivery(row: ClaimedWebhookDbRow, token: WebhookLeaseToken): ClaimedWebhookDelivery {
  return {
    id: row.id,
    token,
    webhookId: row.webhook_id,
    url: row.url,
    secret: row.secret,
    maxEventsPerRequest: row.max_events_per_request,
    event: toStoredWebhookEvent(row),
    attempts: row.attempts,
    retryUntil: row.retry_until,
    dueAt: row.next_attempt_at,
  };
}

/** Oldest due first; the id breaks ties. */
export function compareWebhookDue(a: { next_attempt_at: number; id: string }, b: { next_attempt_at: number; id: string }): number {
  return a.next_attempt_at - b.next_attempt_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Per endpoint of a batch of applied results: whether one succeeded, else when the first failed. */
export function resultsByWebhook(applied: ReadonlyArray<{ webhookId: string; ok: boolean; at: number }>): { succeeded: string[]; failed: Map<string, number> } {
  const succeeded = new Set<string>();
  const failed = new Map<string, number>();
  for (const r of applied) {
    if (r.ok) succeeded.add(r.webhookId);
    else failed.set(r.webhookId, Math.min(failed.get(r.webhookId) ?? r.at, r.at));
  }
  // One success in the batch says the endpoint works: its run of failures ends.
  for (const id of succeeded) failed.delete(id);
  return { succeeded: [...succeeded], failed };
}

/**
 * The endpoint's row after `change` at `now`. Disabling keeps the reason given (else says an
 * operator did it); enabling clears the reason and the run of failures, so the endpoint gets the
 * whole window again before it can be disabled once more.
 */
export function changedWebhookRow(row: WebhookDbRow, change: WebhookChange, now: number): WebhookDbRow {
  const wasEnabled = row.enabled === true || row.enabled === 1;
  const enabled = change.enabled ?? wasEnabled;
  const next: WebhookDbRow = {
    ...row,
    url: change.url ?? row.url,
    event_types: change.eventTypes ? JSON.stringify(normalEventTypes(change.eventTypes)) : row.event_types,
    description: change.description !== undefined ? change.description : row.description,
    max_events_per_request: change.maxEventsPerRequest ?? row.max_events_per_request,
    secret: change.secret ?? row.secret,
    enabled,
    updated_at: now,
  };
  if (wasEnabled && !enabled) Object.assign(next, { disabled_reason: change.disabledReason ?? 'disabled by an operator', disabled_at: now });
  if (!wasEnabled && enabled) Object.assign(next, { disabled_reason: null, disabled_at: null, failing_since: null });
  return next;
}

/** The reason stored with an endpoint disabled for failing. */
export function disabledForFailingReason(disableAfterMs: number): string {
  return `every delivery failed for ${Math.round(disableAfterMs / 3_600_000)} hours`;
}
