import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { BlocklistStates } from './blocklist-states.ts';
import type { PausedScopes, QueueControl } from './queue-control.ts';
import type { FeedbackEvents } from './feedback-events.ts';
import type { Suppressions } from './suppressions.ts';
import type { WebhookOutbox } from './webhook-outbox.ts';
import type { PersonalData } from './personal-data.ts';
import type { TlsReportStore } from './tls-reports.ts';
import type { QueueAgeReads } from './queue-age.ts';

/**
 * The durable queue. Every backend (SQLite, PostgreSQL) satisfies the same contract test suite
 * (tests/integration/store-contract.ts). All times are milliseconds since the epoch.
 */

export type RecipientState = 'queued' | 'delivering' | 'delivered' | 'bounced';
export const RECIPIENT_STATES: readonly RecipientState[] = ['queued', 'delivering', 'delivered', 'bounced'];

/**
 * The store refused the data of a write itself (a check of its input, a value the database cannot
 * hold, a constraint): the same call can never succeed, however often it is repeated.
 */
export class DataRefusedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DataRefusedError';
  }
}

/** A message handed to the queue: stored once, with one delivery row per recipient. */
export interface NewMessage {
  /** Queue id, unique; chosen by the caller (see newQueueId). */
  id: string;
  /** Envelope sender; '' is the null reverse-path (DSNs). */
  sender: string;
  recipients: string[];
  /** The Message-ID header value, for reconciliation and logs. */
  messageIdHeader: string | null;
  /** The whole message in wire form (CRLF line endings, dot-unstuffed). */
  body: Buffer;
  /** Submitting user, null for trusted-network or internal (DSN) mail. */
  submitter: string | null;
  /** The tenant it was sent for; absent or null for none (a DSN belongs to its original's). */
  tenant?: string | null;
  /** How the message came in. */
  source: 'smtp' | 'http' | 'dsn';
  /** The egress pool it sends from (chosen at acceptance). */
  pool: string;
  clientAddress: string | null;
  createdAt: number;
  /**
   * When the first attempt is due; normally createdAt. A later time is a scheduled send: it is
   * stored as the message's sendAt, and delivery.maxAge counts from it.
   */
  dueAt: number;
  /** Labels the client gave (the HTTP API's `tags`), for finding the message again; none when absent. */
  tags?: readonly string[];
  /** The client's own key-value data about the message (the HTTP API's `metadata`); none when absent. */
  metadata?: Readonly<Record<string, string>> | null;
  /**
   * Recipients (as given in `recipients`, each once) found on the suppression list at acceptance
   * under the drop action: stored bounced with their outcome and an event (attempt 0) in the same
   * transaction, so they are final at once, never attempted, and get no DSN.
   */
  suppressed?: ReadonlyArray<{ recipient: string; outcome: DeliveryOutcome }>;
}

/**
 * Identifies one claim of a recipient row. A row carries the token of its latest claim; results
 * and releases apply only while the row still carries theirs, so an attempt whose claim was
 * taken over (its lease ran out) can never overwrite what the newer claim does.
 */
export type LeaseToken = string & { readonly __brand: 'LeaseToken' };

/** A row held under one claim. */
export interface Lease {
  recipientId: number;
  token: LeaseToken;
}

/** A recipient row claimed for delivery, with the envelope data the engine needs. */
export interface ClaimedRecipient extends Lease {
  recipientId: number;
  messageId: string;
  sender: string;
  recipient: string;
  /** Lower-cased domain of the recipient. */
  domain: string;
  /** Attempts made before this one. */
  attempts: number;
  /** The egress IP of the previous attempt, if any (a retry prefers it). */
  lastEgressIp: string | null;
  /**
   * When the message was accepted, or its scheduled time (sendAt) when that is later: the
   * message's time in the queue, against delivery.maxAge and in the delivery latency, counts
   * from it.
   */
  messageCreatedAt: number;
  /** When the row was due as it was claimed: given back without a result, it is due then again. */
  dueAt: number;
  messageIdHeader: string | null;
  size: number;
}

export interface StoredMessage {
  id: string;
  sender: string;
  messageIdHeader: string | null;
  body: Buffer;
  submitter: string | null;
  source: NewMessage['source'];
  createdAt: number;
  pool: string;
  /** The tenant it was sent for; null for none. */
  tenant: string | null;
}

