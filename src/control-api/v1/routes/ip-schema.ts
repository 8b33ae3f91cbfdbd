/**
 * The JSON schema of one egress IP in GET /v1/ips (src/ippool/pool-snapshot.ts says what each
 * field holds). Every object is closed, so the serializer never sends a field the document does
 * not describe.
 */

export const TIME = { type: 'string', format: 'date-time' } as const;
export const MAYBE_TIME = { type: ['string', 'null'], format: 'date-time' } as const;
export const COUNT = { type: 'integer', minimum: 0 } as const;

export const WINDOW = {
  type: 'object',
  additionalProperties: false,
  required: ['cap', 'used', 'windowStart', 'windowEnd'],
  properties: {
    cap: { type: ['integer', 'null'], minimum: 0, description: 'Most messages in the window; null = no cap.' },
    used: { ...COUNT, description: 'Messages counted against the cap in this window (by every node sharing the pool backend).' },
    windowStart: TIME,
    windowEnd: TIME,
  },
} as const;

const SCOPE_FIELDS = {
  scope: { type: 'string', enum: ['all', 'provider', 'site'], description: '`all`: every provider; `provider`: one provider; `site`: one site of `other`.' },
  provider: { type: ['string', 'null'], description: 'The provider (null for `all`).' },
  site: { type: ['string', 'null'], description: 'The site (its MX set) for scope `site`, else null.' },
} as const;

const PROVIDER = {
  type: 'object',
  additionalProperties: false,
  required: ['provider', 'effectiveWeight', 'weightReason', 'reputation', 'warmup'],
  properties: {
    provider: { type: 'string' },
    effectiveWeight: { ...COUNT, description: 'The configured weight as reputation leaves it for this provider.' },
    weightReason: { type: ['string', 'null'], description: 'Why the weight is lowered; null when it is not.' },
    reputation: {
      type: 'object',
      additionalProperties: false,
      required: ['score', 'accepted', 'deferred', 'blocked', 'complaints'],
      description: "Outcomes over the reputation window (reputation.window), as this node's deliveries saw them.",
      properties: {
        score: { type: ['number', 'null'], minimum: 0, maximum: 1, description: 'null: fewer outcomes than reputation.minSamples.' },
        accepted: COUNT,
        deferred: COUNT,
        blocked: COUNT,
        complaints: COUNT,
      },
    },
    warmup: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['hourly', 'daily'],
      description: 'Caps and usage of the current UTC hour and day; null once the IP is warm, or without a plan.',
      properties: { hourly: WINDOW, daily: WINDOW },
    },
  },
} as const;

export const RESTRICTION = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'provider', 'site', 'action', 'ratePerHour', 'rule', 'by', 'reason', 'until'],
  properties: {
    ...SCOPE_FIELDS,
    action: { type: 'string', enum: ['suspend', 'throttle'] },
    ratePerHour: { type: ['number', 'null'], minimum: 0, description: 'Messages per hour while throttled; null for a suspension.' },
    rule: { type: 'string', description: 'The reaction rule behind it, `egress-unavailable`, `blocklist:<list>` for a listing on a DNS blocklist (lifted at the delisting), or `operator` for a suspension set through POST /v1/ips/{address}/suspend.' },
    by: { type: ['string', 'null'], description: "The API token that set an operator's suspension; null for a reaction's." },
    reason: { type: 'string', description: "The remote reply (or local error) that triggered it, or the operator's reason." },
    until: TIME,
  },
} as const;

const RECOVERY = {
  type: 'object',
  additionalProperties: false,
  required: ['scope', 'provider', 'site', 'after', 'endedAt', 'ratePerHour', 'normalRatePerHour', 'endsAt'],
  properties: {
    ...SCOPE_FIELDS,
    after: { type: 'string', enum: ['suspend', 'throttle'], description: 'The restriction the IP is coming back from.' },
    endedAt: TIME,
    ratePerHour: { type: 'number', minimum: 0, description: 'Messages per hour allowed now, rising toward normalRatePerHour.' },
    normalRatePerHour: { type: 'number', minimum: 0 },
    endsAt: MAYBE_TIME,
  },
} as const;

