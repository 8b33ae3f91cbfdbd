import { foldCase } from './case-folding.ts';
import type { FeedbackEvent } from './feedback-events.ts';
import { ERASED, type ErasureCounts, type RecipientMessage } from './personal-data.ts';
import type { AttemptEvent, MessageInfo, RecipientRow } from './store.ts';
import { DataRefusedError } from './store.ts';
import { tenantKey } from './suppression-rows.ts';

/*
 * What the SQLite and PostgreSQL backends share of personal data (personal-data.ts): the checks
 * of a request, the sizes of the chunks, the address's part of a message's records, and the
 * redaction of the records kept, so both answer and erase alike.
 */

/** Messages erased per transaction: each is a few statements. */
export const ERASURE_CHUNK = 200;
/** Rows read per step of a scan over a whole table (SQLite: per turn of the event loop and transaction). */
export const SCAN_PAGE = 5000;
/** Rows deleted or rewritten per statement or transaction on PostgreSQL. */
export const ERASURE_DELETE_CHUNK = 1000;
/** Pending messages looked at per transaction by purgeErasedMessages. */
export const PENDING_CHUNK = 200;

/** The longest address taken: RFC 5321 allows 64 + 1 + 255 octets of a path. */
const MAX_ADDRESS = 320;

/**
 * The address to look for, checked: an empty or short text would match far more than one
 * person's data (every row holding "@"), so anything that is not local@domain is refused.
 */
export function checkedAddress(address: string): string {
  // The domain follows the last @: a quoted local part may hold one.
  if (typeof address !== 'string' || address.length > MAX_ADDRESS || !/^\S+@[^@\s]+$/.test(address)) {
    throw new DataRefusedError('personal data: the address must be local@domain, at most 320 characters, without spaces');
  }
  return address;
}

/** The scope as the backends bind it: null for every tenant, else the tenant key ('' for mail of no tenant). */
export function scopeKey(tenant: string | null): string | null {
  return tenant === null ? null : tenantKey(tenant === '' ? null : tenant);
}

/** The address's part of a message: its rows and their events and feedback. */
export function recipientMessage(
  address: string,
  message: MessageInfo,
  recipients: readonly RecipientRow[],
  events: readonly AttemptEvent[],
  feedback: readonly FeedbackEvent[],
): RecipientMessage {
  const wanted = foldCase(address);
  const rows = recipients.filter((r) => foldCase(r.recipient) === wanted);
  const ids = new Set(rows.map((r) => r.recipientId));
  return { message, recipients: rows, events: events.filter((e) => ids.has(e.recipientId)), feedback: feedback.filter((f) => ids.has(f.recipientId)) };
}

export function emptyErasureCounts(): ErasureCounts {
  return { messages: 0, pending: 0, cancelled: 0, dsns: 0, suppressions: 0, webhookDeliveries: 0, idempotencyRecords: 0, auditEntries: 0 };
}

/** Whether a deleted row's state was one of waiting or in flight: its erasure cancelled it. */
export function wasLive(state: string): boolean {
  return state === 'queued' || state === 'delivering';
}

/**
 * What may stand right before an address inside a longer one (its local part), and right after
 * (its domain). The local part's `/ = & ?` are left out: they stand before an address in a path or
 * a query string far more often than inside one.
 */
const LOCAL_CHARS = "A-Za-z0-9.!#$%'*+^_`{|}~-";
const DOMAIN_CHARS = 'A-Za-z0-9';

/** The address as stored text holds it: as given, and inside JSON (a quoted local part's quotes escaped). */
function spellings(address: string): string {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return [...new Set([address, JSON.stringify(address).slice(1, -1)])].map(escape).join('|');
}

/**
 * A regular expression (PostgreSQL's and JavaScript's alike) finding the address as a whole, in
 * any case: not inside a longer address, neither jimbob@example.com for bob@example.com nor
 * bob@example.com.au. PostgreSQL tests it with ~* (no lookaround there), so the characters around
 * the address are matched, not looked at.
 */
export function addressPattern(address: string): string {
  // A '-' in a bracket stands last: PostgreSQL reads it inside as the start of a range.
  return `(^|[^${LOCAL_CHARS}])(${spellings(address)})($|[^${DOMAIN_CHARS}.-]|\\.($|[^${DOMAIN_CHARS}-]))`;
}

/** addressPattern as a JavaScript expression: `.test(text)` says whether text names the address as a whole. */
export function addressRegExp(address: string): RegExp {
  return new RegExp(addressPattern(address), 'i');
}

/** `text` with every whole occurrence of the address, in any case, replaced by ERASED; null stays null. */
export function redacted(text: string | null, address: string): string | null {
  if (text === null) return null;
  const whole = new RegExp(`(?<![${LOCAL_CHARS}])(?:${spellings(address)})(?![${DOMAIN_CHARS}-]|\\.[${DOMAIN_CHARS}-])`, 'gi');
  return text.replace(whole, ERASED);
}

/**
 * Whether the idempotency record of a tenant's erasure is one to delete: its answer names one of
 * the messages erased (queue ids are unique hex, so a plain search cannot meet another's).
 */
export function answersFor(response: string, erasedIds: ReadonlySet<string>): boolean {
  for (const id of erasedIds) if (response.includes(id)) return true;
  return false;
}