export interface RecipientRow {
  recipientId: number;
  messageId: string;
  recipient: string;
  domain: string;
  state: RecipientState;
  attempts: number;
  nextAttemptAt: number | null;
  lastOutcome: DeliveryOutcome | null;
  updatedAt: number;
}

export interface AttemptEvent {
  recipientId: number;
  messageId: string;
  /** The recipient's attempt counter after this result (unchanged when it did not count). */
  attempt: number;
  at: number;
  outcome: DeliveryOutcome;
}

/** The result of one attempt, applied to the row it claimed (while it still carries the claim's token) with an event row. */
export interface AttemptResult extends Lease {
  outcome: DeliveryOutcome;
  /** 'queued' with nextAttemptAt to retry, or a final state. */
  newState: 'queued' | 'delivered' | 'bounced';
  /** Required when newState is 'queued'. */
  nextAttemptAt?: number;
  /**
   * False for a wait that is not a real attempt (throttled, shutting down): the attempt counter
   * stays as it is. An event row is written either way.
   */
  countsAsAttempt: boolean;
}

/** A message stored together with attempt results (a DSN), tied to the results it reports. */
export interface FollowUp {
  message: NewMessage;
  /** Recipient ids of the results it reports: it and they are applied together, or none of them. */
  reports: number[];
}

export interface ClaimOptions {
  now: number;
  limit: number;
  /** Identifies this daemon (releaseAll at its next start). */
  owner: string;
  /** The lease: the claim expires after this long unless renewed (renewLeases). */
  leaseMs: number;
  /** Scopes an operator paused: their rows are left where they are, due or not. */
  paused?: PausedScopes;
}

/**
 * A change to one usage counter of the egress IP pool (src/ippool/backend): the counter of `key`
 * for the window starting at `windowStart`. A counter whose `expiresAt` is at or before `now`
 * counts as 0 (it is reset by the change, never added to).
 */
export interface UsageChange {
  key: string;
  windowStart: number;
  /** Non-negative integer. */
  amount: number;
  /** When the counter may be forgotten; a later expiry already stored is kept. */
  expiresAt: number;
  now: number;
}

/** One counter window to read. */
export interface UsageWindow {
  key: string;
  windowStart: number;
}

/** A pool state entry (suspensions, plan restarts); `expiresAt` null never expires. */
export interface PoolStateEntry {
  key: string;
  value: string;
  expiresAt: number | null;
}

export interface Store extends MessageReads, AuditLog, QueueControl, IdempotencyKeys, FeedbackEvents, Suppressions, WebhookOutbox, PersonalData, TlsReportStore, BlocklistStates, QueueAgeReads {
  readonly driver: 'sqlite' | 'postgres';

  /** Applies pending migrations. Safe to call on every start. */
  migrate(): Promise<void>;

  /**
   * Stores messages and their recipient rows atomically and durably: when the promise resolves
   * the data survives a crash (kill -9, power loss with honest disks). The message.accepted
   * webhook events of the messages (none for DSNs) are written in the same transaction.
   */
  enqueue(messages: NewMessage[]): Promise<void>;

  /**
   * Claims up to `limit` recipients that are due (queued with nextAttemptAt <= now, or
   * delivering with an expired lease), oldest due first, and marks them delivering for `owner`
   * until now + leaseMs, under a new lease token (one per call). Several daemons may claim
   * concurrently without claiming the same row. Order: nextAttemptAt, then recipient id; a row
   * taken over from an expired lease keeps the nextAttemptAt it had when first claimed. A lease is
   * expired when locked_until < now. Rows of `paused` scopes are not claimed (queued or with an
   * expired lease).
   */
  claimDue(options: ClaimOptions): Promise<ClaimedRecipient[]>;

  /**
   * Extends to `lockedUntil` the leases of rows still delivering under their token (also one that
   * ran out, while no other claim took the row). Returns the recipient ids no longer carrying
   * their token (taken over by another claim, or released): their attempts' results will not
   * apply. A row whose result was recorded under its token is neither extended nor lost. A take-
   * over racing with the call may only be reported by the next one.
   */
  renewLeases(leases: Lease[], lockedUntil: number): Promise<number[]>;

  /**
   * Earliest time a row becomes claimable: a queued row's nextAttemptAt, or just after a lease
   * runs out (its holder may have died); null when no row is queued or delivering. Rows of
   * `paused` scopes do not count (claimDue would leave them).
   */
  nextDueAt(paused?: PausedScopes): Promise<number | null>;