const BLOCKLIST = {
  type: 'object',
  additionalProperties: false,
  required: ['list', 'listed', 'codes', 'reason', 'firstListedAt', 'lastCheckedAt', 'lastError'],
  properties: {
    list: { type: 'string', description: 'The list\'s name (blocklists.lists[].name).' },
    listed: { type: 'boolean', description: 'As the last answered lookup found; a failed or refused lookup leaves it as it was.' },
    codes: { type: 'array', items: { type: 'string' }, description: 'The A answers of the listing (127.0.0.x: the list says what each means); empty when not listed.' },
    reason: { type: ['string', 'null'], description: "The list's TXT record for the listing (often a removal link); null when none or not listed." },
    firstListedAt: { ...MAYBE_TIME, description: 'Since when it is listed without a break; null when not listed.' },
    lastCheckedAt: { ...MAYBE_TIME, description: 'The last lookup, answered or not; null before the first.' },
    lastError: { type: ['string', 'null'], description: 'Why the last lookup gave no answer (a timeout, SERVFAIL, or the list refusing the query); null when it was answered.' },
  },
} as const;

export const IP_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'hostname', 'pool', 'weight', 'weightOverride', 'lastSentAt', 'warmupOverride', 'warmup', 'providers', 'restrictions', 'recoveries', 'blocklists'],
  properties: {
    address: { type: 'string' },
    hostname: { type: 'string', description: 'The EHLO name it greets with.' },
    pool: { type: 'string' },
    weight: { ...COUNT, description: 'The configured weight; 0 takes the IP out of rotation.' },
    weightOverride: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['weight', 'by', 'reason', 'setAt'],
      description: 'The weight an operator set in place of the configured one (PUT /v1/ips/{address}/weight), shared by every node; null: the configured weight applies.',
      properties: {
        weight: { ...COUNT, description: '0: the IP takes no new mail.' },
        by: { type: 'string', description: 'The API token that set it.' },
        reason: { type: 'string' },
        setAt: TIME,
      },
    },
    lastSentAt: { ...MAYBE_TIME, description: 'When it last sent, as far as this node knows (to the minute); null if never.' },
    warmupOverride: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['plan', 'start', 'by', 'reason', 'setAt'],
      description: 'The warm-up plan an operator (re)started in place of the configured one (POST /v1/ips/{address}/warmup), shared by every node; null: the configured plan applies.',
      properties: {
        plan: { type: 'string' },
        start: { ...TIME, description: 'Day 0: the UTC day it was set.' },
        by: { type: 'string', description: 'The API token that set it.' },
        reason: { type: 'string' },
        setAt: TIME,
      },
    },
    warmup: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['plan', 'configuredStart', 'restartedAt', 'start', 'restartsOnNextSend', 'phase', 'day'],
      description: "The warm-up plan in force (the operator's, else the configured one); null for a warm IP.",
      properties: {
        plan: { type: 'string' },
        configuredStart: { ...TIME, description: 'ips[].warmup.start, or the day an operator (re)started the plan.' },
        restartedAt: { ...MAYBE_TIME, description: 'When the plan restarted after an idle time; null if never.' },
        start: { ...TIME, description: 'The day 0 the plan counts from now.' },
        restartsOnNextSend: { type: 'boolean', description: 'Idle longer than warmup.idleRestart: the plan starts again from today with the next message.' },
        phase: { type: 'string', enum: ['pending', 'warming', 'warm'] },
        day: { type: ['integer', 'null'], description: 'Day of the plan (negative while pending); null once warm.' },
      },
    },
    providers: { type: 'array', items: PROVIDER, description: 'Every destination provider, in match order (`other` last).' },
    restrictions: { type: 'array', items: RESTRICTION, description: 'Suspensions and throttles in force, soonest to end first.' },
    recoveries: { type: 'array', items: RECOVERY, description: 'Ramps back to the normal rate after a restriction ended.' },
    blocklists: { type: 'array', items: BLOCKLIST, description: 'Each DNS blocklist the IP is looked up in (blocklists.lists; none for a private address or with the watch off), as the store holds it for every node.' },
  },
} as const;
