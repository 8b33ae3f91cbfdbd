import { SUPPRESSION_REASONS, type NewSuppression, type SuppressionRecord } from '../../../storage/suppressions.ts';
import { rfc3339 } from '../message-view.ts';
import { TENANT_PATTERN } from '../suppression-input.ts';
import { EVENT } from './message-schemas.ts';

/** Request and response schemas of the /v1/suppressions routes, and the view of an entry. */

const TIME = { type: 'string', format: 'date-time' } as const;
const NULLABLE_STRING = { type: ['string', 'null'] } as const;
const REASON = { type: 'string', enum: [...SUPPRESSION_REASONS] } as const;

/** `tenant` in a query: a tenant's name, or empty for mail of no tenant. */
export const TENANT_QUERY = {
  type: 'string',
  maxLength: 64,
  pattern: TENANT_PATTERN,
  description: "Whose list: a tenant (a tenant's token: its own only), or empty for mail sent for no tenant.",
} as const;

export const ADDRESS_PARAMS = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: { address: { type: 'string', minLength: 3, maxLength: 320, description: 'The address (case ignored).' } },
} as const;

const ENTRY_FIELDS = {
  tenant: { ...NULLABLE_STRING, description: 'The tenant whose mail it stops; null: mail sent for no tenant.' },
  address: { ...NULLABLE_STRING, description: 'The address as last given; null once erased (the hash keeps the opt-out).' },
  addressHash: { type: 'string', description: 'HMAC-SHA256 of the lower-cased address, keyed per database (hex).' },
  reason: REASON,
  source: { type: ['object', 'null'], additionalProperties: true, description: 'What caused it: {kind: attempt, messageId, recipientId}, {kind: feedback, ...} or {kind: api, actor}.' },
  createdAt: TIME,
  expiresAt: { type: ['string', 'null'], format: 'date-time', description: 'When it stops applying; null: never.' },
} as const;

export const ENTRY = { type: 'object', additionalProperties: false, required: Object.keys(ENTRY_FIELDS), properties: ENTRY_FIELDS } as const;

export const ENTRY_PAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: ENTRY },
    nextCursor: { ...NULLABLE_STRING, description: 'Pass as `cursor` for the next page; null on the last.' },
  },
} as const;

export const ENTRY_DETAIL = {
  type: 'object',
  additionalProperties: false,
  required: [...Object.keys(ENTRY_FIELDS), 'message', 'events'],
  properties: {
    ...ENTRY_FIELDS,
    message: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['id', 'sender', 'createdAt'],
      properties: { id: { type: 'string' }, sender: { type: 'string' }, createdAt: TIME },
      description: 'The message its source names, while the queue keeps it (storage.retention); else null.',
    },
    events: { type: 'array', items: EVENT, description: "That message's attempts for the address, oldest first." },
  },
} as const;

/** One entry to add (POST /v1/suppressions, alone or in a list). */
const NEW_ENTRY = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: {
    address: { type: 'string', minLength: 3, maxLength: 320 },
    reason: { ...REASON, description: 'Default: manual.' },
    expiresAt: { ...TIME, description: 'When it stops applying (RFC 3339); or expiresIn; neither: never.' },
    expiresIn: { type: 'string', maxLength: 20, description: 'How long it applies: 30m, 12h, 90d; or expiresAt.' },
    tenant: { type: ['string', 'null'], maxLength: 64, pattern: TENANT_PATTERN, description: "Whose list; null or absent: mail of no tenant (a tenant's token: its own)." },
  },
} as const;

export const ADD_BODY = {
  anyOf: [NEW_ENTRY, { type: 'array', minItems: 1, maxItems: 1000, items: NEW_ENTRY }],
  description: 'One entry, or a list of up to 1,000 (POST /v1/suppressions/import takes more).',
} as const;

const ADDED_FIELDS = {
  tenant: ENTRY_FIELDS.tenant,
  address: { type: 'string' },
  reason: REASON,
  createdAt: TIME,
  expiresAt: ENTRY_FIELDS.expiresAt,
} as const;

export const ADD_RESULT = {
  type: 'object',
  additionalProperties: false,
  required: ['written', 'entries'],
  properties: {
    written: { type: 'integer', minimum: 0, description: 'Entries added or replaced (an address given twice counts once).' },
    entries: { type: 'array', items: { type: 'object', additionalProperties: false, required: Object.keys(ADDED_FIELDS), properties: ADDED_FIELDS } },
  },
} as const;

export const IMPORT_RESULT = {
  type: 'object',
  additionalProperties: false,
  required: ['lines', 'written'],
  properties: {
    lines: { type: 'integer', minimum: 0, description: 'Entries read (blank lines left out).' },
    written: { type: 'integer', minimum: 0, description: 'Entries added or replaced: an address given twice counts once, and an entry older than the stored one (created_at) changes nothing.' },
  },
} as const;

/** An entry as POST /v1/suppressions wrote it. */
export function addedView(e: NewSuppression) {
  return { tenant: e.tenant || null, address: e.address, reason: e.reason, createdAt: rfc3339(e.createdAt), expiresAt: e.expiresAt === null ? null : rfc3339(e.expiresAt) };
}

export function entryView(e: SuppressionRecord) {
  return {
    tenant: e.tenant === '' ? null : e.tenant,
    address: e.address,
    addressHash: e.addressHash,
    reason: e.reason,
    source: e.source,
    createdAt: rfc3339(e.createdAt),
    expiresAt: e.expiresAt === null ? null : rfc3339(e.expiresAt),
  };
}
