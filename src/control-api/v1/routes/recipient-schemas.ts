import { TENANT_PATTERN } from '../suppression-input.ts';
import { MESSAGE_DETAIL } from './message-schemas.ts';
import { ENTRY } from './suppression-schemas.ts';

/** Request and response schemas of the /v1/recipients routes (personal data of an address). */

const TENANT = {
  type: 'string',
  maxLength: 64,
  pattern: TENANT_PATTERN,
  description: "Whose data: a tenant's, or empty for mail sent for no tenant; absent: every tenant's (a tenant's token: its own only).",
} as const;

export const RECIPIENT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { tenant: TENANT, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'The most messages answered, newest first.' } },
} as const;

export const ERASE_QUERY = { type: 'object', additionalProperties: false, properties: { tenant: TENANT } } as const;

const COUNT = { type: 'integer', minimum: 0 } as const;

export const RECIPIENT_DATA = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'tenant', 'messages', 'moreMessages', 'suppressions', 'dsns', 'webhookDeliveries'],
  properties: {
    address: { type: 'string', description: 'As asked.' },
    tenant: { type: ['string', 'null'], description: "Whose data was searched; null: every tenant's, '' mail of no tenant's." },
    messages: {
      type: 'array',
      items: MESSAGE_DETAIL,
      description: "The messages the address is a recipient of, newest first, never their bodies; each lists the address's own rows only.",
    },
    moreMessages: { type: 'boolean', description: 'More messages hold the address than `limit` allowed.' },
    suppressions: { type: 'array', items: ENTRY, description: 'Its suppression entries; an erased one keeps only its hash (address null).' },
    dsns: { ...COUNT, description: 'DSNs Rookery made that quote the address.' },
    webhookDeliveries: { ...COUNT, description: 'Webhook deliveries (any state) whose event names the address.' },
  },
} as const;

const ERASURE_COUNTS = {
  messages: 'Messages deleted whole (body, recipients, attempts, feedback): no other recipient of theirs was waiting.',
  pending: "Messages another recipient still waits for: the address's rows went now, the message goes once the others are final.",
  cancelled: 'Rows of the address that were queued or in delivery: cancelled, without a DSN.',
  dsns: 'DSNs quoting the address, deleted.',
  suppressions: 'Suppression entries kept with their hash only: the address stays refused.',
  webhookDeliveries: 'Webhook deliveries naming it, deleted (sent or not).',
  idempotencyRecords: 'Stored answers of idempotent sends naming it, deleted.',
  auditEntries: "Audit entries naming it: kept, the address replaced by [erased]. With a tenant, those of its tokens and of tokens of no tenant (the platform's own).",
};

export const ERASURE = {
  type: 'object',
  additionalProperties: false,
  required: ['addressHash', 'counts'],
  properties: {
    addressHash: { type: 'string', description: 'HMAC-SHA256 of the lower-cased address, keyed per database (hex): the suppression key, and the target of the audit entry.' },
    counts: {
      type: 'object',
      additionalProperties: false,
      required: Object.keys(ERASURE_COUNTS),
      properties: Object.fromEntries(Object.entries(ERASURE_COUNTS).map(([name, description]) => [name, { ...COUNT, description }])),
    },
  },
} as const;