  loadMessage(messageId: string): Promise<StoredMessage | null>;

  /**
   * Applies attempt results to rows still delivering under the result's token, writing one event
   * row each, and stores `followUps` (DSNs) in the same transaction, so a bounce never loses its
   * DSN: a follow-up and the results it reports are applied together or not at all. When one of
   * them cannot apply (stale), neither the follow-up nor any result it reports is (the caller may
   * record those again with a follow-up that leaves the stale one out); other results apply.
   * Results whose token the row no longer carries are ignored (no update, no event); a result
   * arriving after the lease ran out still applies while no other claim took the row. Returns the recipient ids whose results are recorded, counting those an earlier call with
   * the same token recorded (a call repeated after an uncertain commit applies nothing twice and
   * stores no follow-up twice). A repeated recipient id in one call counts once (the first).
   * Rejects, with nothing applied, when a 'queued' result lacks nextAttemptAt or a follow-up
   * cannot be stored; with DataRefusedError when the data itself is refused (the check above, a
   * value the database cannot hold such as a NUL in PostgreSQL text, a constraint). Each result
   * applied writes its webhook event in the same transaction (webhookEventOfResult).
   */
  recordAttempts(results: AttemptResult[], followUps?: FollowUp[]): Promise<number[]>;

  /** Returns claimed rows to the queue unchanged, due at `dueAt`; rows no longer carrying their token are left alone. */
  release(leases: Lease[], dueAt: number): Promise<void>;

  /**
   * Defers up to `limit` queued recipients of `domains` (their destination site cannot be reached)
   * in one transaction: each one due before `until` becomes due at `until`, or at its deadline
   * (createdAt + maxAgeMs) when that comes first, without counting an attempt or writing an event;
   * rows in delivery are left alone. Returns how many moved; fewer than `limit` when none is left,
   * so a caller repeats it for a large backlog, letting other writes go in between.
   */
  holdDomains(domains: string[], until: number, maxAgeMs: number, limit: number): Promise<number>;

  /**
   * Makes up to `limit` queued recipients of `domains` due after `now` and at or before `until` due
   * at `now` (their site is back); a first attempt scheduled after `now` (sendAt) is due at its send
   * time instead, never earlier. Returns how many, as holdDomains.
   */
  resumeDomains(domains: string[], until: number, now: number, limit: number): Promise<number>;

  /** Returns every row leased by `owner` to the queue (start-up after a crash of this node). */
  releaseAll(owner: string, dueAt: number): Promise<number>;

  /** Recipient counts by state; every state is present, 0 when it has no rows. */
  countByState(): Promise<Record<RecipientState, number>>;

  /** The message's recipient rows in the order they were given ([] for an unknown message). */
  listRecipients(messageId: string): Promise<RecipientRow[]>;
  /** The message's attempt events, oldest first. */
  listEvents(messageId: string): Promise<AttemptEvent[]>;

  /**
   * Deletes messages whose recipients are all final (delivered / bounced) and whose last
   * recipient change is older than `before`: the body, recipient rows and events go together.
   * Returns the number of messages deleted.
   */
  purgeFinished(before: number): Promise<number>;

  /**
   * Empties the body of messages finished before `before` (as purgeFinished decides it), keeping
   * the message, its recipients and events until purgeFinished takes them (storage.bodyRetention:
   * keep as little as needed). A finished message is never sent again, so nothing reads the body
   * after this. Returns the number of bodies emptied.
   */
  dropFinishedBodies(before: number): Promise<number>;

  /*
   * Egress IP pool data (src/ippool/backend uses these when no Redis is configured): usage
   * counters per (key, window) and small state entries, both with an expiry. An entry whose
   * expiry is at or before `now` is invisible at once and deleted by purgeExpiredPoolData. On
   * PostgreSQL every daemon sharing the database shares them.
   */

  /**
   * Adds `change.amount` to the counter only when the total stays within `limit`, atomically
   * (one statement), so concurrent callers on any node never exceed it together. Returns
   * whether it was added and the total after the call (the current total when refused).
   */
  reserveUsage(change: UsageChange, limit: number): Promise<{ ok: boolean; total: number }>;

  /** Adds `change.amount` unconditionally; returns the new total. */
  addUsage(change: UsageChange): Promise<number>;

  /** The totals of `windows`, in order; 0 for a counter never written or expired at `now`. */
  getUsage(windows: UsageWindow[], now: number): Promise<number[]>;

