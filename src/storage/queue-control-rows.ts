import { QUEUE_SCOPE_KINDS, type PausedScopes, type QueuedClaimOptions, type QueuePause, type QueueScope, type QueueScopeKind, type QueueSelection } from './queue-control.ts';
import { DataRefusedError } from './store.ts';

/*
 * Rows of queue pauses and the SQL of a queue selection, shared by the SQLite and PostgreSQL
 * backends (same column names, same predicates), so the two act on the same rows.
 */

export interface PauseDbRow {
  kind: string;
  value: string;
  reason: string;
  paused_by: string;
  created_at: number;
  ends_at: number | null;
}

/** The stored key of a scope: its kind and the one value that names it. */
export function scopeKey(scope: QueueScope): { kind: QueueScopeKind; value: string } {
  switch (scope.kind) {
    case 'domain':
      return { kind: 'domain', value: scope.domain };
    case 'pool':
      return { kind: 'pool', value: scope.pool };
    case 'tenant':
      return { kind: 'tenant', value: scope.tenant };
    case 'egress-ip':
      return { kind: 'egress-ip', value: scope.ip };
  }
}

/** A stored pause; null for a kind this version does not know (written by a newer one), which it leaves alone. */
export function toQueuePause(row: PauseDbRow): QueuePause | null {
  const kind = row.kind as QueueScopeKind;
  if (!QUEUE_SCOPE_KINDS.includes(kind)) return null;
  return { scope: scopeOf(kind, row.value), reason: row.reason, by: row.paused_by, createdAt: row.created_at, until: row.ends_at };
}

/** The scope a stored key names (scopeKey's inverse). */
function scopeOf(kind: QueueScopeKind, value: string): QueueScope {
  switch (kind) {
    case 'domain':
      return { kind, domain: value };
    case 'pool':
      return { kind, pool: value };
    case 'tenant':
      return { kind, tenant: value };
    case 'egress-ip':
      return { kind, ip: value };
  }
}

/** The values of one pause row, in the column order of the INSERT statements; throws for a pause no backend could store. */
export function pauseInsertValues(p: QueuePause): [string, string, string, string, number, number | null] {
  const { kind, value } = scopeKey(p.scope);
  if (value === '') throw new DataRefusedError(`setPause: the ${kind} of a pause must not be empty`);
  if (!Number.isSafeInteger(p.createdAt) || (p.until !== null && !Number.isSafeInteger(p.until))) {
    throw new DataRefusedError('setPause: createdAt and until must be integer milliseconds');
  }
  return [kind, value, p.reason, p.by, p.createdAt, p.until];
}

/**
 * The predicate that picks the recipient rows (alias `r`) of a selection, with its one value
 * bound at `param` (`?1`, `$1`). Each kind reads an index where one exists: recipients_domain,
 * recipients_message; a pool and a tenant are properties of the message, an egress IP of the
 * last attempt.
 */
export function selectionPredicate(kind: QueueSelection['kind'], param: string): string {
  switch (kind) {
    case 'domain':
      return `r.domain = ${param}`;
    case 'message':
      return `r.message_id = ${param}`;
    case 'egress-ip':
      return `r.last_egress_ip = ${param}`;
    case 'pool':
      return `EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id AND m.pool = ${param})`;
    case 'tenant':
      return `EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id AND m.tenant = ${param})`;
  }
}

/**
 * The rows of a selection a cancellation claims (claimQueued), with `now` bound at `param`: queued,
 * or in delivery under a lease that ran out (its node died). The state list keeps recipients_domain
 * on its second column; `state` is how the column is read (SQLite: see its claim).
 */
export function claimableQueued(param: string, state = 'r.state'): string {
  return `${state} IN ('queued', 'delivering') AND (${state} = 'queued' OR r.locked_until < ${param})`;
}

/** The value a selection's predicate is bound to. */
export function selectionValue(selection: QueueSelection): string {
  return selection.kind === 'message' ? selection.messageId : scopeKey(selection).value;
}

/** Bulk moves and cancellations act in chunks; a bad limit or time fails alone, before any write. */
export function checkBulk(operation: string, now: number, limit: number): void {
  if (!Number.isSafeInteger(now)) throw new DataRefusedError(`${operation}: now must be integer milliseconds`);
  if (!Number.isSafeInteger(limit) || limit < 0) throw new DataRefusedError(`${operation}: limit must be a non-negative integer`);
}

/** The id range of a cancellation's claim, its defaults filled in; throws for a bound that is not an integer. */
export function claimRange(options: QueuedClaimOptions): { after: number; through: number } {
  const { after = 0, through = Number.MAX_SAFE_INTEGER } = options;
  if (!Number.isSafeInteger(after) || !Number.isSafeInteger(through)) throw new DataRefusedError('claimQueued: after and through must be integer recipient ids');
  return { after, through };
}

