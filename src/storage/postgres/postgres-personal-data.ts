import type pg from 'pg';
import { toFeedbackEvent } from '../feedback-rows.ts';
import { toMessageInfo } from '../message-rows.ts';
import type { ErasureCounts, RecipientData, RecipientMessage } from '../personal-data.ts';
import {
  ERASURE_CHUNK,
  ERASURE_DELETE_CHUNK,
  PENDING_CHUNK,
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
import { selectFeedback } from './feedback-queries.ts';
import { selectDsns, selectMessageInfo } from './message-queries.ts';
import * as pd from './personal-data-queries.ts';
import { selectEvents, selectRecipients } from './queries.ts';
import { withTransaction } from './transaction.ts';

/*
 * Personal data on PostgreSQL (personal-data.ts), apart from postgres-store.ts, which delegates
 * to it. The erasure of messages runs a chunk per transaction of its own (not the store's write
 * batches: a chunk is many statements, and a failure must not take other callers' writes with
 * it); the tables without an index on the address are cleared a statement (or a transaction)
 * per chunk of matching rows, each holding its few row locks briefly.
 */

export interface PostgresPersonalDataDeps {
  pool: pg.Pool;
  hasher: AddressHasher;
  listSuppressions: Store['listSuppressions'];
}

/** The most suppression entries one address can have: one per tenant. */
const SUPPRESSIONS_SHOWN = 1000;

export async function postgresRecipientData(d: PostgresPersonalDataDeps, address: string, tenant: string | null, limit: number): Promise<RecipientData> {
  checkedAddress(address);
  const key = scopeKey(tenant);
  const { pool } = d;
  const ids = await pd.selectAddressMessages(pool, address, key, limit + 1);
  const messages: RecipientMessage[] = [];
  for (const id of ids.slice(0, limit)) {
    const [info, rows, events, feedback] = await Promise.all([selectMessageInfo(pool, id), selectRecipients(pool, id), selectEvents(pool, id), selectFeedback(pool, id)]);
    if (!info) continue;
    messages.push(recipientMessage(address, toMessageInfo(info), rows.map(toRecipientRow), events.map(toAttemptEvent), feedback.map(toFeedbackEvent)));
  }
  const [suppressions, dsns, webhookDeliveries] = await Promise.all([
    d.listSuppressions({ tenant: key, reason: null, address, since: null, until: null, now: null }, null, SUPPRESSIONS_SHOWN),
    pd.countDsnsQuoting(pool, pd.byteaEscapeText(address), key),
    pd.countDeliveriesNaming(pool, address, key),
  ]);
  return { messages, moreMessages: ids.length > limit, suppressions, dsns, webhookDeliveries };
}

export async function postgresEraseRecipient(d: PostgresPersonalDataDeps, address: string, tenant: string | null, now: number): Promise<{ counts: ErasureCounts; addressHash: string }> {
  checkedAddress(address);
  const key = scopeKey(tenant);
  const hash = d.hasher.hash(address);
  const { pool } = d;
  const counts = emptyErasureCounts();
  const erased = new Set<string>();

  // The messages it is a recipient of: each chunk takes their rows of it, so the next finds the rest.
  for (;;) {
    const done = await withTransaction(pool, async (c) => {
      const ids = await pd.selectAddressMessages(c, address, key, ERASURE_CHUNK);
      const chunk = { ids, deleted: [] as string[], pending: 0, cancelled: 0 };
      for (const id of ids) {
        const othersWaiting = (await pd.countLive(c, id, address)) > 0;
        chunk.cancelled += (await pd.deleteAddressRows(c, id, address)).filter(wasLive).length;
        if (othersWaiting) {
          await pd.insertPending(c, id, now);
          chunk.pending += 1;
        } else {
          chunk.deleted.push(id);
        }
      }
      await pd.deleteMessages(c, chunk.deleted);
      return chunk;
    });
    done.ids.forEach((id) => erased.add(id));
    counts.messages += done.deleted.length;
    counts.pending += done.pending;
    counts.cancelled += done.cancelled;
    if (done.ids.length < ERASURE_CHUNK) break;
  }

  // The DSNs quoting it, and those about the messages erased, whatever their encoding of it.
  const escaped = pd.byteaEscapeText(address);
  const reportingOn = [...erased];
  const dsnsToDelete = () => pd.selectDsnsQuoting(pool, escaped, key, ERASURE_DELETE_CHUNK, reportingOn);
  for (let dsns = await dsnsToDelete(); dsns.length > 0; dsns = await dsnsToDelete()) {
    counts.dsns += await pd.deleteMessages(pool, dsns);
  }
  for (let n = ERASURE_DELETE_CHUNK; n === ERASURE_DELETE_CHUNK; ) {
    n = await pd.deleteDeliveriesNaming(pool, address, key, ERASURE_DELETE_CHUNK);
    counts.webhookDeliveries += n;
  }
  for (let after = 0; ; ) {
    const rows = await pd.selectAuditNaming(pool, address, key, after, ERASURE_DELETE_CHUNK);
    if (rows.length === 0) break;
    await withTransaction(pool, async (c) => {
      for (const r of rows) await pd.updateAudit(c, r.id, redacted(r.target, address), redacted(r.change, address));
    });
    counts.auditEntries += rows.length;
    after = rows.at(-1)!.id;
  }
  const answers = (await pd.selectAnswersNaming(pool, address)).filter((a) => key === null || answersFor(a.response, erased));
  if (answers.length > 0) {
    await withTransaction(pool, async (c) => {
      for (const a of answers) await pd.deleteAnswer(c, a.scope, a.key);
    });
  }
  counts.idempotencyRecords = answers.length;
  counts.suppressions = await pd.forgetSuppressedAddress(pool, hash, key);
  return { counts, addressHash: hash.toString('hex') };
}

export async function postgresPurgeErasedMessages(d: PostgresPersonalDataDeps, now: number): Promise<number> {
  let purged = 0;
  for (let after = ''; ; ) {
    const pending = await pd.selectPending(d.pool, after, PENDING_CHUNK);
    if (pending.length === 0) return purged;
    for (const p of pending) {
      purged += await withTransaction(d.pool, async (c) => {
        if ((await pd.countLive(c, p.message_id, null)) > 0) return 0;
        // The DSNs made about it since the erasure quote its headers: they go with it, once final.
        const dsns = (await selectDsns(c, p.message_id, p.erased_at, now)).map((r) => r.id);
        for (const id of dsns) if ((await pd.countLive(c, id, null)) > 0) return 0;
        await pd.deleteMessages(c, [...dsns, p.message_id]);
        return 1;
      });
    }
    after = pending.at(-1)!.message_id;
  }
}