  /** Creates or replaces an entry. */
  setPoolState(entry: PoolStateEntry): Promise<void>;

  /** The entry's value, or null when it is missing or expired at `now`. */
  getPoolState(key: string, now: number): Promise<string | null>;

  deletePoolState(key: string): Promise<void>;

  /** Entries whose key starts with `prefix` and that have not expired at `now`, by key. */
  listPoolState(prefix: string, now: number): Promise<PoolStateEntry[]>;

  /** Deletes counters and state entries expired at `now`; returns how many rows went. */
  purgeExpiredPoolData(now: number): Promise<number>;

  /**
   * Calls `listener` when another process enqueued work (PostgreSQL LISTEN/NOTIFY); only a
   * wake-up hint, never a source of truth. Returns an unsubscribe function. The SQLite
   * backend (one process) never calls it.
   */
  onWork(listener: () => void): () => void;

  /** Throws when the backend is unreachable. */
  ping(): Promise<void>;

  /**
   * Commits a tiny write and throws when it cannot (unreachable, disk full, database read-only or
   * locked), or when less than `minFreeBytes` are free where the store keeps its files (SQLite; a
   * PostgreSQL server's disk is its own): whether this node can accept mail now.
   */
  checkWritable(minFreeBytes: number): Promise<void>;

  /** Bytes free to this process where the store keeps its files (SQLite); null when the store is a server's (PostgreSQL). */
  freeBytes(): Promise<number | null>;

  /** Waits for pending writes, then closes. Safe to call twice. */
  close(): Promise<void>;
}

/*
 * Reads for the control API (GET /v1/messages, /v1/queue): what an operator sees of a message
 * and of the backlog. They never return a message body.
 */

/** A stored message without its body. */
export interface MessageInfo {
  id: string;
  sender: string;
  messageIdHeader: string | null;
  /** Bytes of the message as stored. */
  size: number;
  submitter: string | null;
  source: NewMessage['source'];
  clientAddress: string | null;
  createdAt: number;
  pool: string;
  /** The tenant it was sent for; null for none. */
  tenant: string | null;
  /** The scheduled time of a message sent later (NewMessage.dueAt after createdAt); null otherwise. */
  sendAt: number | null;
  tags: string[];
  metadata: Record<string, string>;
}

/** A message of a listing, with how many of its recipients are in each state. */
export interface MessageSummary extends MessageInfo {
  states: Record<RecipientState, number>;
}

/** Filters of listMessages; null matches anything. Newest first: createdAt, then id, descending. */
export interface MessageQuery {
  /** Messages with a recipient in this state (with `recipient` and `domain`: the same recipient). */
  state: RecipientState | null;
  /** The envelope sender, compared without regard to ASCII case. */
  sender: string | null;
  /** A recipient address, compared without regard to ASCII case. */
  recipient: string | null;
  /** A recipient domain, either form of an IDN (stored as domainOf gives it: lower case, A-labels). */
  domain: string | null;
  pool: string | null;
  /** Messages carrying this tag (exactly, case included). */
  tag: string | null;
  /** Created at or after. */
  since: number | null;
  /** Created before. */
  until: number | null;
  /** Messages sent for this tenant: a tenant's token is confined to it, an admin may filter by it. */
  tenant: string | null;
  /** Continue after this message of the previous page (its sort key). */
  after: { createdAt: number; id: string } | null;
  limit: number;
}

/** A DSN stored for a message: its queue id, when it was made, and the recipients it reports. */
export interface DsnRecord {
  id: string;
  createdAt: number;
  /** The Final-Recipient addresses of its delivery-status part. */
  recipients: string[];
}

/** One group of the deferred backlog: its key (null: none, e.g. no egress IP yet), size and oldest message. */
export interface BacklogGroup {
  key: string | null;
  count: number;
  oldestCreatedAt: number;
}

/** The largest groups of one grouping, and how many groups there are in all. */
export interface BacklogGrouping {
  top: BacklogGroup[];
  groups: number;
}

/**
 * Queued recipients waiting for a retry: queued with at least one recorded result (deferred or
 * throttled), as opposed to new mail not tried yet.
 */
export interface DeferredBacklog {
  count: number;
  oldestCreatedAt: number | null;
  byDomain: BacklogGrouping;
  byPool: BacklogGrouping;
  /** By the egress IP of the last attempt. */
  byEgressIp: BacklogGrouping;
}

