import { RECIPIENT_STATES } from '../../../storage/store.ts';

/** Response schemas of the /v1/messages routes (the OpenAPI document shows them; the serializer keeps to them). */

const TIME = { type: 'string', format: 'date-time' } as const;
const NULLABLE_STRING = { type: ['string', 'null'] } as const;

const MESSAGE_FIELDS = {
  id: { type: 'string', description: 'Queue id.' },
  sender: { type: 'string', description: "Envelope sender; '' is the null reverse-path (DSNs)." },
  pool: { type: 'string', description: 'The egress pool chosen at acceptance.' },
  tenant: { ...NULLABLE_STRING, description: 'The tenant it was sent for; null for none.' },
  size: { type: 'integer', minimum: 0, description: 'Bytes as stored.' },
  createdAt: { ...TIME, description: 'When the message was accepted.' },
  messageId: { ...NULLABLE_STRING, description: 'The Message-ID header.' },
  source: { type: 'string', enum: ['smtp', 'http', 'dsn'] },
  submitter: { ...NULLABLE_STRING, description: 'The SMTP user (or token) that submitted it; null for trusted networks and DSNs.' },
  clientAddress: { ...NULLABLE_STRING, description: 'The submitting client address.' },
  sendAt: { type: ['string', 'null'], format: 'date-time', description: 'A scheduled send: when its first attempt was due. Null: sent at once.' },
  tags: { type: 'array', items: { type: 'string' }, description: 'The tags it was sent with (POST /v1/messages).' },
  metadata: { type: 'object', additionalProperties: { type: 'string' }, description: 'The metadata it was sent with (POST /v1/messages).' },
} as const;

const STATE_COUNTS = {
  type: 'object',
  additionalProperties: false,
  required: [...RECIPIENT_STATES],
  properties: Object.fromEntries(RECIPIENT_STATES.map((state) => [state, { type: 'integer', minimum: 0 }])),
} as const;

const MESSAGE_SUMMARY = {
  type: 'object',
  additionalProperties: false,
  required: [...Object.keys(MESSAGE_FIELDS), 'recipientStates'],
  properties: { ...MESSAGE_FIELDS, recipientStates: { ...STATE_COUNTS, description: 'How many recipients are in each state.' } },
} as const;

export const MESSAGE_PAGE = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'nextCursor'],
  properties: {
    items: { type: 'array', items: MESSAGE_SUMMARY },
    nextCursor: { ...NULLABLE_STRING, description: 'Pass as `cursor` for the next page; null on the last.' },
  },
} as const;

export const EVENT = {
  type: 'object',
  additionalProperties: false,
  required: ['at', 'attempt', 'disposition', 'code', 'enhanced', 'response', 'stage', 'bounceClass', 'remoteHost', 'egressIp', 'possibleDuplicate', 'tls'],
  properties: {
    at: TIME,
    attempt: { type: 'integer', minimum: 0, description: "The recipient's attempt count after this result (a throttled wait does not count)." },
    disposition: { type: 'string', enum: ['delivered', 'transient', 'permanent', 'throttled'] },
    code: { type: ['integer', 'null'], description: 'SMTP reply code; null when no reply came.' },
    enhanced: { ...NULLABLE_STRING, description: 'Enhanced status code (RFC 3463).' },
    response: { type: 'string', description: 'The remote reply text, or what failed locally.' },
    stage: { type: 'string', description: 'Where the result was decided (queue, dns, connect, ..., rcpt, data, dot).' },
    bounceClass: { type: 'string' },
    remoteHost: { ...NULLABLE_STRING, description: 'The host that answered or failed.' },
    egressIp: { ...NULLABLE_STRING, description: 'The egress IP of the attempt.' },
    possibleDuplicate: { type: 'boolean', description: 'Failed after the message was sent, before the reply: the server may have it.' },
    tls: {
      type: ['object', 'null'],
      description: 'The TLS of the session that carried (or refused) the mail; null when no session was reached.',
      additionalProperties: false,
      required: ['policy', 'version', 'cipher', 'verified', 'failure'],
      properties: {
        policy: { type: 'string', enum: ['opportunistic', 'required', 'verify', 'mta-sts', 'mta-sts-testing'], description: 'The TLS policy the delivery was held to.' },
        version: { ...NULLABLE_STRING, description: 'TLS protocol (TLSv1.3); null in clear.' },
        cipher: { ...NULLABLE_STRING, description: 'Cipher suite; null in clear.' },
        verified: { type: 'boolean', description: 'The certificate was valid for the MX host name.' },
        failure: { ...NULLABLE_STRING, description: 'Why the policy was not met (an RFC 8460 result type); null when it was.' },
      },
    },
  },
} as const;

