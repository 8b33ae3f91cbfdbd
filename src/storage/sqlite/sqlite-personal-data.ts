import { setImmediate as nextTurn } from 'node:timers/promises';
import { toFeedbackEvent } from '../feedback-rows.ts';
import { toMessageInfo } from '../message-rows.ts';
import type { ErasureCounts, RecipientData, RecipientMessage } from '../personal-data.ts';
import {
  ERASURE_CHUNK,
  PENDING_CHUNK,
  SCAN_PAGE,
  answersFor,
  checkedAddress,
  emptyErasureCounts,
  recipientMessage,
  redacted,
  scopeKey,
  wasLive,
} from '../personal-data-rows.ts';
import type { Store } from '../store.ts';
import { toAttemptEvent, toRecipientRow } from '../store-rows.ts';
import type { AddressHasher } from '../suppression-rows.ts';
import type { SqliteFeedbackQueries } from './feedback-queries.ts';
import type { SqliteMessageQueries } from './message-queries.ts';
import type { SqlitePersonalDataQueries } from './personal-data-queries.ts';
import type { SqliteQueries } from './queries.ts';

/*
 * Personal data on SQLite (personal-data.ts), apart from sqlite-store.ts, which delegates to it.
 * Reads run on the one connection; each write goes through the store's write path (its batcher),
 * a chunk per operation, so every chunk is one transaction and other writes go in between. An
 * operation may run again after a rollback (WriteBatcher), so each returns what it did and
 * nothing is counted before it committed.
 */

export interface SqlitePersonalDataDeps {
  q: SqliteQueries;
  messages: SqliteMessageQueries;
  feedback: SqliteFeedbackQueries;
  pd: SqlitePersonalDataQueries;
  hasher: AddressHasher;
  write: <T>(op: (q: SqliteQueries) => T) => Promise<Awaited<T>>;
  listSuppressions: Store['listSuppressions'];
}

/** The most suppression entries one address can have: one per tenant. */
const SUPPRESSIONS_SHOWN = 1000;

export async function sqliteRecipientData(d: SqlitePersonalDataDeps, address: string, tenant: string | null, limit: number): Promise<RecipientData> {
  checkedAddress(address);
  const key = scopeKey(tenant);
  const ids = d.pd.selectAddressMessages(address, key, limit + 1);
  const messages = ids.slice(0, limit).flatMap((id): RecipientMessage[] => {
    const info = d.messages.selectInfo(id);
    if (!info) return [];
    const rows = d.q.selectRecipients(id).map(toRecipientRow);
    return [recipientMessage(address, toMessageInfo(info), rows, d.q.selectEvents(id).map(toAttemptEvent), d.feedback.selectByMessage(id).map(toFeedbackEvent))];
  });
  const suppressions = await d.listSuppressions({ tenant: key, reason: null, address, since: null, until: null, now: null }, null, SUPPRESSIONS_SHOWN);
  let dsns = 0;
  await eachPage(d, 'messages', (from, to) => {
    dsns += d.pd.selectDsnsQuoting(from, to, address, key).length;
  });
  let webhookDeliveries = 0;
  await eachPage(d, 'webhook_deliveries', (from, to) => {
    webhookDeliveries += d.pd.countDeliveriesNaming(from, to, address, key);
  });
  return { messages, moreMessages: ids.length > limit, suppressions, dsns, webhookDeliveries };
}