/** The paused scopes without repeats, as the claims bind them. */
export function pausedLists(paused: PausedScopes): { domains: string[]; pools: string[]; tenants: string[] } {
  return { domains: [...new Set(paused.domains)], pools: [...new Set(paused.pools)], tenants: [...new Set(paused.tenants)] };
}

/*
 * A retry (retryQueued) and a dead site's resume (resumeDomains) make waiting rows due now, but
 * never a first attempt scheduled for later (sendAt): a row with no recorded result keeps its
 * message's send time, and one a hold moved past it goes back to it. Both read the row `r` and its
 * message `m`, with `now` bound at `param`.
 */

/**
 * The due time such a move gives a row: `now`, or the send time of a first attempt scheduled after
 * it. A release of parked rows gives `param` = their own due time, for the same floor.
 */
export function movedDueAt(param: string): string {
  return `CASE WHEN r.last_disposition IS NULL AND m.send_at > ${param} THEN m.send_at ELSE ${param} END`;
}

/**
 * The rows due after `now` that such a move changes (movedDueAt is earlier than their due time),
 * so a moved row is not picked again and repeating the move until it moves fewer ends. `due` is
 * the column read as the row's due time: next_attempt_at, or parked_due_at for parked rows.
 */
export function waitsPastItsTime(param: string, due = 'r.next_attempt_at'): string {
  return `${due} > ${param} AND (r.last_disposition IS NOT NULL OR m.send_at IS NULL OR m.send_at < ${due})`;
}

/*
 * Parked mail (QueueControl.parkPaused, releaseParked): the queued rows of a paused domain, pool
 * or tenant are moved out of the due order, as Postfix's hold queue takes mail out of the active
 * one: next_attempt_at is set to PARKED_DUE_AT and their own due time kept in parked_due_at. Every
 * due-order read (claims, nextDueAt, retries, dead-site holds) stops before PARKED_DUE_AT, so a
 * large paused backlog costs them nothing; the rows stay queued for every count and the queue-age
 * gauge. A release gives the rows no pause in force holds their own due time back.
 */

/**
 * The rows a retry moves, by the due time it moves: next_attempt_at of the rows in the due order
 * (parked rows are past that range), or parked_due_at of parked rows (they stay parked). Both
 * name next_attempt_at, so a scope's own index (recipients_domain, by domain, state and due time)
 * or the message's finds them: a retry of one domain never reads the other scopes' parked rows.
 */
export function retryWaiting(due: 'next_attempt_at' | 'parked_due_at', param: string): string {
  return due === 'next_attempt_at'
    ? `${waitsPastItsTime(param)} AND r.next_attempt_at < ${PARKED_DUE_AT}`
    : // `+`: not through recipients_parked, which holds every scope's parked rows.
      `r.next_attempt_at = ${PARKED_DUE_AT} AND ${waitsPastItsTime(param, '+r.parked_due_at')}`;
}

/** The due time of a parked row: past any real time (2^52 ms, the year 144683), still a safe integer. */
export const PARKED_DUE_AT = 2 ** 52;

/**
 * Whether a pause in force at `param` holds the row `r` of its message `m`: a pause of its domain,
 * of its message's pool or of its tenant (mail of no tenant is in no tenant's). Each test is one
 * lookup of queue_pauses' primary key.
 */
export function heldByPause(param: string): string {
  const inForce = `(p.ends_at IS NULL OR p.ends_at > ${param})`;
  return `(EXISTS (SELECT 1 FROM queue_pauses p WHERE p.kind = 'domain' AND p.value = r.domain AND ${inForce})
    OR EXISTS (SELECT 1 FROM queue_pauses p WHERE p.kind = 'pool' AND p.value = m.pool AND ${inForce})
    OR EXISTS (SELECT 1 FROM queue_pauses p WHERE p.kind = 'tenant' AND p.value = m.tenant AND ${inForce}))`;
}

/** Whether the pause of one scope (kind at `kind`, value at `value`) is in force at `now`: a park acts only then. */
export function scopePausedAt(kind: string, value: string, now: string): string {
  return `EXISTS (SELECT 1 FROM queue_pauses p WHERE p.kind = ${kind} AND p.value = ${value} AND (p.ends_at IS NULL OR p.ends_at > ${now}))`;
}

/** A park's input checks: a scope whose mail a claim leaves alone (not an egress IP), integer times. */
export function checkPark(scope: QueueScope, before: number, now: number, limit: number): void {
  checkBulk('parkPaused', now, limit);
  if (scope.kind === 'egress-ip') throw new DataRefusedError('parkPaused: the mail of a paused egress IP waits in selection, it is not parked');
  if (!Number.isSafeInteger(before) || before > PARKED_DUE_AT) throw new DataRefusedError('parkPaused: before must be integer milliseconds, at most PARKED_DUE_AT');
}

/** A release's input checks: a non-negative integer cursor. */
export function checkRelease(now: number, limit: number, after: number): void {
  checkBulk('releaseParked', now, limit);
  if (!Number.isSafeInteger(after) || after < 0) throw new DataRefusedError('releaseParked: after must be a recipient id');
}
