import { COUNT, MAYBE_TIME, RESTRICTION, TIME, WINDOW } from './ip-schema.ts';

/**
 * The JSON schemas of GET /v1/explain (src/engine/route-explanation.ts and
 * src/ippool/pool-explanation.ts say what each field holds). Every object is closed, so the
 * serializer never sends a field the document does not describe.
 */

const ADDRESS = { type: 'string', minLength: 3, maxLength: 320 } as const;
const DETAIL = { type: 'string', description: 'In words, for the operator.' } as const;

export const EXPLAIN_QUERY = {
  type: 'object',
  additionalProperties: false,
  required: ['sender', 'recipient'],
  properties: {
    sender: { ...ADDRESS, description: 'The envelope sender (local@domain); its domain is taken as the From domain for DKIM.' },
    recipient: { ...ADDRESS, description: 'One recipient (local@domain, or local@[address literal]).' },
    pool: { type: 'string', minLength: 1, maxLength: 64, description: 'The pool the message asks for (X-Rookery-Pool), honoured only when `user` may use it.' },
    user: { type: 'string', minLength: 1, maxLength: 256, description: 'The SMTP user that submits it (smtp.users[].username); omitted: no user.' },
    tenant: { type: 'string', minLength: 1, maxLength: 64, description: "The tenant it is sent for (tenants); omitted: the user's tenant, or none." },
  },
} as const;

const HOP = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'port', 'preference', 'name'],
  properties: {
    host: { type: 'string', description: 'The address (or, for a route, the name) connected to.' },
    port: { type: 'integer' },
    preference: { type: 'integer', description: 'MX preference; 0 for a route or an implicit MX.' },
    name: { type: 'string', description: 'The MX (or route) host name.' },
  },
} as const;

const RATE = {
  type: 'object',
  additionalProperties: false,
  required: ['ratePerSecond', 'burst'],
  properties: { ratePerSecond: { type: 'number', minimum: 0 }, burst: { type: 'integer', minimum: 1 } },
} as const;

const SHAPING = {
  type: 'object',
  additionalProperties: false,
  required: ['maxConnections', 'maxMessagesPerConnection', 'messageRate', 'connectionRate'],
  description: "The provider's limits per egress IP and site (shaping).",
  properties: { maxConnections: { type: 'integer' }, maxMessagesPerConnection: { type: 'integer' }, messageRate: RATE, connectionRate: RATE },
} as const;

const CHECK = {
  type: 'object',
  additionalProperties: false,
  required: ['check', 'ok', 'detail', 'retryAt', 'restriction', 'warmup'],
  properties: {
    check: {
      type: 'string',
      enum: ['weight', 'paused', 'suspended', 'throttled', 'recovering', 'rate', 'unreachable', 'warmup'],
      description: '`unreachable`: the path to the site is down (a dead destination); `rate`: the shaping message rate.',
    },
    ok: { type: 'boolean', description: 'Whether it lets a message through now.' },
    detail: DETAIL,
    retryAt: { ...MAYBE_TIME, description: 'When a check that refuses lets a message through again; null when it passes or nothing says when.' },
    restriction: { ...RESTRICTION, type: ['object', 'null'], description: 'The suspension or throttle behind the check; null for the others.' },
    warmup: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['plan', 'start', 'phase', 'day', 'restartsOnNextSend', 'hourly', 'daily'],
      description: 'The plan, caps and counts behind a `warmup` check; null for the others.',
      properties: {
        plan: { type: 'string' },
        start: { ...TIME, description: 'The day 0 the plan counts from now.' },
        phase: { type: 'string', enum: ['pending', 'warming', 'warm'] },
        day: { type: ['integer', 'null'] },
        restartsOnNextSend: { type: 'boolean' },
        hourly: { ...WINDOW, type: ['object', 'null'] },
        daily: { ...WINDOW, type: ['object', 'null'] },
      },
    },
  },
} as const;

const IP = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'hostname', 'weight', 'eligible', 'share', 'checks'],
  properties: {
    address: { type: 'string' },
    hostname: { type: 'string' },
    weight: {
      type: 'object',
      additionalProperties: false,
      required: ['configured', 'base', 'weight', 'reason'],
      properties: {
        configured: { ...COUNT, description: 'ips[].weight.' },
        base: { ...COUNT, description: "The operator's weight in its place, else the configured one." },
        weight: { ...COUNT, description: 'As reputation leaves it for the provider: what selection weighs.' },
        reason: { type: ['string', 'null'], description: 'Why reputation lowered it; null when it did not.' },
      },
    },
    eligible: { type: 'boolean', description: 'Every check passes: selection may choose it now.' },
    share: { type: 'number', minimum: 0, maximum: 1, description: "Its share of the pool's mail to the provider now (its weight over the eligible IPs'); 0 when not eligible." },
    checks: { type: 'array', items: CHECK, description: 'The weight, then each gate in the order selection asks them; those with ok false are every reason it may not send.' },
  },
} as const;

