import { randomBytes } from 'node:crypto';
import type { BounceClass, DeliveryOutcome, DeliveryStage, Disposition, OutcomeTls } from '../mail/delivery-outcome.ts';
import type {
  AttemptEvent,
  AttemptResult,
  ClaimedRecipient,
  ClaimOptions,
  FollowUp,
  LeaseToken,
  NewMessage,
  RecipientRow,
  RecipientState,
  StoredMessage,
} from './store.ts';
import { DataRefusedError } from './store.ts';

/*
 * Row shapes shared by the SQLite and PostgreSQL backends (both schemas use the same column
 * names), their mapping to the Store types, and the input checks both backends apply before a
 * write is queued, so a bad call fails alone and never reaches a shared transaction.
 */

export interface ClaimedRow {
  id: number;
  message_id: string;
  recipient: string;
  domain: string;
  attempts: number;
  last_egress_ip: string | null;
  next_attempt_at: number;
  sender: string;
  message_created_at: number;
  message_id_header: string | null;
  size: number;
}

/**
 * The columns of a ClaimedRow, read from recipients `r` joined to their messages `m` (every claim
 * statement of both backends). A scheduled message's age (delivery.maxAge) counts from its
 * scheduled time. A parked row (a cancellation claims those too) is due at its own time, kept in
 * parked_due_at: given back unrecorded, it is due then.
 */
export const CLAIMED_ROW_COLUMNS = `r.id, r.message_id, r.recipient, r.domain, r.attempts, r.last_egress_ip, coalesce(r.parked_due_at, r.next_attempt_at) AS next_attempt_at,
           m.sender, CASE WHEN m.send_at > m.created_at THEN m.send_at ELSE m.created_at END AS message_created_at, m.message_id_header, m.size`;

export interface RecipientDbRow {
  id: number;
  message_id: string;
  recipient: string;
  domain: string;
  state: string;
  attempts: number;
  next_attempt_at: number | null;
  last_disposition: string | null;
  last_code: number | null;
  last_enhanced: string | null;
  last_response: string | null;
  last_stage: string | null;
  last_bounce_class: string | null;
  last_remote_host: string | null;
  last_egress_ip: string | null;
  updated_at: number;
}

export interface EventDbRow {
  recipient_id: number;
  message_id: string;
  attempt: number;
  at: number;
  disposition: string;
  code: number | null;
  enhanced: string | null;
  response: string;
  stage: string;
  bounce_class: string;
  remote_host: string | null;
  egress_ip: string | null;
  /** OutcomeTls as JSON; null without a TLS record (and on events of no session). */
  tls: string | null;
}

/** The events.tls value of an outcome: its TLS as JSON, null without. */
export function eventTls(outcome: DeliveryOutcome): string | null {
  return outcome.tls ? JSON.stringify(outcome.tls) : null;
}

export interface MessageDbRow {
  id: string;
  sender: string;
  message_id_header: string | null;
  body: Uint8Array;
  submitter: string | null;
  source: string;
  created_at: number;
  pool: string;
  tenant: string | null;
}

/** A new claim's token: random, so no two claims (of any node) share one. */
export function newLeaseToken(): LeaseToken {
  return randomBytes(12).toString('base64url') as LeaseToken;
}

export function toClaimedRecipient(row: ClaimedRow, token: LeaseToken): ClaimedRecipient {
  return {
    recipientId: row.id,
    token,
    messageId: row.message_id,
    sender: row.sender,
    recipient: row.recipient,
    domain: row.domain,
    attempts: row.attempts,
    lastEgressIp: row.last_egress_ip,
    messageCreatedAt: row.message_created_at,
    dueAt: row.next_attempt_at,
    messageIdHeader: row.message_id_header,
    size: row.size,
  };
}

/** Oldest due first; the id breaks ties so the order is total. */
export function compareDue(a: ClaimedRow, b: ClaimedRow): number {
  return a.next_attempt_at - b.next_attempt_at || a.id - b.id;
}

export function toRecipientRow(row: RecipientDbRow): RecipientRow {
  return {
    recipientId: row.id,
    messageId: row.message_id,
    recipient: row.recipient,
    domain: row.domain,
    state: row.state as RecipientState,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastOutcome:
      row.last_disposition === null
        ? null
        : {
            disposition: row.last_disposition as Disposition,
            code: row.last_code,
            enhanced: row.last_enhanced,
            response: row.last_response ?? '',
            stage: row.last_stage as DeliveryStage,
            bounceClass: row.last_bounce_class as BounceClass,
            remoteHost: row.last_remote_host,
            egressIp: row.last_egress_ip,
          },
    updatedAt: row.updated_at,
  };
}