const FEEDBACK = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'at', 'action', 'code', 'enhanced', 'diagnostic', 'bounceClass', 'reporter', 'egressIp', 'details'],
  properties: {
    id: { type: 'integer' },
    kind: { type: 'string', enum: ['bounce', 'complaint', 'unsubscribe'] },
    at: { ...TIME, description: 'When it was received.' },
    action: { ...NULLABLE_STRING, description: "A bounce's RFC 3464 Action: failed (the recipient is bounced) or delayed (recorded only)." },
    code: { type: ['integer', 'null'], description: 'The SMTP reply code the bounce quotes.' },
    enhanced: { ...NULLABLE_STRING, description: 'Enhanced status code (RFC 3463).' },
    diagnostic: { ...NULLABLE_STRING, description: "The remote's wording for a bounce; the feedback type (abuse, ...) for a complaint." },
    bounceClass: { ...NULLABLE_STRING, description: 'The bounce class the bounce rules give it.' },
    reporter: { ...NULLABLE_STRING, description: 'Who reported it: the Reporting-MTA of a DSN, the sender of a complaint.' },
    egressIp: { ...NULLABLE_STRING, description: 'The egress IP that delivered the message.' },
    details: { type: 'object', additionalProperties: true, description: 'Further fields of the report (Remote-MTA, Source-IP, Arrival-Date, ...).' },
  },
} as const;

const RECIPIENT = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'domain', 'state', 'attempts', 'nextAttemptAt', 'paused', 'updatedAt', 'dsn', 'events', 'feedback'],
  properties: {
    address: { type: 'string' },
    domain: { type: 'string' },
    state: { type: 'string', enum: [...RECIPIENT_STATES] },
    attempts: { type: 'integer', minimum: 0 },
    nextAttemptAt: { type: ['string', 'null'], format: 'date-time', description: 'When a queued recipient is next tried (paused: when it is due once the pause ends, at once if that time has passed); null otherwise.' },
    paused: {
      type: 'boolean',
      description: "Queued and held by an operator's pause of its domain, its message's pool or its tenant (POST /v1/queue/pause): not tried until the pause ends.",
    },
    updatedAt: TIME,
    dsn: {
      description:
        'The DSN (bounce) sent to the sender for this recipient: its queue id (GET /v1/messages/{id} shows its delivery). Null when none: not bounced, the null sender, DSNs disabled, or purged.',
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['id', 'createdAt'],
      properties: { id: { type: 'string' }, createdAt: TIME },
    },
    events: { type: 'array', items: EVENT, description: 'Every recorded result, oldest first.' },
    feedback: { type: 'array', items: FEEDBACK, description: 'What came back after delivery (asynchronous bounces, complaints, unsubscribes), oldest first.' },
  },
} as const;

export const MESSAGE_DETAIL = {
  type: 'object',
  additionalProperties: false,
  required: [...Object.keys(MESSAGE_FIELDS), 'recipients'],
  properties: { ...MESSAGE_FIELDS, recipients: { type: 'array', items: RECIPIENT, description: 'In the order given at acceptance.' } },
} as const;
