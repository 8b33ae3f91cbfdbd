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

/** The due time such a move gives a row: `now`, or the send time of a first attempt scheduled after it. */
export function movedDueAt(param: string): string {
  return `CASE WHEN r.last_disposition IS NULL AND m.send_at > ${param} THEN m.send_at ELSE ${param} END`;
}

/**
 * The rows due after `now` that such a move changes (movedDueAt is earlier than their due time),
 * so a moved row is not picked again and repeating the move until it moves fewer ends.
 */
export function waitsPastItsTime(param: string): string {
  return `r.next_attempt_at > ${param} AND (r.last_disposition IS NOT NULL OR m.send_at IS NULL OR m.send_at < r.next_attempt_at)`;
}
