import type { ClaimedRecipient, ClaimOptions } from './store.ts';

/*
 * The operator's hold on the queue (POST /v1/queue/pause, /resume, /retry, /bounce and DELETE
 * /v1/messages/{id}): pauses kept in the store, so every node sharing it sees them and they
 * survive a restart, and bulk moves of queued rows. Part of every Store.
 */

/**
 * What a pause, a retry or a bounce applies to: the recipients of one destination domain, the
 * messages of one egress pool or of one tenant, or one egress IP.
 */
export type QueueScope =
  /** Recipients of this domain (lower case, as stored). */
  | { readonly kind: 'domain'; readonly domain: string }
  /** Messages of this egress pool. */
  | { readonly kind: 'pool'; readonly pool: string }
  /** Messages sent for this tenant (messages.tenant); mail of no tenant is never in one. */
  | { readonly kind: 'tenant'; readonly tenant: string }
  /**
   * An egress IP (canonical spelling): paused, it is out of selection for every destination; for
   * a retry or a bounce, the queued recipients whose last attempt went out from it.
   */
  | { readonly kind: 'egress-ip'; readonly ip: string };

export type QueueScopeKind = QueueScope['kind'];
export const QUEUE_SCOPE_KINDS: readonly QueueScopeKind[] = ['domain', 'pool', 'tenant', 'egress-ip'];

/** The queued rows a bulk move or a cancellation acts on: a scope, or the recipients of one message. */
export type QueueSelection = QueueScope | { readonly kind: 'message'; readonly messageId: string };

/** An operator's pause of a scope: its mail stays queued and is not attempted until it ends. */
export interface QueuePause {
  scope: QueueScope;
  reason: string;
  /** The API token's name. */
  by: string;
  createdAt: number;
  /** When it ends on its own; null: when resumed. */
  until: number | null;
}

/**
 * The paused scopes a claim leaves alone (ClaimOptions.paused): their due rows stay queued. Egress
 * IP pauses are not here: they act on the choice of an IP, not on the claim.
 */
export interface PausedScopes {
  domains: readonly string[];
  pools: readonly string[];
  tenants: readonly string[];
}

/** A cancellation's claim of queued rows (claimQueued): the claim's options, and the range of recipient ids it reads. */
export interface QueuedClaimOptions extends Omit<ClaimOptions, 'paused'> {
  /**
   * Only rows of a higher recipient id (default 0): each chunk of a cancellation goes on after
   * the last row of the one before, so the whole cancellation reads each row once.
   */
  after?: number;
  /**
   * Only rows up to this recipient id (default: no bound): a cancellation acts on the rows there
   * were when it began (lastRecipientId), never on mail made meanwhile, its own DSNs first.
   */
  through?: number;
}

/** What one chunk of a release of parked mail did (QueueControl.releaseParked). */
export interface ParkedRelease {
  /** Rows given their own due time back. */
  released: number;
  /** The last recipient id read, where the next chunk goes on; null once every parked row was read. */
  next: number | null;
  /**
   * Rows it would have released but another statement held locked (a retry or a cancellation on
   * another node, on a shared queue): they are still parked, so the release is owed again.
   */
  skipped: number;
}

/** Whether a pause in `paused` holds a queued recipient of `domain` whose message has `pool` and `tenant`. */
export function pausedFor(paused: PausedScopes, recipient: { domain: string; pool: string; tenant: string | null }): boolean {
  const { domain, pool, tenant } = recipient;
  return paused.domains.includes(domain) || paused.pools.includes(pool) || (tenant !== null && paused.tenants.includes(tenant));
}

export const NOTHING_PAUSED: PausedScopes = Object.freeze({ domains: [], pools: [], tenants: [] });

/** Whether a claim has anything to leave alone (else the plain claim runs). */
export function anyPaused(paused: PausedScopes | undefined): paused is PausedScopes {
  return paused !== undefined && (paused.domains.length > 0 || paused.pools.length > 0 || paused.tenants.length > 0);
}

export interface QueueControl {
  /**
   * Creates the pause of its scope, or replaces the one in force (one per scope); returns the one
   * it replaced, if any was in force at `now`.
   */
  setPause(pause: QueuePause, now: number): Promise<QueuePause | null>;

  /** Ends the pause of `scope`; returns it when one was in force at `now` (else null: nothing to end). */
  deletePause(scope: QueueScope, now: number): Promise<QueuePause | null>;

  /** The pauses in force at `now` (not ended), oldest first. */
  listPauses(now: number): Promise<QueuePause[]>;

  /** Deletes pauses that ended at or before `now`; returns how many. */
  purgeEndedPauses(now: number): Promise<number>;

  /**
   * Makes up to `limit` queued recipients of `selection` that are due after `now` due at `now`,
   * in one transaction, without counting an attempt or writing an event. A first attempt scheduled
   * for later (sendAt, no result recorded yet) is never made due before its send time: it is left
   * alone, or, moved past it by a hold, due at it again. Returns how many moved;
   * fewer than `limit` when none is left (a moved row is not picked again), so a caller repeats
   * it for a large backlog, letting other writes go in between. Rows in delivery are left alone.
   */
  retryQueued(selection: QueueSelection, now: number, limit: number): Promise<number>;

  /**
   * Claims up to `options.limit` queued recipients of `selection`, due or not, in the id range of
   * `options`, as claimDue does: delivering for `owner` under one new lease token, so their
   * results (a cancellation, with its DSN as a follow-up) are recorded by recordAttempts. Rows in
   * delivery are left to finish, but one whose lease ran out is claimed too: its node died, and
   * a pause of its scope keeps every delivery claim from taking it. Pauses do not apply. Lowest
   * recipient id first; on a shared store, rows another claim holds locked at that moment are
   * passed over (a later claim from the start finds them).
   */
  claimQueued(selection: QueueSelection, options: QueuedClaimOptions): Promise<ClaimedRecipient[]>;

  /**
   * Parks up to `limit` queued recipients of `scope` (a domain, a pool or a tenant, not an egress
   * IP) due before `before`, in one transaction, while the pause of that scope is in force at
   * `now`: each keeps its own due time aside and leaves the due order, so no claim, next due
   * time, retry or hold reads it, until releaseParked gives its time back. It stays queued (counts,
   * the queue-age gauge, cancellations and GET of its message are as before). Rows in delivery are
   * left alone. Returns how many; fewer than `limit` when none is left (a parked row is not picked
   * again). A retry (retryQueued) of a parked row moves its own due time, and it stays parked.
   */
  parkPaused(scope: QueueScope, before: number, now: number, limit: number): Promise<number>;

  /**
   * Gives up to `limit` parked recipients with an id above `after`, lowest first, that no pause
   * in force at `now` holds (of their domain, pool or tenant) their own due time back: never
   * earlier than the send time of a first attempt scheduled for later. Others stay parked. On
   * SQLite a call reads `limit` parked rows at most (one transaction on the daemon's thread), so
   * it may release fewer with more to come. `next` is where the following call goes on (its
   * `after`), null once every parked row after `after` was read. On a shared store, rows another
   * statement holds locked are passed over.
   */
  releaseParked(now: number, limit: number, after?: number): Promise<ParkedRelease>;

  /** The highest recipient id there is (0: none): every recipient made later has a higher one. */
  lastRecipientId(): Promise<number>;

  /** How many recipients of `selection` are in delivery now (claimed, their lease running or not). */
  countDelivering(selection: QueueSelection): Promise<number>;
}
