/*
 * Webhooks in the store: the endpoints tenants register, the subscriptions of the enabled ones,
 * and the outbox of deliveries (one row per event and subscribed endpoint). Events are written
 * in the transaction of the change that caused them, fanned out at write time by an INSERT ...
 * SELECT joined to the subscriptions, so nothing is written when nobody listens. Part of every
 * Store; the dispatcher (src/webhooks/) claims the rows as the scheduler claims recipients.
 *
 * For other store methods that emit events in their own transaction, each backend exports
 * `insertWebhookEvents` (sqlite/webhook-queries.ts, postgres/webhook-queries.ts): call it inside
 * the write op with the events, and they commit or roll back with the change.
 */

export const WEBHOOK_EVENT_TYPES = [
  'message.accepted',
  'recipient.delivered',
  'recipient.deferred',
  'recipient.bounced',
  'recipient.complained',
  'recipient.unsubscribed',
  'recipient.suppressed',
  'message.cancelled',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * How long a delivery is tried (from its event, or from a replay), and how long an endpoint may
 * fail every delivery before it is disabled: three days, the time a mail system keeps a message.
 */
export const WEBHOOK_RETRY_WINDOW_MS = 3 * 86_400_000;

/** The remote server's reply an event reports (the SMTP reply of an attempt, a DSN's diagnostic). */
export interface WebhookReply {
  code: number | null;
  enhanced: string | null;
  text: string;
  remoteHost?: string | null;
}

/** An event as a part of Rookery emits it. */
export interface WebhookEvent {
  type: WebhookEventType;
  /** The tenant the mail was sent for; null: none. Endpoints of that tenant (or of none) receive it. */
  tenant: string | null;
  /** The queue id it is about; its tags and metadata are copied into the event when the message is still stored. */
  messageId: string | null;
  recipient: string | null;
  /** When it happened. */
  at: number;
  egressIp: string | null;
  reply?: WebhookReply | null;
  /** Further fields of the event, JSON (at most MAX_WEBHOOK_DATA_BYTES as JSON). */
  data?: Record<string, unknown> | null;
}

/** An event as stored in the outbox: what it was given, and what the store added. */
export interface StoredWebhookEvent {
  type: WebhookEventType;
  tenant: string | null;
  messageId: string | null;
  recipient: string | null;
  at: number;
  egressIp: string | null;
  reply: WebhookReply | null;
  /** The attempt counter of the recipient after the attempt reported (recipient.* events of deliveries). */
  attempt: number | null;
  bounceClass: string | null;
  /** Given at submission (POST /v1/messages `tags`, `metadata`). */
  tags: string[];
  metadata: Record<string, string>;
  data: Record<string, unknown> | null;
}

/** A registered endpoint. */
export interface WebhookEndpoint {
  /** `wh_...` */
  id: string;
  /** Its tenant; null: mail of no tenant (only a token of no tenant manages it). */
  tenant: string | null;
  url: string;
  eventTypes: WebhookEventType[];
  description: string | null;
  /**
   * At most this many events in one POST (1 to MAX_EVENTS_PER_REQUEST): 1 posts each event alone,
   * as the Standard Webhooks specification shows; more posts a JSON array of events, each with
   * its delivery id, whenever several are waiting (webhooks/payload.ts).
   */
  maxEventsPerRequest: number;
  /** `whsec_...`: the signing key. Never shown after it is made, never logged. */
  secret: string;
  enabled: boolean;
  /** Why it is disabled (after failing for the retry window, or by an operator); null while enabled. */
  disabledReason: string | null;
  disabledAt: number | null;
  /** When its current run of failed deliveries began; null after a success. */
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
}

/** A new endpoint; without maxEventsPerRequest it takes one event per POST. */
export type NewWebhookEndpoint = Pick<WebhookEndpoint, 'id' | 'tenant' | 'url' | 'eventTypes' | 'description' | 'secret' | 'createdAt'> & { maxEventsPerRequest?: number };

/** The most events an endpoint may take in one request (the dispatcher also keeps a request within 256 KiB). */
export const MAX_EVENTS_PER_REQUEST = 100;

/** What PATCH (and a secret rotation) changes; absent fields stay. */
export interface WebhookChange {
  url?: string;
  eventTypes?: WebhookEventType[];
  description?: string | null;
  maxEventsPerRequest?: number;
  /** False disables (its pending deliveries are held); true enables (held deliveries are due now). */
  enabled?: boolean;
  /** Why, with enabled: false. */
  disabledReason?: string;
  secret?: string;
}

/**
 * pending: waiting for its due time; delivering: claimed; delivered; failed: given up after the
 * retry window; held: its endpoint is disabled (due again when it is enabled).
 */
export type WebhookDeliveryState = 'pending' | 'delivering' | 'delivered' | 'failed' | 'held';
export const WEBHOOK_DELIVERY_STATES: readonly WebhookDeliveryState[] = ['pending', 'delivering', 'delivered', 'failed', 'held'];

/** One event for one endpoint. Its id (`msg_...`) is the webhook-id header, the same on every attempt. */
export interface WebhookDelivery {
  id: string;
  webhookId: string;
  event: StoredWebhookEvent;
  state: WebhookDeliveryState;
  attempts: number;
  /** When it is (or was last) due. */
  nextAttemptAt: number;
  /** It is retried until then. */
  retryUntil: number;
  lastAttemptAt: number | null;
  /** The HTTP status of the last attempt; null when none came (refused, timed out, unreachable). */
  lastStatus: number | null;
  lastError: string | null;
  /** When it was delivered, or given up. */
  finishedAt: number | null;
  createdAt: number;
}

export type WebhookLeaseToken = string & { readonly __brand: 'WebhookLeaseToken' };

export interface WebhookLease {
  id: string;
  token: WebhookLeaseToken;
}

/** A claimed delivery with what its POST needs. */
export interface ClaimedWebhookDelivery extends WebhookLease {
  webhookId: string;
  url: string;
  secret: string;
  /** The endpoint's, as claimed. */
  maxEventsPerRequest: number;
  event: StoredWebhookEvent;
  /** Attempts before this one. */
  attempts: number;
  retryUntil: number;
  /** When it was due as claimed: given back without a result, it is due then again. */
  dueAt: number;
}

export interface WebhookClaimOptions {
  now: number;
  limit: number;
  /** At most this many rows of one endpoint per claim, so one endpoint's backlog cannot fill it. */
  perWebhook: number;
  /** Endpoints to leave out (this node already holds as many of theirs as it sends at once). */
  skip: readonly string[];
  owner: string;
  leaseMs: number;
}

/** The result of one POST, applied while the row still carries the claim's token. */
export interface WebhookAttemptResult extends WebhookLease {
  webhookId: string;
  /** A 2xx answer. */
  ok: boolean;
  status: number | null;
  error: string | null;
  at: number;
  /** When to try again after a failure; null: give up (failed). Ignored when ok. */
  nextAttemptAt: number | null;
}

/** An endpoint a result disabled: every delivery had failed for `disableAfterMs`. */
export interface DisabledWebhook {
  id: string;
  tenant: string | null;
  url: string;
  failingSince: number;
}

/** Filters of listWebhookDeliveries; newest first (createdAt, then id, descending). */
export interface WebhookDeliveryQuery {
  state: WebhookDeliveryState | null;
  after: { createdAt: number; id: string } | null;
  limit: number;
}

/** A range of an endpoint's deliveries to send again (POST /v1/webhooks/{id}/replay). */
export interface WebhookReplayRange {
  /** Created at or after. */
  since: number;
  /** Created before; null: up to now. */
  until: number | null;
  state: WebhookDeliveryState | null;
}

export interface WebhookOutboxStats {
  /** Deliveries waiting (due or not) for enabled endpoints. */
  pending: number;
  /** Deliveries held for disabled endpoints. */
  held: number;
  disabledEndpoints: number;
}

export interface WebhookOutbox {
  /** Stores an enabled endpoint and its subscriptions. */
  createWebhook(endpoint: NewWebhookEndpoint): Promise<void>;
  getWebhook(id: string): Promise<WebhookEndpoint | null>;
  /** Endpoints by id, after the id `after`; of one tenant (null: those of no tenant) or, with undefined, of all. */
  listWebhooks(tenant: string | null | undefined, after: string | null, limit: number): Promise<WebhookEndpoint[]>;
  /**
   * Applies `change` at `now` and answers the endpoint as it is then (null for an unknown id). A
   * new URL, event list or enabled state rebuilds its subscriptions in the same transaction;
   * disabling holds its pending deliveries, enabling makes its held ones due at `now`.
   */
  updateWebhook(id: string, change: WebhookChange, now: number): Promise<WebhookEndpoint | null>;
  /** Deletes the endpoint with its subscriptions and deliveries; false for an unknown id. */
  deleteWebhook(id: string): Promise<boolean>;

  /** Fans standalone events out to their subscribers (one transaction; nothing without subscribers). */
  recordWebhookEvents(events: WebhookEvent[]): Promise<void>;

  /**
   * Claims due deliveries (pending at or before now, or delivering with an expired lease) of
   * endpoints not in `skip`, oldest due first, at most `perWebhook` per endpoint, under a new
   * token; several nodes never claim the same row at once.
   */
  claimWebhookDeliveries(options: WebhookClaimOptions): Promise<ClaimedWebhookDelivery[]>;
  /** Extends leases still held under their tokens; returns the ids that no longer carry theirs. */
  renewWebhookLeases(leases: WebhookLease[], lockedUntil: number): Promise<string[]>;
  /**
   * Applies results under their tokens (stale ones are ignored) and keeps each endpoint's run of
   * failures: a success ends it; an endpoint failing for `disableAfterMs` is disabled (its
   * subscriptions go, its pending deliveries are held). Returns the ids recorded and the
   * endpoints disabled, in one transaction.
   */
  recordWebhookAttempts(results: WebhookAttemptResult[], disableAfterMs: number): Promise<{ recorded: string[]; disabled: DisabledWebhook[] }>;
  /** Gives claimed rows back, due when they were claimed (held when their endpoint is disabled now). */
  releaseWebhookDeliveries(leases: WebhookLease[]): Promise<void>;
  /** Gives back every row `owner` holds (a start after a crash); returns how many. */
  releaseAllWebhookDeliveries(owner: string): Promise<number>;

  /** An endpoint's deliveries, newest first. */
  listWebhookDeliveries(webhookId: string, query: WebhookDeliveryQuery): Promise<WebhookDelivery[]>;
  /**
   * Makes one delivery due at `now` again, retried for the window from then (held when its
   * endpoint is disabled); a delivery in flight is left as it is. Null for an unknown id.
   */
  replayWebhookDelivery(webhookId: string, deliveryId: string, now: number): Promise<WebhookDelivery | null>;
  /** The same for up to `limit` deliveries of a range (none in flight); returns how many. */
  replayWebhookDeliveries(webhookId: string, range: WebhookReplayRange, now: number, limit: number): Promise<number>;
  /** Deletes delivered and failed deliveries finished before `before`, in chunks; returns how many. */
  purgeWebhookDeliveries(before: number): Promise<number>;
  webhookOutboxStats(): Promise<WebhookOutboxStats>;
}