/** The control API's reads; part of every Store. */
export interface MessageReads {
  /** The message without its body, or null for an unknown id. */
  getMessageInfo(messageId: string): Promise<MessageInfo | null>;
  listMessages(query: MessageQuery): Promise<MessageSummary[]>;
  /**
   * The DSNs reporting on `messageId` made between `from` and `to` (createdAt, inclusive): DSNs
   * carry the original's queue id (X-Rookery-Queue-ID), and no column links them, so the window
   * keeps the search to the DSNs of that time.
   */
  findDsns(messageId: string, from: number, to: number): Promise<DsnRecord[]>;
  /** The deferred backlog, each grouping cut to its `top` largest groups. */
  deferredBacklog(top: number): Promise<DeferredBacklog>;
}

/*
 * The audit log of the control API (GET /v1/audit): every mutating request and every failed
 * authentication, kept for audit.retention. Written through each backend's write path.
 */

/** What a request changed, where a route says so: the state before and after. */
export interface AuditChange {
  before?: unknown;
  after?: unknown;
}

/** One audited request. Never holds a token. */
export interface AuditEntry {
  at: number;
  /** The token's name; null when no valid token was given. */
  actor: string | null;
  /** The token's tenant, if any. */
  tenant: string | null;
  clientAddress: string;
  method: string;
  /** The route pattern (/v1/domains/:domain/check), not the path. */
  route: string;
  /** What the request acted on (set by the route), else the request path. */
  target: string | null;
  change: AuditChange | null;
  /** The HTTP status answered. */
  status: number;
  /** The problem code answered (AUTH_FAILED, FORBIDDEN, ...), or OK for a success. */
  outcome: string;
}

/** A stored audit entry; ids grow with each entry. */
export interface AuditRecord extends AuditEntry {
  id: number;
}

/** Filters of listAudit; null matches anything. */
export interface AuditFilters {
  actor: string | null;
  route: string | null;
  status: number | null;
  outcome: string | null;
  /** At or after. */
  since: number | null;
  /** Before. */
  until: number | null;
  /** Entries of requests made with a token of this tenant. */
  tenant: string | null;
}

/** An audit page's sort key: time, then id (both descending). */
export interface AuditCursor {
  at: number;
  id: number;
}

export interface AuditLog {
  /** Stores one entry durably. */
  recordAudit(entry: AuditEntry): Promise<void>;
  /** Entries newest first (at, then id, descending), after `after` when given, at most `limit`. */
  listAudit(filters: AuditFilters, after: AuditCursor | null, limit: number): Promise<AuditRecord[]>;
  /** Deletes entries older than `before`, in chunks (other writes go in between); returns how many. */
  purgeAudit(before: number): Promise<number>;
}

/*
 * Idempotency keys of the HTTP API (Idempotency-Key on POST /v1/messages and /batch): the first
 * answer to a request, kept with the messages it stored, so a client that repeats the request
 * (after a timeout) gets that answer again instead of a second copy of its mail.
 */

/** A key and the first answer given under it. */
export interface IdempotencyRecord {
  /** Whose key it is (an API token's name): keys of different callers never meet. */
  scope: string;
  key: string;
  /** Hash of the canonical request that first used the key. */
  requestHash: string;
  /** The answer given to it: HTTP status and JSON body. */
  status: number;
  response: string;
  createdAt: number;
}

export type EnqueueOnceResult = { stored: true } | { stored: false; existing: IdempotencyRecord };

export interface IdempotencyKeys {
  /**
   * Stores `record` and `messages` in one transaction, durably, unless (scope, key) already holds
   * a record created at or after `notBefore`: then nothing is stored and that record returned.
   * An older record is replaced. The key is unique in the database, so of two calls with one key,
   * on one node or several sharing PostgreSQL, one stores and the other gets its record: on
   * PostgreSQL a call whose key another open transaction holds waits for that one's outcome.
   */
  enqueueOnce(messages: NewMessage[], record: IdempotencyRecord, notBefore: number): Promise<EnqueueOnceResult>;
  /**
   * The record of (scope, key) created at or after `notBefore`, or null. A record is returned
   * only once the commit that stored it is durable; a store that can no longer promise that
   * (a failed sync) rejects instead.
   */
  getIdempotencyRecord(scope: string, key: string, notBefore: number): Promise<IdempotencyRecord | null>;
  /** Deletes records created before `before`, in chunks (other writes go in between); returns how many. */
  purgeIdempotencyKeys(before: number): Promise<number>;
}