export async function sqliteEraseRecipient(d: SqlitePersonalDataDeps, address: string, tenant: string | null, now: number): Promise<{ counts: ErasureCounts; addressHash: string }> {
  checkedAddress(address);
  const key = scopeKey(tenant);
  const hash = d.hasher.hash(address);
  const counts = emptyErasureCounts();
  const erased = new Set<string>();

  // The messages it is a recipient of: each chunk takes their rows of it, so the next finds the rest.
  for (;;) {
    const done = await d.write((q) => {
      const ids = d.pd.selectAddressMessages(address, key, ERASURE_CHUNK);
      const chunk = { ids, messages: 0, pending: 0, cancelled: 0 };
      for (const id of ids) {
        const othersWaiting = d.pd.countLive(id, address) > 0;
        chunk.cancelled += d.pd.deleteAddressRows(id, address).filter(wasLive).length;
        if (othersWaiting) {
          d.pd.insertPending(id, now);
          chunk.pending += 1;
        } else {
          q.deleteMessage(id);
          chunk.messages += 1;
        }
      }
      return chunk;
    });
    done.ids.forEach((id) => erased.add(id));
    counts.messages += done.messages;
    counts.pending += done.pending;
    counts.cancelled += done.cancelled;
    if (done.ids.length < ERASURE_CHUNK) break;
  }

  // What else names it, read a page at a time; a page is written only when it holds some. The
  // DSNs about the messages erased go too, whatever their encoding of the address.
  const reportingOn = [...erased];
  await eachPage(d, 'messages', async (from, to) => {
    const dsns = d.pd.selectDsnsQuoting(from, to, address, key, reportingOn);
    if (dsns.length === 0) return;
    await d.write((q) => dsns.forEach((id) => q.deleteMessage(id)));
    counts.dsns += dsns.length;
  });
  await eachPage(d, 'webhook_deliveries', async (from, to) => {
    if (d.pd.countDeliveriesNaming(from, to, address, key) === 0) return;
    counts.webhookDeliveries += await d.write(() => d.pd.deleteDeliveriesNaming(from, to, address, key));
  });
  await eachPage(d, 'audit', async (from, to) => {
    const rows = d.pd.selectAuditNaming(from, to, address, key);
    if (rows.length === 0) return;
    await d.write(() => rows.forEach((r) => d.pd.updateAudit(r.id, redacted(r.target, address), redacted(r.change, address))));
    counts.auditEntries += rows.length;
  });
  let after: [string, string] = ['', ''];
  for (let end = d.pd.keyPageEnd(after, SCAN_PAGE); end !== null; after = end, end = d.pd.keyPageEnd(after, SCAN_PAGE)) {
    const answers = d.pd.selectAnswersNaming(after, end, address).filter((a) => key === null || answersFor(a.response, erased));
    if (answers.length > 0) await d.write(() => answers.forEach((a) => d.pd.deleteAnswer(a.scope, a.key)));
    else await nextTurn();
    counts.idempotencyRecords += answers.length;
  }
  counts.suppressions = await d.write(() => d.pd.forgetSuppressedAddress(hash, key));
  return { counts, addressHash: hash.toString('hex') };
}

export async function sqlitePurgeErasedMessages(d: SqlitePersonalDataDeps, now: number): Promise<number> {
  let purged = 0;
  for (let after = ''; ; ) {
    const pending = d.pd.selectPending(after, PENDING_CHUNK);
    if (pending.length === 0) return purged;
    purged += await d.write((q) => {
      let n = 0;
      for (const p of pending) {
        if (d.pd.countLive(p.message_id, null) > 0) continue;
        // The DSNs made about it since the erasure quote its headers: they go with it, once final.
        const dsns = d.messages.selectDsns(p.message_id, p.erased_at, now).map((r) => r.id);
        if (dsns.some((id) => d.pd.countLive(id, null) > 0)) continue;
        for (const id of [...dsns, p.message_id]) q.deleteMessage(id);
        n += 1;
      }
      return n;
    });
    after = pending.at(-1)!.message_id;
  }
}

/** Calls `visit` for each page of `table`'s keys in turn, letting the event loop run between two. */
async function eachPage(d: SqlitePersonalDataDeps, table: 'messages' | 'webhook_deliveries' | 'audit', visit: (from: number, to: number) => void | Promise<void>): Promise<void> {
  for (let from = Number.MIN_SAFE_INTEGER, to = d.pd.pageEnd(table, from, SCAN_PAGE); to !== null; from = to, to = d.pd.pageEnd(table, from, SCAN_PAGE)) {
    await visit(from, to);
    await nextTurn();
  }
}