export function toAttemptEvent(row: EventDbRow): AttemptEvent {
  const outcome: DeliveryOutcome = {
    disposition: row.disposition as Disposition,
    code: row.code,
    enhanced: row.enhanced,
    response: row.response,
    stage: row.stage as DeliveryStage,
    bounceClass: row.bounce_class as BounceClass,
    remoteHost: row.remote_host,
    egressIp: row.egress_ip,
    ...(row.tls ? { tls: JSON.parse(row.tls) as OutcomeTls } : {}),
  };
  return { recipientId: row.recipient_id, messageId: row.message_id, attempt: row.attempt, at: row.at, outcome };
}

export function toStoredMessage(row: MessageDbRow): StoredMessage {
  const body = Buffer.isBuffer(row.body) ? row.body : Buffer.from(row.body.buffer, row.body.byteOffset, row.body.byteLength);
  return {
    id: row.id,
    sender: row.sender,
    messageIdHeader: row.message_id_header,
    body,
    submitter: row.submitter,
    source: row.source as StoredMessage['source'],
    createdAt: row.created_at,
    pool: row.pool,
    tenant: row.tenant,
  };
}

export function emptyCounts(): Record<RecipientState, number> {
  return { queued: 0, delivering: 0, delivered: 0, bounced: 0 };
}

/** Throws a descriptive error for a message no backend could store. */
export function checkMessages(messages: readonly NewMessage[]): void {
  const ids = new Set<string>();
  for (const m of messages) {
    if (typeof m.id !== 'string' || m.id === '') throw new DataRefusedError('enqueue: message id must be a non-empty string');
    if (ids.has(m.id)) throw new DataRefusedError(`enqueue: message id ${m.id} appears twice in one call`);
    ids.add(m.id);
    if (m.recipients.length === 0) throw new DataRefusedError(`enqueue: message ${m.id} has no recipients`);
    if (!Buffer.isBuffer(m.body)) throw new DataRefusedError(`enqueue: message ${m.id} body must be a Buffer`);
    if (typeof m.pool !== 'string' || m.pool === '') throw new DataRefusedError(`enqueue: message ${m.id} needs an egress pool`);
    if (!Number.isSafeInteger(m.createdAt) || !Number.isSafeInteger(m.dueAt)) {
      throw new DataRefusedError(`enqueue: message ${m.id} createdAt and dueAt must be integer milliseconds`);
    }
    if (m.suppressed?.some((s) => !m.recipients.includes(s.recipient))) throw new DataRefusedError(`enqueue: message ${m.id} suppresses a recipient it does not have`);
  }
}

/**
 * Validates attempt results and drops repeated recipient ids (the first one wins, as it would
 * when applied in order: it ends the claim, so later ones would change nothing).
 */
export function checkAttemptResults(results: readonly AttemptResult[]): AttemptResult[] {
  const seen = new Set<number>();
  const out: AttemptResult[] = [];
  for (const r of results) {
    if (r.newState === 'queued' && !Number.isSafeInteger(r.nextAttemptAt)) {
      throw new DataRefusedError(`recordAttempts: recipient ${r.recipientId} is re-queued without an integer nextAttemptAt`);
    }
    if (seen.has(r.recipientId)) continue;
    seen.add(r.recipientId);
    out.push(r);
  }
  return out;
}

/**
 * A follow-up and the results it reports are applied together or not at all, so that a bounce is
 * never committed without its DSN: the ids of the results to hold back, those of every follow-up
 * one of whose reports cannot apply now (`applies` is false: stale, or recorded before).
 */
export function heldBackResults(followUps: readonly FollowUp[], applies: (id: number) => boolean): Set<number> {
  const heldBack = new Set<number>();
  for (const f of followUps) if (!f.reports.every(applies)) for (const id of f.reports) heldBack.add(id);
  return heldBack;
}

/** The follow-ups to store: those whose reported results were all applied by this call (`applied`). */
export function followUpsToStore(followUps: readonly FollowUp[], applied: ReadonlySet<number>): NewMessage[] {
  return followUps.filter((f) => f.reports.every((id) => applied.has(id))).map((f) => f.message);
}

export function checkClaimOptions(options: ClaimOptions): void {
  const { now, limit, owner, leaseMs } = options;
  if (!Number.isSafeInteger(now)) throw new DataRefusedError('claimDue: now must be integer milliseconds');
  if (!Number.isSafeInteger(limit) || limit < 0) throw new DataRefusedError('claimDue: limit must be a non-negative integer');
  if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new DataRefusedError('claimDue: leaseMs must be a positive integer');
  if (owner === '') throw new DataRefusedError('claimDue: owner must be a non-empty string');
}

/**
 * Deletes in chunks: `purgeChunk` deletes up to `chunk` rows in one transaction or statement, and
 * runs again until a chunk comes back short, so other writes go in between and no purge holds
 * a lock for long. Returns how many rows went in all.
 */
export async function purgeInChunks(chunk: number, purgeChunk: (limit: number) => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await purgeChunk(chunk);
    total += deleted;
    if (deleted < chunk) return total;
  }
}
