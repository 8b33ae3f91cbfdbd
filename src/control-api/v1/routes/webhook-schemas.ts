import type { ApiPrincipal } from '../../../access/api-token.ts';
import { MAX_EVENTS_PER_REQUEST, WEBHOOK_DELIVERY_STATES, WEBHOOK_EVENT_TYPES, type WebhookDelivery, type WebhookEndpoint } from '../../../storage/webhook-outbox.ts';
import { webhookPayload } from '../../../webhooks/payload.ts';
import { rfc3339 } from '../message-view.ts';

/*
 * The JSON of /v1/webhooks: request bodies, answers, and the views of an endpoint and of a
 * delivery. The secret is in no view: only POST and rotate-secret answer it, once.
 */

const NULLABLE_STRING = { type: ['string', 'null'] } as const;
const NULLABLE_TIME = { type: ['string', 'null'], format: 'date-time' } as const;

export const WEBHOOK_URL = { type: 'string', minLength: 1, maxLength: 2000, description: 'An http or https URL; redirects are not followed.' } as const;
export const EVENT_TYPES = {
  type: 'array',
  minItems: 1,
  maxItems: WEBHOOK_EVENT_TYPES.length,
  uniqueItems: true,
  items: { type: 'string', enum: [...WEBHOOK_EVENT_TYPES] },
  description: 'The events to receive.',
} as const;
export const DESCRIPTION = { type: 'string', maxLength: 500, description: "The tenant's own note." } as const;
export const MAX_EVENTS = {
  type: 'integer',
  minimum: 1,
  maximum: MAX_EVENTS_PER_REQUEST,
  description: 'At most this many events in one POST. 1 (the default): each event is its own request, its JSON an object. More: a JSON array of events, each with its delivery id, as many as are waiting (a batch of one included).',
} as const;

export const ID_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100, description: 'The endpoint id (wh_...).' } },
} as const;

export const DELIVERY_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'deliveryId'],
  properties: { ...ID_PARAMS.properties, deliveryId: { type: 'string', minLength: 1, maxLength: 100, description: 'The delivery id (msg_..., its webhook-id header).' } },
} as const;

export const WEBHOOK = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'tenant', 'url', 'eventTypes', 'description', 'maxEventsPerRequest', 'enabled', 'disabledReason', 'disabledAt', 'failingSince', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    tenant: { ...NULLABLE_STRING, description: 'Its tenant; null: mail sent for no tenant.' },
    url: { type: 'string' },
    eventTypes: { type: 'array', items: { type: 'string' } },
    description: NULLABLE_STRING,
    maxEventsPerRequest: { type: 'integer' },
    enabled: { type: 'boolean', description: 'False once disabled: every delivery failed for 3 days, or someone disabled it; PATCH enabled: true to resume.' },
    disabledReason: { ...NULLABLE_STRING, description: 'Why it is disabled; null while enabled.' },
    disabledAt: NULLABLE_TIME,
    failingSince: { ...NULLABLE_TIME, description: 'Since when every delivery has failed (it is disabled after 3 days of that); null after a success.' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

export const WEBHOOK_WITH_SECRET = {
  ...WEBHOOK,
  required: [...WEBHOOK.required, 'secret'],
  properties: { ...WEBHOOK.properties, secret: { type: 'string', description: 'The signing secret (whsec_...), shown this once: keep it to verify deliveries.' } },
} as const;

export const WEBHOOK_PAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'nextCursor'],
  properties: { items: { type: 'array', items: WEBHOOK }, nextCursor: { ...NULLABLE_STRING, description: 'Pass as `cursor` for the next page; null on the last.' } },
} as const;

export const DELIVERY = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type', 'state', 'attempts', 'nextAttemptAt', 'retryUntil', 'lastAttemptAt', 'lastStatus', 'lastError', 'finishedAt', 'createdAt', 'payload'],
  properties: {
    id: { type: 'string', description: 'The webhook-id header of every attempt.' },
    type: { type: 'string', enum: [...WEBHOOK_EVENT_TYPES] },
    state: { type: 'string', enum: [...WEBHOOK_DELIVERY_STATES], description: 'pending, delivering, delivered, failed (given up), held (the endpoint is disabled).' },
    attempts: { type: 'integer' },
    nextAttemptAt: { type: 'string', format: 'date-time', description: 'When it is (or was last) due.' },
    retryUntil: { type: 'string', format: 'date-time', description: 'It is retried until then.' },
    lastAttemptAt: NULLABLE_TIME,
    lastStatus: { type: ['integer', 'null'], description: 'The HTTP status of the last attempt; null when no answer came.' },
    lastError: NULLABLE_STRING,
    finishedAt: { ...NULLABLE_TIME, description: 'When it was delivered or given up.' },
    createdAt: { type: 'string', format: 'date-time' },
    payload: { type: 'object', additionalProperties: true, description: 'The JSON body it is sent with alone (to an endpoint taking several events per request, in an array, led by its id).' },
  },
} as const;

export const DELIVERY_PAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'nextCursor'],
  properties: { items: { type: 'array', items: DELIVERY }, nextCursor: { ...NULLABLE_STRING, description: 'Pass as `cursor` for the next page; null on the last.' } },
} as const;

export function webhookView(e: WebhookEndpoint): object {
  return {
    id: e.id,
    tenant: e.tenant,
    url: e.url,
    eventTypes: e.eventTypes,
    description: e.description,
    maxEventsPerRequest: e.maxEventsPerRequest,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    disabledAt: e.disabledAt === null ? null : rfc3339(e.disabledAt),
    failingSince: e.failingSince === null ? null : rfc3339(e.failingSince),
    createdAt: rfc3339(e.createdAt),
    updatedAt: rfc3339(e.updatedAt),
  };
}

export function deliveryView(d: WebhookDelivery): object {
  return {
    id: d.id,
    type: d.event.type,
    state: d.state,
    attempts: d.attempts,
    nextAttemptAt: rfc3339(d.nextAttemptAt),
    retryUntil: rfc3339(d.retryUntil),
    lastAttemptAt: d.lastAttemptAt === null ? null : rfc3339(d.lastAttemptAt),
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    finishedAt: d.finishedAt === null ? null : rfc3339(d.finishedAt),
    createdAt: rfc3339(d.createdAt),
    payload: webhookPayload(d.event),
  };
}

/**
 * The endpoint as the caller may know it: a token of a tenant knows its own tenant's endpoints,
 * a token of no tenant every one (those of mail of no tenant are only theirs). Another tenant's
 * is answered as unknown.
 */
export function visibleWebhook(found: WebhookEndpoint | null, principal: ApiPrincipal): WebhookEndpoint | null {
  return found && (principal.tenant === null || found.tenant === principal.tenant) ? found : null;
}
