import { SUPPRESSION_REASONS } from '../../../storage/suppressions.ts';
import { problemResponses } from '../schemas.ts';

/**
 * Request and response schemas of POST /v1/messages and /v1/messages/batch (the OpenAPI document
 * shows them; Fastify checks requests against them, and each item of a batch on its own).
 * What a schema cannot say (an address's syntax, base64, the recipients' number, a header the
 * message builds itself) is checked by compose-message.ts, with the same kind of path.
 */

/** No line break and no NUL: a value that becomes (part of) a header field. */
const ONE_LINE = '^[^\\r\\n\\u0000]*$';
/** No control character at all: names and labels. */
const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f]*$';

const ADDRESS_LENGTH = { minLength: 3, maxLength: 254 } as const;
const ADDRESS = { type: 'string', ...ADDRESS_LENGTH } as const;

/** One mailbox: a plain address, or an object with a display name. */
const MAILBOX_KEYWORDS = {
  ...ADDRESS_LENGTH,
  additionalProperties: false,
  required: ['address'],
  properties: { name: { type: 'string', maxLength: 256, pattern: ONE_LINE }, address: ADDRESS },
} as const;

const MAILBOX = {
  type: ['string', 'object'],
  ...MAILBOX_KEYWORDS,
  description: '`"user@example.com"` or `{"name": "A User", "address": "user@example.com"}`.',
} as const;

/** One mailbox or a list of them. */
const MAILBOXES = {
  type: ['string', 'object', 'array'],
  ...MAILBOX_KEYWORDS,
  items: MAILBOX,
  maxItems: 1000,
  description: 'A mailbox (as `from`) or a list of them.',
} as const;

const ATTACHMENT = {
  type: 'object',
  additionalProperties: false,
  required: ['filename', 'content'],
  properties: {
    filename: { type: 'string', minLength: 1, maxLength: 255, pattern: NO_CONTROL },
    contentType: { type: 'string', maxLength: 255, pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$', description: 'Default: from the filename.' },
    content: { type: 'string', description: 'The file, base64 (RFC 4648, with padding, no line breaks).' },
    cid: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\s<>\\u0000-\\u001f\\u007f]+$', description: 'Content-ID, for `<img src="cid:...">` in `html`: the file is then shown inline.' },
  },
} as const;

/** The body of POST /v1/messages as JSON, and of each item of a batch. */
export const SEND_MESSAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['from'],
  properties: {
    from: { ...MAILBOX, description: 'The author (From) and the envelope sender; must be allowed by the token\'s allowedSenders.' },
    to: MAILBOXES,
    cc: MAILBOXES,
    bcc: { ...MAILBOXES, description: 'Recipients not shown in the message.' },
    replyTo: MAILBOXES,
    subject: { type: 'string', maxLength: 998, pattern: ONE_LINE },
    text: { type: 'string', description: 'The plain text part.' },
    html: { type: 'string', description: 'The HTML part.' },
    attachments: { type: 'array', maxItems: 100, items: ATTACHMENT },
    headers: {
      type: 'object',
      maxProperties: 100,
      description: 'Further header fields, name to value (Message-ID, In-Reply-To, List-Unsubscribe, X-...); not those the fields above make.',
      propertyNames: { pattern: '^[!-9;-~]{1,76}$' },
      additionalProperties: { type: 'string', maxLength: 998, pattern: ONE_LINE },
    },
    tags: { type: 'array', maxItems: 20, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 128, pattern: NO_CONTROL }, description: 'Labels to find the message by (GET /v1/messages?tag=).' },
    metadata: {
      type: 'object',
      maxProperties: 50,
      description: 'Your own key-value data, kept with the message and shown by GET /v1/messages/{id}; never sent.',
      propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
      additionalProperties: { type: 'string', maxLength: 1000 },
    },
    pool: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[A-Za-z][A-Za-z0-9_-]*$', description: 'An egress pool of the token\'s `pools`.' },
    sendAt: { type: 'string', format: 'date-time', description: 'Send later: the first attempt is due then (at most 30 days ahead; a past time sends at once).' },
  },
} as const;

