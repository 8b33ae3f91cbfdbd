import type { BacklogGroup, DsnRecord, MessageInfo, MessageQuery, MessageSummary, NewMessage, RecipientState } from './store.ts';
import { emptyCounts } from './store-rows.ts';
import { asciiDomain } from '../mail/address.ts';

/*
 * Rows of the control API's reads (MessageReads), shared by the SQLite and PostgreSQL backends,
 * and the bounds both derive from a MessageQuery, so the two answer the same page.
 */

export interface MessageInfoDbRow {
  id: string;
  sender: string;
  message_id_header: string | null;
  size: number;
  submitter: string | null;
  source: string;
  client_address: string | null;
  created_at: number;
  pool: string;
  tenant: string | null;
  send_at: number | null;
  /** JSON text of an array of strings (PostgreSQL's text[] is read as array_to_json); null: none. */
  tags: string | null;
  /** JSON text of an object of strings; null: none. */
  metadata: string | null;
}

/** The columns of a message's row besides the envelope, as both backends store them. */
export function messageExtras(m: NewMessage): { sendAt: number | null; tags: string[] | null; metadata: string | null } {
  return {
    sendAt: m.dueAt > m.createdAt ? m.dueAt : null,
    tags: m.tags && m.tags.length > 0 ? [...m.tags] : null,
    metadata: m.metadata && Object.keys(m.metadata).length > 0 ? JSON.stringify(m.metadata) : null,
  };
}

/** A listed message with one of its recipient states and that state's count (a message spans several rows). */
export interface MessageStateDbRow extends MessageInfoDbRow {
  state: string;
  n: number;
}

export interface BacklogDbRow {
  key: string | null;
  n: number;
  oldest: number;
  groups: number;
}

export function toMessageInfo(row: MessageInfoDbRow): MessageInfo {
  return {
    id: row.id,
    sender: row.sender,
    messageIdHeader: row.message_id_header,
    size: row.size,
    submitter: row.submitter,
    source: row.source as MessageInfo['source'],
    clientAddress: row.client_address,
    createdAt: row.created_at,
    pool: row.pool,
    tenant: row.tenant,
    sendAt: row.send_at,
    tags: row.tags === null ? [] : (JSON.parse(row.tags) as string[]),
    metadata: row.metadata === null ? {} : (JSON.parse(row.metadata) as Record<string, string>),
  };
}

/** Folds rows ordered by message (newest first) into one summary per message, in that order. */
export function toMessageSummaries(rows: readonly MessageStateDbRow[]): MessageSummary[] {
  const out: MessageSummary[] = [];
  for (const row of rows) {
    let last = out.at(-1);
    if (last?.id !== row.id) {
      last = { ...toMessageInfo(row), states: emptyCounts() };
      out.push(last);
    }
    last.states[row.state as RecipientState] = row.n;
  }
  return out;
}

/** Positional values both backends bind for a MessageQuery: every bound explicit, no NULL range. */
export interface MessageQueryBounds {
  since: number;
  /** Created at or before. */
  latest: number;
  /** With `latest` the cursor's createdAt: the messages created then sort after this id only. */
  beforeId: string | null;
  state: RecipientState | null;
  sender: string | null;
  recipient: string | null;
  domain: string | null;
  pool: string | null;
  tenant: string | null;
  tag: string | null;
  /** True when some recipient filter is set (the recipients are looked at only then). */
  byRecipient: boolean;
  limit: number;
}

export function messageQueryBounds(q: MessageQuery): MessageQueryBounds {
  const untilLatest = q.until === null ? Number.MAX_SAFE_INTEGER : q.until - 1;
  // The cursor binds when it is older than `until`; else the page starts at `until`.
  const cursorBinds = q.after !== null && q.after.createdAt <= untilLatest;
  return {
    since: q.since ?? 0,
    latest: cursorBinds ? q.after!.createdAt : untilLatest,
    beforeId: cursorBinds ? q.after!.id : null,
    state: q.state,
    sender: q.sender,
    recipient: q.recipient,
    // Recipients' domains are stored as domainOf gives them (A-labels): either form of an IDN finds them.
    domain: q.domain === null ? null : asciiDomain(q.domain),
    pool: q.pool,
    tenant: q.tenant,
    tag: q.tag,
    byRecipient: q.state !== null || q.recipient !== null || q.domain !== null,
    limit: q.limit,
  };
}

/** The line of a DSN's delivery-status part that names the original (src/engine/dsn.ts). */
export function dsnQueueIdLine(messageId: string): Buffer {
  return Buffer.from(`X-Rookery-Queue-ID: ${messageId}\r\n`);
}

/** A DSN's record; its body is read for the Final-Recipient fields only. */
export function toDsnRecord(row: { id: string; created_at: number; body: Uint8Array }): DsnRecord {
  const text = Buffer.from(row.body.buffer, row.body.byteOffset, row.body.byteLength).toString('utf8');
  const recipients = [...text.matchAll(/^Final-Recipient: (?:rfc822|utf-8); ?(.+?)\r?$/gim)].map((m) => m[1]!);
  return { id: row.id, createdAt: row.created_at, recipients };
}

export function toBacklogGroups(rows: readonly BacklogDbRow[]): { top: BacklogGroup[]; groups: number } {
  return { top: rows.map((r) => ({ key: r.key, count: r.n, oldestCreatedAt: r.oldest })), groups: rows[0]?.groups ?? 0 };
}