const EGRESS = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: ['pool', 'site', 'provider', 'shaping', 'defaultEgress', 'ips'],
  description: 'The egress IPs of the pool toward the site; null when there is no route.',
  properties: {
    pool: { type: 'string' },
    site: { type: 'string' },
    provider: { type: 'string' },
    shaping: SHAPING,
    defaultEgress: { type: 'boolean', description: "No egress IPs are configured: the system's default source address sends, unchecked." },
    ips: { type: 'array', items: IP, description: "The pool's IPs in configuration order; empty when it has none (its mail waits)." },
  },
} as const;

export const EXPLANATION = {
  type: 'object',
  additionalProperties: false,
  required: ['at', 'sender', 'recipient', 'tenant', 'pool', 'route', 'egress', 'dkim', 'returnPath'],
  properties: {
    at: TIME,
    sender: { type: 'string' },
    recipient: { type: 'string' },
    tenant: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['name', 'senderAllowed', 'detail'],
      description: 'The tenant it is sent for, and whether its senderDomains allow the sender; null for none.',
      properties: { name: { type: 'string' }, senderAllowed: { type: 'boolean' }, detail: DETAIL },
    },
    pool: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'rule', 'requested', 'refused', 'detail'],
      properties: {
        name: { type: 'string' },
        rule: { type: 'string', enum: ['header', 'user', 'sender', 'tenant', 'default'], description: "The message's request, its user's pool, its sender's domain (pools.*.senders), its tenant's first pool, or the default." },
        requested: { type: ['string', 'null'] },
        refused: { type: ['string', 'null'], description: 'The requested pool when it was not honoured.' },
        detail: DETAIL,
      },
    },
    route: {
      type: 'object',
      additionalProperties: false,
      required: ['via', 'site', 'provider', 'nextHops', 'error', 'held', 'tls'],
      properties: {
        via: { type: ['string', 'null'], enum: ['route', 'mx', null], description: '`route`: a delivery.routes entry; `mx`: the MX records; null when no route was found.' },
        site: { type: ['string', 'null'], description: 'The destination site (its MX set, or `route:host:port`).' },
        provider: { type: ['string', 'null'] },
        nextHops: { type: 'array', items: HOP, description: 'In the order they would be tried now.' },
        error: {
          type: ['object', 'null'],
          additionalProperties: false,
          required: ['disposition', 'enhanced', 'message'],
          description: 'Why no route was found (a DNS failure, no such domain, a null MX): the recipient would be deferred (transient) or bounced (permanent).',
          properties: { disposition: { type: 'string', enum: ['transient', 'permanent'] }, enhanced: { type: ['string', 'null'] }, message: { type: 'string' } },
        },
        held: {
          type: ['object', 'null'],
          additionalProperties: false,
          required: ['since', 'until', 'reason'],
          description: 'The site is held because no egress IP can reach it: its mail waits for a probe to get through.',
          properties: { since: TIME, until: TIME, reason: { type: 'string' } },
        },
        tls: {
          type: ['object', 'null'],
          additionalProperties: false,
          required: ['mode', 'mtaSts', 'detail'],
          description: "The TLS the domain's mail would be held to: delivery.tls or tlsPolicies, raised to verify by an enforced MTA-STS policy (the one cached; none is fetched to answer). Null without a route.",
          properties: {
            mode: { type: 'string', enum: ['opportunistic', 'required', 'verify'] },
            mtaSts: {
              type: ['object', 'null'],
              additionalProperties: false,
              required: ['id', 'mode', 'mx', 'expiresAt'],
              properties: { id: { type: 'string' }, mode: { type: 'string', enum: ['enforce', 'testing', 'none'] }, mx: { type: 'array', items: { type: 'string' } }, expiresAt: TIME },
            },
            detail: DETAIL,
          },
        },
      },
    },
    egress: EGRESS,
    dkim: {
      type: 'object',
      additionalProperties: false,
      required: ['fromDomain', 'domain', 'source', 'selectors', 'detail'],
      properties: {
        fromDomain: { type: 'string', description: "Taken to be the sender's domain: DKIM follows the From header." },
        domain: { type: ['string', 'null'], description: 'd= of the signatures; null: unsigned.' },
        source: { type: 'string', enum: ['domain', 'parent', 'fallback', 'none'] },
        selectors: { type: 'array', items: { type: 'string' }, description: 'The selector of each key that signs now.' },
        detail: DETAIL,
      },
    },
    returnPath: {
      type: 'object',
      additionalProperties: false,
      required: ['verp', 'domain', 'address', 'detail'],
      properties: {
        verp: { type: 'boolean' },
        domain: { type: ['string', 'null'], description: 'The bounce domain of the VERP return paths.' },
        address: { type: 'string', description: 'The envelope sender it would carry (the VERP form with placeholders).' },
        detail: DETAIL,
      },
    },
  },
} as const;