/** The query of POST /v1/messages with a message/rfc822 body: the envelope and options the message cannot carry. */
export const RAW_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { ...ADDRESS, description: 'Envelope sender (with a message/rfc822 body).' },
    to: { type: 'array', minItems: 1, maxItems: 1000, items: ADDRESS, description: 'Envelope recipients; repeat the parameter for each (with a message/rfc822 body).' },
    pool: SEND_MESSAGE.properties.pool,
    sendAt: SEND_MESSAGE.properties.sendAt,
    tag: { ...SEND_MESSAGE.properties.tags, description: 'Tags; repeat the parameter for each.' },
  },
} as const;

export const BATCH_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['messages'],
  properties: {
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      description: 'Up to 1,000 messages, each as the JSON body of POST /v1/messages. Each is checked on its own: one that fails gets its problem in `results`, the others go.',
      items: { type: 'object' },
    },
  },
} as const;

/** What an Idempotency-Key may be: 1 to 255 printable ASCII characters, no space. */
export const IDEMPOTENCY_KEY_PATTERN = '^[!-~]{1,255}$';

export const IDEMPOTENCY_HEADERS = {
  type: 'object',
  properties: {
    'idempotency-key': {
      type: 'string',
      minLength: 1,
      maxLength: 255,
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description: 'Makes a retry safe: the same key with the same request within 24 hours answers the first response again and sends nothing more; with another request, 422.',
    },
  },
} as const;

const RECIPIENT_STATUS = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'status'],
  properties: {
    address: { type: 'string' },
    status: {
      type: 'string',
      enum: ['queued', 'suppressed', 'dropped'],
      description:
        'queued: stored; delivery follows (or waits for sendAt). suppressed: on the suppression list of the tenant and refused (suppression action reject); not stored. dropped: on the list (action drop); stored as bounced, never attempted.',
    },
    reason: { type: 'string', enum: [...SUPPRESSION_REASONS], description: 'With suppressed and dropped: why the address is on the list.' },
    id: { type: 'string', description: 'The queue id of the message holding this recipient (see `ids`); none for a suppressed recipient, which is not stored.' },
  },
} as const;

const ACCEPTED_FIELDS = {
  id: { type: 'string', description: 'The queue id (GET /v1/messages/{id}); of the first copy when the message was split per recipient.' },
  ids: {
    type: 'array',
    items: { type: 'string' },
    description: 'Every queue id: one, or one per recipient when each recipient got its own List-Unsubscribe link (a copy with its own id and signature).',
  },
  messageId: { type: 'string', description: 'The Message-ID header.' },
  pool: { type: 'string', description: 'The egress pool it sends from.' },
  sendAt: { type: ['string', 'null'], format: 'date-time', description: 'When its first attempt is due, for a scheduled send; null: at once.' },
  recipients: { type: 'array', items: RECIPIENT_STATUS },
} as const;

export const ACCEPTED = {
  type: 'object',
  additionalProperties: false,
  required: Object.keys(ACCEPTED_FIELDS),
  properties: ACCEPTED_FIELDS,
} as const;

const ITEM_PROBLEM = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code'],
  description: 'Why this message was refused: a problem document as the single route would answer it.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
  },
} as const;

export const BATCH_RESULT = {
  type: 'object',
  additionalProperties: false,
  required: ['accepted', 'failed', 'results'],
  properties: {
    accepted: { type: 'integer', minimum: 0 },
    failed: { type: 'integer', minimum: 0 },
    results: {
      type: 'array',
      description: 'One per message, in the order given.',
      items: {
        type: 'object',
        required: ['index', 'status'],
        properties: {
          index: { type: 'integer' },
          status: { type: 'string', enum: ['accepted', 'failed'] },
          ...ACCEPTED_FIELDS,
          error: ITEM_PROBLEM,
          retryAfter: { type: 'integer', minimum: 1, description: 'With a failure of the tenant\'s rate or quota: seconds to wait before sending this message again (the Retry-After the single route would answer).' },
        },
      },
    },
  },
} as const;

/** The statuses a send route answers besides 202. */
export function sendProblems(): Record<number, object> {
  return problemResponses(400, 401, 403, 413, 415, 422, 429, 503);
}
